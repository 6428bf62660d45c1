package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// decode parses a native-protocol entry the way journald does, both forms.
func decode(t *testing.T, b []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			t.Fatalf("entry does not end with a newline: %q", b)
		}
		line := b[:nl]
		if name, value, ok := bytes.Cut(line, []byte("=")); ok {
			out[string(name)] = append(out[string(name)], string(value))
			b = b[nl+1:]
			continue
		}
		// NAME\n, 64-bit little-endian length, value, \n.
		name := string(line)
		b = b[nl+1:]
		if len(b) < 8 {
			t.Fatalf("field %s: no length", name)
		}
		n := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if uint64(len(b)) < n+1 || b[n] != '\n' {
			t.Fatalf("field %s: length %d does not match the data", name, n)
		}
		out[name] = append(out[name], string(b[:n]))
		b = b[n+1:]
	}
	return out
}

// fakeJournal is a unixgram socket standing in for journald's.
type fakeJournal struct {
	path string
	fd   int
}

func newFakeJournal(t *testing.T) *fakeJournal {
	path := filepath.Join(t.TempDir(), "socket")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	return &fakeJournal{path: path, fd: fd}
}

// receive returns the next entry, read from the memfd when one came instead of data.
func (j *fakeJournal) receive(t *testing.T) map[string][]string {
	t.Helper()
	buf := make([]byte, 1<<20)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(j.fd, buf, oob, 0)
	if err != nil {
		t.Fatalf("no entry: %v", err)
	}
	if oobn == 0 {
		return decode(t, buf[:n])
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "memfd")
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_WRITE == 0 {
		t.Errorf("memfd not sealed against writes: seals %#x, %v", seals, err)
	}
	// From offset 0, as journald maps it: the sender's writes left the shared offset
	// at the end.
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return decode(t, b)
}

func TestAppendForms(t *testing.T) {
	got := string(Encode([]Field{{"A", "one line"}, {"B", "two\nlines"}, {"C", ""}}))
	want := "A=one line\nB\n" + "\x09\x00\x00\x00\x00\x00\x00\x00" + "two\nlines\nC=\n"
	if got != want {
		t.Errorf("Encode = %q, want %q", got, want)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"POSTERN_to":            "POSTERN_TO",
		"POSTERN_tls.peer":      "POSTERN_TLS_PEER",
		"_secret":               "X_SECRET",
		"9lives":                "X9LIVES",
		strings.Repeat("a", 80): strings.Repeat("A", 64),
	} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHandlerSendsFields(t *testing.T) {
	j := newFakeJournal(t)
	conn, err := Dial(j.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	log := slog.New(NewHandler(conn, HandlerOptions{
		Level:      slog.LevelDebug,
		Identifier: "postern/qmgr",
		Prefix:     "POSTERN_",
		Names:      map[string]string{"id": "POSTERN_QUEUE_ID"},
	})).With("daemon", "qmgr", "id", "4Q7abc")

	log.Warn("delivery", "to", "<a@example.test>", "reason", "550 no\nsuch user", slog.Group("tls", "version", "1.3"))
	e := j.receive(t)
	for name, want := range map[string]string{
		"PRIORITY":            "4",
		"SYSLOG_IDENTIFIER":   "postern/qmgr",
		"POSTERN_QUEUE_ID":    "4Q7abc",
		"POSTERN_DAEMON":      "qmgr",
		"POSTERN_TO":          "<a@example.test>",
		"POSTERN_REASON":      "550 no\nsuch user",
		"POSTERN_TLS_VERSION": "1.3",
		"MESSAGE":             `delivery daemon=qmgr id=4Q7abc to=<a@example.test> reason="550 no\nsuch user" tls.version=1.3`,
	} {
		if got := e[name]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, ok := e["POSTERN_ID"]; ok {
		t.Error("id sent as POSTERN_ID too")
	}

	log.Debug("quiet")
	if e := j.receive(t); e["PRIORITY"][0] != "7" {
		t.Errorf("debug PRIORITY = %q", e["PRIORITY"])
	}
	slog.New(NewHandler(conn, HandlerOptions{})).Error("boom")
	if e := j.receive(t); e["PRIORITY"][0] != "3" || e["MESSAGE"][0] != "boom" {
		t.Errorf("error entry = %q", e)
	}
	if (&Handler{}).Enabled(t.Context(), slog.LevelDebug) {
		t.Error("debug enabled without a level")
	}
}

// An entry larger than a datagram can be travels in a sealed memfd.
func TestLargeEntryGoesByMemfd(t *testing.T) {
	j := newFakeJournal(t)
	conn, err := Dial(j.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	big := strings.Repeat("x", 4<<20)
	if err := conn.Send([]Field{{"MESSAGE", big}, {"POSTERN_QUEUE_ID", "4Q7abc"}}); err != nil {
		t.Fatal(err)
	}
	e := j.receive(t)
	if len(e["MESSAGE"]) != 1 || e["MESSAGE"][0] != big || e["POSTERN_QUEUE_ID"][0] != "4Q7abc" {
		t.Errorf("large entry lost: %d fields", len(e))
	}
}

func TestFallbackWhenJournalGone(t *testing.T) {
	j := newFakeJournal(t)
	conn, err := Dial(j.path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	os.Remove(j.path)
	var buf bytes.Buffer
	err = NewHandler(conn, HandlerOptions{Identifier: "postern/local", Fallback: &buf}).Handle(t.Context(), slog.NewRecord(time.Time{}, slog.LevelInfo, "delivered", 0))
	if err == nil || !strings.HasPrefix(buf.String(), "postern/local: delivered") {
		t.Errorf("fallback: err %v, wrote %q", err, buf.String())
	}
	if _, err := Dial(j.path); err == nil {
		t.Error("Dial of a missing socket succeeded")
	}
}

func TestIsStream(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	if !isStream(int(f.Fd()), fmt.Sprintf("%d:%d", st.Dev, st.Ino)) {
		t.Error("the descriptor's own stream not recognized")
	}
	if isStream(int(f.Fd()), fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)) || isStream(int(f.Fd()), "") {
		t.Error("another stream recognized")
	}
}
