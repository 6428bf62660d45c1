package imap

import (
	"bufio"
	"io"
	"testing"
	"time"
)

func TestNoReadAhead(t *testing.T) {
	for _, line := range []string{"A3 SEARCH ALL\r\n", "A3 UID SEARCH RETURN (ALL) CHARSET UTF-8 TEXT x\r\n", "A FETCH 1 BODY[]\r\n", "A LIST \"\" *\r\n"} {
		pr, pw := io.Pipe()
		d := NewDecoder(bufio.NewReader(pr), nil)
		go pw.Write([]byte(line))
		done := make(chan error)
		go func() { _, err := d.ReadCommand(); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%q: %v", line, err)
			}
		case <-time.After(time.Second):
			t.Errorf("%q: the decoder waits for more than the line", line)
		}
		pw.Close()
	}
}
