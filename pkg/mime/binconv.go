package mime

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
)

// EncodeBinaryParts writes the message to w with the body of every part whose
// Content-Transfer-Encoding is "binary" re-encoded in base64 (RFC 2045 §6.8, lines of 76
// characters) and its Content-Transfer-Encoding field saying so; everything else is
// copied as it is in the file. It reports whether a part was converted; when none was,
// nothing is written.
//
// A message APPENDed as a literal8 (RFC 3516 §4.4) may carry binary content: NULs and
// bare LFs that IMAP's CRLF form of a message cannot carry in BODY[] and that the line
// end handling of this package would change. Stored in base64, every octet survives,
// BINARY[] gives back exactly what was appended and BODY[] is 7-bit text, as Dovecot
// stores such a message. Multipart parts (some MUAs mark them binary) and message/rfc822
// parts, whose encoding must not be base64 (RFC 2046 §5.2.1), are not converted; the
// parts inside them are.
func (m *Message) EncodeBinaryParts(w io.Writer) (bool, error) {
	var parts []*Part
	var walk func(p *Part)
	walk = func(p *Part) {
		switch {
		case p.IsMultipart():
			for _, c := range p.Parts {
				walk(c)
			}
		case p.Message != nil:
			walk(p.Message)
		case strings.EqualFold(strings.TrimSpace(p.Encoding), "binary"):
			parts = append(parts, p)
		}
	}
	walk(m.Root)
	if len(parts) == 0 {
		return false, nil
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	var pos int64
	copyTo := func(end int64) error {
		if end > pos {
			if _, err := io.Copy(bw, io.NewSectionReader(m.r, pos, end-pos)); err != nil {
				return err
			}
			pos = end
		}
		return nil
	}
	for _, p := range parts {
		if err := copyTo(p.HeaderRange.Offset); err != nil {
			return true, err
		}
		if err := m.writeBase64Header(bw, p.HeaderRange); err != nil {
			return true, err
		}
		pos = p.HeaderRange.Offset + p.HeaderRange.Len
		if err := copyTo(p.BodyRange.Offset); err != nil {
			return true, err
		}
		enc := base64.NewEncoder(base64.StdEncoding, &lineWriter{w: bw})
		if _, err := io.Copy(enc, io.NewSectionReader(m.r, p.BodyRange.Offset, p.BodyRange.Len)); err != nil {
			return true, err
		}
		if err := enc.Close(); err != nil {
			return true, err
		}
		pos = p.BodyRange.Offset + p.BodyRange.Len
	}
	if err := copyTo(m.len); err != nil {
		return true, err
	}
	return true, bw.Flush()
}

// writeBase64Header writes the header in rg with its Content-Transfer-Encoding field
// (continuation lines included) replaced by "Content-Transfer-Encoding: base64".
func (m *Message) writeBase64Header(w *bufio.Writer, rg Range) error {
	br := bufio.NewReader(io.NewSectionReader(m.r, rg.Offset, rg.Len))
	skipping, replaced := false, false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			body := trimEOL(line)
			switch {
			case len(body) > 0 && (body[0] == ' ' || body[0] == '\t'):
				// A continuation line goes with its field.
			case len(body) >= 26 && bytes.EqualFold(body[:26], []byte("content-transfer-encoding:")):
				if !replaced {
					w.WriteString("Content-Transfer-Encoding: base64\r\n")
					replaced = true
				}
				skipping = true
			default:
				skipping = false
			}
			if !skipping {
				w.Write(line)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// lineWriter breaks base64 text into CRLF-separated lines of 76 characters (RFC 2045
// §6.8).
type lineWriter struct {
	w   io.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if l.col == 76 {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return n, err
			}
			l.col = 0
		}
		k := min(len(p), 76-l.col)
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		l.col += k
		n += k
		p = p[k:]
	}
	return n, nil
}
