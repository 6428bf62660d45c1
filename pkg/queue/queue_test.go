package queue

import (
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestWriteOpenAppend(t *testing.T) {
	s := Spool{Root: t.TempDir()}
	if err := s.Create(0o700); err != nil {
		t.Fatal(err)
	}
	env := &Envelope{ID: NewID(), From: "a@example.test", Arrival: time.Now(),
		Recipients: []Recipient{{Addr: "b@example.test"}, {Addr: "c@example.test", ORcpt: "alias@example.test"}}}
	w, err := Create(s.Dir(Incoming), env)
	if err != nil {
		t.Fatal(err)
	}
	// An unfinished file is not a message yet.
	if _, err := Open(w.Path()); err == nil {
		t.Fatal("opened an incomplete file")
	}
	body := "Subject: hi\r\n\r\nhello\r\n"
	io.Copy(w, strings.NewReader(body))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	qf, err := Open(s.Path(Incoming, env.ID))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(qf.Body())
	if string(b) != body || qf.Envelope.Recipients[1].Original() != "alias@example.test" {
		t.Fatalf("read back %q %+v", b, qf.Envelope)
	}
	if err := qf.Append(Status{Rcpt: 0, Action: Delivered, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	qf.Close()

	// A torn record (crash mid-append) is ignored and overwritten by the next append.
	f, _ := os.OpenFile(s.Path(Incoming, env.ID), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"rcpt":1,"act`)
	f.Close()
	qf, err = Open(s.Path(Incoming, env.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !qf.Done(0) || qf.Done(1) || len(qf.Statuses) != 1 {
		t.Fatalf("statuses %+v", qf.Statuses)
	}
	qf.Append(Status{Rcpt: 1, Action: Failed, Code: "5.1.1", At: time.Now()}, Status{Rcpt: -1, Attempts: 1, Next: time.Now()})
	qf.Close()
	qf, err = Open(s.Path(Incoming, env.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	if !qf.Done(1) || qf.Schedule().Attempts != 1 || len(qf.Statuses) != 3 {
		t.Fatalf("statuses %+v", qf.Statuses)
	}
	if err := s.Move(env.ID, Incoming, Active); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Find(env.ID); err != nil || st != Active {
		t.Fatalf("find: %v %v", st, err)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	var ids []string
	for i := 0; i < 100000; i++ {
		id := NewID()
		if !ValidID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("IDs do not sort by creation")
	}
	if d := time.Since(IDTime(ids[0])); d < 0 || d > time.Minute {
		t.Fatalf("IDTime off by %v", d)
	}
}

// TestRemoveAbandoned checks the removal of what a dead cleanup leaves in incoming/: an
// incomplete file nobody holds locked is removed once old enough; one whose writer is
// alive (however old), a complete one, and a young one stay.
func TestRemoveAbandoned(t *testing.T) {
	s := Spool{Root: t.TempDir()}
	if err := s.Create(0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	create := func() *Writer {
		w, err := Create(s.Dir(Incoming), &Envelope{ID: NewID(), From: "a@example.test", Recipients: []Recipient{{Addr: "b@example.test"}}})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: hi\r\n\r\nhello\r\n")
		return w
	}
	writing := create()
	defer writing.Abort()
	done := create()
	if err := done.Commit(); err != nil {
		t.Fatal(err)
	}
	dead := s.Path(Incoming, NewID())
	young := s.Path(Incoming, NewID())
	for _, p := range []string{dead, young} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{writing.Path(), done.Path(), dead} {
		os.Chtimes(p, old, old)
	}
	for _, c := range []struct {
		what, path string
		removed    bool
	}{{"abandoned", dead, true}, {"being written", writing.Path(), false}, {"complete", done.Path(), false}, {"young", young, false}, {"gone", dead, false}} {
		removed, err := RemoveAbandoned(c.path, time.Minute)
		if err != nil || removed != c.removed {
			t.Errorf("%s file: removed %v, %v; want %v", c.what, removed, err, c.removed)
		}
		if _, err := os.Stat(c.path); (err == nil) == c.removed && c.what != "gone" {
			t.Errorf("%s file: exists %v after RemoveAbandoned", c.what, err == nil)
		}
	}
	// The file being written is still its writer's to finish.
	if err := writing.Commit(); err != nil {
		t.Fatalf("the writer lost its file: %v", err)
	}
}

// TestCommitForNobody checks that CommitFor leaves no message queued when the one waiting
// for the answer has gone, and commits when it is there.
func TestCommitForNobody(t *testing.T) {
	s := Spool{Root: t.TempDir()}
	if err := s.Create(0o700); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []bool{true, false} {
		w, err := Create(s.Dir(Incoming), &Envelope{ID: NewID(), From: "a@example.test", Recipients: []Recipient{{Addr: "b@example.test"}}})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: hi\r\n\r\nhello\r\n")
		err = w.CommitFor(func() bool { return gone })
		_, serr := os.Stat(w.Path())
		switch {
		case gone && (!errors.Is(err, ErrNobodyWaits) || serr == nil):
			t.Errorf("nobody waits: %v, file left: %v", err, serr == nil)
		case !gone && (err != nil || serr != nil):
			t.Errorf("somebody waits: %v, %v", err, serr)
		}
	}
}
