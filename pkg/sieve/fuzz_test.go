package sieve

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/mime"
)

// FuzzParse feeds arbitrary scripts to the parser and runs those it accepts: neither may
// panic or hang, and an error is always an *Error with a position.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.sieve")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("if header :matches \"subject\" \"*x?\" { keep; } else { discard; }"))
	f.Add([]byte("reject text:\n..\n.\n"))
	f.Add([]byte("require \"variables\"; set :upper \"a\" \"${b}\"; if string :matches \"${a}\" \"*\" { set \"c\" \"${1}\"; }"))
	f.Add([]byte("require [\"date\", \"index\"]; if date :index 1 :last :zone \"+0100\" \"date\" \"julian\" \"1\" {}"))
	f.Add([]byte(`require ["vacation", "variables"]; set "s" "x"; vacation :days 2 :subject "${s}" :addresses ["a@b"] "r";`))
	f.Add([]byte(`require "vacation"; vacation :days 2 :subject "s" :addresses ["a@b"] "r";`))
	const msg = "From: a@b\r\nSubject: hello\r\nDate: Mon, 08 Aug 2005 17:45:00 -0700\r\n" +
		"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>body</p>\r\n--x--\r\n"
	m, _ := mime.Parse(strings.NewReader(msg), int64(len(msg)))
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse(src)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Line < 1 || e.Col < 1 {
				t.Fatalf("error %v is not an *Error with a position", err)
			}
			return
		}
		msg := &Message{Header: &m.Root.Header, MIME: m, Size: int64(len(msg)), From: "a@b", To: "c+d@e"}
		acts, _ := s.Run(msg)
		for _, a := range acts {
			if a.Kind == VacationAction {
				a.Vacation.Exempt(msg, func(string) bool { return false })
				a.Vacation.Reply(msg.Header, ReplyHeaders{From: "c@e", To: "a@b", MessageID: "<x@e>"})
			}
		}
	})
}
