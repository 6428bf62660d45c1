package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bigMsg returns a CRLF message of about n bytes whose lines carry their number.
func bigMsg(subject string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %06d of %s, some text to fill it up\r\n", i, subject)
	}
	return msg(subject, b.String())
}

// TestFetchWholeFiles fetches messages sent straight from their files: smaller than
// the response buffer (read into it) and larger (sendfile over this connection without
// TLS), one at a time and many in one command, whole and partial.
func TestFetchWholeFiles(t *testing.T) {
	e := newTestEnv(t)
	c := e.login("a")
	c.ok("CREATE Files")
	msgs := []string{bigMsg("small", 500), bigMsg("mid", 40<<10), bigMsg("big", 300<<10), bigMsg("exact", 32<<10)}
	for _, m := range msgs {
		c.appendMsg("Files", "", m)
	}
	c.ok("SELECT Files")
	check := func(cmd string, want []string) {
		t.Helper()
		u := c.ok(cmd)
		if len(u) != len(want) {
			t.Fatalf("%s: %d responses, want %d", cmd, len(u), len(want))
		}
		for i, l := range u {
			_, lit, ok := strings.Cut(l, "}\r\n")
			if !ok || !strings.HasSuffix(lit, ")") || strings.TrimSuffix(lit, ")") != want[i] {
				t.Errorf("%s: response %d has %d bytes of literal, want the %d of message %d", cmd, i+1, len(lit), len(want[i]), i+1)
			}
		}
	}
	check("FETCH 1:* BODY.PEEK[]", msgs)
	check("UID FETCH 1:* RFC822", msgs)
	for i, m := range msgs {
		check(fmt.Sprintf("FETCH %d BODY.PEEK[]", i+1), []string{m})
		check(fmt.Sprintf("FETCH %d BODY.PEEK[]<100.70000>", i+1), []string{m[min(100, len(m)):min(70100, len(m))]})
	}
	c.ok("NOOP") // still in step
}

// TestFetchFileChanged changes message files behind the index's back (a Maildir file
// never changes, but a careless tool may): a FETCH of the whole message must not leave
// the client out of step. The session ends after the literal it promised.
func TestFetchFileChanged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		change func(path string) error
	}{
		{"longer", 1000, func(p string) error { return appendFile(p, "more\r\n") }},
		{"longer-sendfile", 100 << 10, func(p string) error { return appendFile(p, "more\r\n") }},
		{"shorter", 1000, func(p string) error { return os.Truncate(p, 500) }},
		{"shorter-sendfile", 100 << 10, func(p string) error { return os.Truncate(p, 500) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			c := e.login("a")
			m := bigMsg(tc.name, tc.size)
			c.appendMsg("INBOX", "", m)
			c.appendMsg("INBOX", "", bigMsg("other", 100))
			files, _ := filepath.Glob(filepath.Join(e.maildir("a"), "cur", "*"))
			if len(files) != 2 {
				t.Fatalf("%d files in cur/", len(files))
			}
			for _, f := range files {
				if b, _ := os.ReadFile(f); string(b) == m {
					if err := tc.change(f); err != nil {
						t.Fatal(err)
					}
				}
			}
			c.ok("SELECT INBOX")
			c.send("f1 FETCH 1:* BODY.PEEK[]\r\n")
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			all, err := io.ReadAll(c.r)
			if err != nil {
				t.Fatalf("reading to the end: %v", err)
			}
			r := bufio.NewReader(strings.NewReader(string(all)))
			head, _ := r.ReadString('\n')
			if want := fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n", len(m)); head != want {
				t.Fatalf("response %q, want %q", head, want)
			}
			if strings.Contains(string(all), "f1 OK") || strings.Contains(string(all), "* 2 FETCH") {
				t.Errorf("the session went on after a literal it could not keep: %q", all[len(head):])
			}
			if strings.HasPrefix(tc.name, "longer") && string(all[len(head):]) != m {
				t.Errorf("the literal is not the %d bytes the index knows (%d bytes after the line)", len(m), len(all)-len(head))
			}
		})
	}
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// TestSizeOfBareLFFileAtLoad: a message file with bare LF line endings and no size in
// its name, found when the folder is loaded, has the RFC822.SIZE of its CRLF form (the
// octets BODY[] and POP3's RETR send), not the size of the file.
func TestSizeOfBareLFFileAtLoad(t *testing.T) {
	e := newTestEnv(t)
	os.MkdirAll(filepath.Join(e.maildir("a"), "cur"), 0o700)
	const file = "From: b@other.test\nSubject: bare\n\nline\n"
	if err := os.WriteFile(filepath.Join(e.maildir("a"), "cur", "1700000000.M2P2.host:2,"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	c := e.login("a")
	c.ok("SELECT INBOX")
	want := len(file) + strings.Count(file, "\n")
	u := c.ok("FETCH 1 (RFC822.SIZE)")
	if !hasLine(u, fmt.Sprintf(`^\* 1 FETCH \(RFC822.SIZE %d\)$`, want)) {
		t.Errorf("FETCH RFC822.SIZE: %q, want %d", u, want)
	}
}
