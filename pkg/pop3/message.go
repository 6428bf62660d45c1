package pop3

import (
	"bufio"
	"io"

	"postern/pkg/smtp"
)

// WriteMessage writes the multi-line body of a RETR (lines < 0) or TOP (lines >= 0)
// response to w: the message read from r, its header, then for TOP the blank line and
// the first lines lines of the body (RFC 1939 §7). It is streamed, not held in memory.
// Every line ends in CRLF, a line that starts with "." gets another "." in front, and
// "." CRLF ends the response (RFC 1939 §3): the same byte-stuffing as SMTP's DATA
// (RFC 5321 §4.5.2), so smtp.DataWriter does it.
func WriteMessage(w io.Writer, r io.Reader, lines int) error {
	dw := smtp.NewDataWriter(w)
	var err error
	if lines < 0 {
		_, err = io.Copy(dw, r)
	} else {
		err = copyTop(dw, r, lines)
	}
	if err != nil {
		return err
	}
	return dw.Close()
}

// copyTop copies the header of the message in r, the blank line after it and then
// lines lines of its body.
func copyTop(w io.Writer, r io.Reader, lines int) error {
	br := bufio.NewReaderSize(r, 4096)
	header, lineStart := true, true
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if lineStart && !header {
				if lines == 0 {
					return nil
				}
				lines--
			}
			if lineStart && header && (string(chunk) == "\n" || string(chunk) == "\r\n") {
				header = false // the blank line that ends the header (RFC 5322 §2.1)
			}
			if _, werr := w.Write(chunk); werr != nil {
				return werr
			}
			lineStart = chunk[len(chunk)-1] == '\n'
		}
		switch err {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			return nil
		default:
			return err
		}
	}
}
