package main

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"postern/pkg/auth"
)

// fakeIMAP is an IMAP server on loopback (go-imap's in-memory server) holding
// alice@example.test's mail, which takes httpd's web token mechanism, and counts the
// FETCH commands that ask for BINARY sections (the bodies and parts of messages).
type fakeIMAP struct {
	user *imapmemserver.User

	mu            sync.Mutex
	binaryFetches int
}

// newFakeIMAP starts a fakeIMAP for s (its imapAddr) with an empty INBOX.
func newFakeIMAP(t *testing.T, s *Server) *fakeIMAP {
	t.Helper()
	f := &fakeIMAP{user: imapmemserver.NewUser("alice@example.test", "pw")}
	if err := f.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &fakeIMAPSession{UserSession: imapmemserver.NewUserSession(f.user), f: f}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s.imapAddr = l.Addr().String()
	return f
}

// add APPENDs a message to INBOX.
func (f *fakeIMAP) add(t *testing.T, msg string) {
	t.Helper()
	if _, err := f.user.Append("INBOX", bytes.NewReader([]byte(msg)), &imap.AppendOptions{Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// fetches is the number of FETCH commands with BINARY sections so far.
func (f *fakeIMAP) fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.binaryFetches
}

type fakeIMAPSession struct {
	*imapmemserver.UserSession
	f *fakeIMAP
}

func (s *fakeIMAPSession) Login(user, password string) error {
	return s.UserSession.Login(user, password)
}

func (s *fakeIMAPSession) AuthenticateMechanisms() []string { return []string{auth.WebMechanism} }

// Authenticate takes auth.WebMechanism with any token for alice.
func (s *fakeIMAPSession) Authenticate(mech string) (sasl.Server, error) {
	if mech != auth.WebMechanism {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	return webServer{}, nil
}

type webServer struct{}

func (webServer) Next(resp []byte) ([]byte, bool, error) {
	user, _, err := auth.ParseWebResponse(resp)
	if err == nil && user != "alice@example.test" {
		err = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "no such user"}
	}
	return nil, true, err
}

func (s *fakeIMAPSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if len(options.BinarySection) > 0 {
		s.f.mu.Lock()
		s.f.binaryFetches++
		s.f.mu.Unlock()
	}
	return s.UserSession.Fetch(w, numSet, options)
}
