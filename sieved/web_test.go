package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/ipc"
)

// X-POSTERN-WEB logs httpd in with a web session token that authd vouches for, and
// does not exist for any other peer.
func TestWebLogin(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(dir, "auth")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	authd := &ipc.Server{Name: "fake-authd"}
	authd.Handle(auth.OpWebCheck, func(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
		var req auth.WebCheckRequest
		json.Unmarshal(body, &req)
		return auth.WebCheckResult{OK: req.Token == "good", Address: "demo@example.test"}, nil
	})
	go authd.Serve(ctx, l)
	fromHTTPD := false
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), auth: auth.NewClient(sock), store: &Store{Root: dir},
		webPeer: func(ipc.Cred) bool { return fromHTTPD }}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go s.serve(ctx, c)
		}
	}()
	// login sends the web login with token, then the commands then; it returns the
	// last reply.
	login := func(token string, then ...string) string {
		t.Helper()
		c, err := net.Dial("tcp", tl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		readOK := func() string {
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("reading: %v", err)
				}
				if strings.HasPrefix(line, "OK") || strings.HasPrefix(line, "NO") || strings.HasPrefix(line, "BYE") {
					return strings.TrimSpace(line)
				}
			}
		}
		readOK()
		fmt.Fprintf(c, "AUTHENTICATE \"X-POSTERN-WEB\" \"%s\"\r\n", base64.StdEncoding.EncodeToString(auth.WebResponse("demo@example.test", token)))
		got := readOK()
		for _, cmd := range then {
			fmt.Fprintf(c, "%s\r\n", cmd)
			got = readOK()
		}
		return got
	}
	if got := login("good"); got != `NO "Only PLAIN is supported"` {
		t.Errorf("from a peer that is not httpd: %s", got)
	}
	fromHTTPD = true
	if got := login("good"); got != `OK "Logged in"` {
		t.Errorf("from httpd with a good token: %s", got)
	}
	// RFC 5804 §2.14.1: UNAUTHENTICATE goes back to the state before the login.
	if got := login("good", "LISTSCRIPTS"); !strings.HasPrefix(got, "OK") {
		t.Errorf("LISTSCRIPTS logged in: %s", got)
	}
	if got := login("good", "UNAUTHENTICATE", "LISTSCRIPTS"); got != `NO "Log in first"` {
		t.Errorf("LISTSCRIPTS after UNAUTHENTICATE: %s", got)
	}
	if got := login("stolen"); got != `NO "Authentication failed"` {
		t.Errorf("from httpd with a bad token: %s", got)
	}
}
