package queue

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestReservePrepend(t *testing.T) {
	s := Spool{Root: t.TempDir()}
	if err := s.Create(0o700); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "DKIM-Signature: v=1; a=ed25519-sha256;\r\n\tb=xyz\r\n", strings.Repeat("x", 100)} {
		env := &Envelope{ID: NewID(), From: "a@example.test", Arrival: time.Now(), Recipients: []Recipient{{Addr: "b@example.test"}}}
		w, err := Create(s.Dir(Incoming), env)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Reserve(100); err != nil {
			t.Fatal(err)
		}
		body := "Subject: hi\r\n\r\nhello\r\n"
		io.Copy(w, strings.NewReader(body))
		if err := w.Reserve(10); err == nil {
			t.Error("Reserve after the message started succeeded")
		}
		if err := w.Prepend([]byte(strings.Repeat("y", 101))); err == nil {
			t.Error("Prepend larger than the room succeeded")
		}
		if err := w.Prepend([]byte(prefix)); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		qf, err := Open(s.Path(Incoming, env.ID))
		if err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		b, _ := io.ReadAll(qf.Body())
		if string(b) != prefix+body || qf.BodySize() != int64(len(prefix+body)) || qf.Envelope.From != "a@example.test" {
			t.Errorf("read back %q (size %d), envelope %+v", b, qf.BodySize(), qf.Envelope)
		}
		if err := qf.Append(Status{Rcpt: 0, Action: Delivered, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		qf.Close()
		if qf, err = Open(s.Path(Incoming, env.ID)); err != nil || len(qf.Statuses) != 1 {
			t.Fatalf("reopen: %v", err)
		}
		qf.Close()
	}
}

// TestRewriteEnvelope checks that an envelope rewritten at Commit (spamd's verdict) is
// read back, with the prefix, within the reserved room, and that one too large for the
// room fails the Commit instead of corrupting the file.
func TestRewriteEnvelope(t *testing.T) {
	s := Spool{Root: t.TempDir()}
	if err := s.Create(0o700); err != nil {
		t.Fatal(err)
	}
	for _, tooBig := range []bool{false, true} {
		env := &Envelope{ID: NewID(), From: "a@example.test", Arrival: time.Now(), Recipients: []Recipient{{Addr: "b@example.test"}}}
		w, err := Create(s.Dir(Incoming), env)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Reserve(200); err != nil {
			t.Fatal(err)
		}
		body := "Subject: hi\r\n\r\nhello\r\n"
		io.WriteString(w, body)
		prefix := "X-Spam-Status: Yes\r\n"
		w.Prepend([]byte(prefix))
		changed := *env
		changed.Spam = true
		if tooBig {
			changed.Helo = strings.Repeat("h", 300)
		}
		if err := w.Rewrite(&changed); err != nil {
			t.Fatal(err)
		}
		err = w.Commit()
		if tooBig {
			if err == nil {
				t.Error("an envelope too large for the room was committed")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		qf, err := Open(s.Path(Incoming, env.ID))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(qf.Body())
		if !qf.Envelope.Spam || qf.Envelope.From != "a@example.test" || string(b) != prefix+body {
			t.Errorf("read back %+v, %q", qf.Envelope, b)
		}
		qf.Close()
	}
}
