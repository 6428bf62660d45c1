package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"postern/pkg/auth"
	"postern/pkg/dkim"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/queue"
)

// fakeSendAs: a@example.test may send as itself and team@example.test.
func fakeSendAs(_ context.Context, _ ipc.Cred, body json.RawMessage, _ []*os.File) (any, error) {
	var req auth.SendAsRequest
	json.Unmarshal(body, &req)
	if req.User != "a@example.test" {
		return nil, ipc.Errorf("notfound", "no account")
	}
	return auth.SendAsResult{Addresses: []string{"a@example.test", "team@example.test"}}, nil
}

// startSigning runs cleanup with DKIM keys for example.test (ed25519 and rsa) and
// returns them.
func startSigning(t *testing.T, hide bool) (*enqueue.Client, queue.Spool, []*dkim.Key) {
	t.Helper()
	return startSigningWith(t, func(c *Cleanup) { c.HideClient = hide })
}

// startSigningWith is startSigning with a chance to configure the Cleanup further.
func startSigningWith(t *testing.T, configure func(c *Cleanup)) (*enqueue.Client, queue.Spool, []*dkim.Key) {
	t.Helper()
	var keys []*dkim.Key
	cl, spool, _ := startWith(t, func(c *Cleanup, dir string) {
		kdir := filepath.Join(dir, "dkim")
		for sel, alg := range map[string]string{"ed": dkim.Ed25519, "rsa": dkim.RSA} {
			k, err := dkim.Generate(kdir, "example.test", sel, alg, -1, -1)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		c.DKIM = &dkim.Keyring{Dir: kdir}
		configure(c)
	})
	return cl, spool, keys
}

func lookupKeys(keys []*dkim.Key) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		for _, k := range keys {
			if name == k.RecordName() {
				rec, err := k.Record()
				return []string{rec}, err
			}
		}
		return nil, fmt.Errorf("no TXT record for %s", name)
	}
}

// verify checks that the message carries one valid signature per key, for domain.
func verify(t *testing.T, msg []byte, keys []*dkim.Key, domain string) {
	t.Helper()
	vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(msg), &msgdkim.VerifyOptions{LookupTXT: lookupKeys(keys)})
	if err != nil || len(vs) != len(keys) {
		t.Fatalf("verify: %v, %d signatures, want %d:\n%.600s", err, len(vs), len(keys), msg)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != domain {
			t.Errorf("signature %+v", v)
		}
	}
}

func body(t *testing.T, spool queue.Spool, id string) []byte {
	t.Helper()
	qf, err := queue.Open(spool.Path(queue.Incoming, id))
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	b, _ := io.ReadAll(qf.Body())
	return b
}

func submission(from string) *enqueue.Envelope {
	return &enqueue.Envelope{From: from, AuthUser: "a@example.test", Submission: true, ClientAddr: "192.0.2.7", Helo: "laptop",
		Protocol: "ESMTPSA", Recipients: []enqueue.Recipient{{Addr: "friend@other.test"}}}
}

func TestSubmissionSignedAndChecked(t *testing.T) {
	cl, spool, keys := startSigning(t, true)
	msg := "From: \"A\" <a@example.test>\r\nTo: friend@other.test\r\nSubject: signed\r\n\r\nhello\r\n"
	res, err := send(t, cl, submission("a@example.test"), msg)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, spool, res.QueueID)
	if !bytes.HasPrefix(b, []byte("DKIM-Signature: ")) || !bytes.HasSuffix(b, []byte(msg)) {
		t.Fatalf("queued message:\n%s", b)
	}
	verify(t, b, keys, "example.test")
	// hide_client: the Received header names no client; Message-ID and Date were added.
	if bytes.Contains(b, []byte("192.0.2.7")) || bytes.Contains(b, []byte("laptop")) || !bytes.Contains(b, []byte("with ESMTPSA id")) {
		t.Errorf("Received header shows the client:\n%s", b)
	}
	if !bytes.Contains(b, []byte("\r\nMessage-ID: <"+res.QueueID+"@mx.example.test>\r\nDate: ")) {
		t.Errorf("no Message-ID and Date:\n%s", b)
	}

	// An alias of the user, a plus-address and a display name in an unknown charset
	// are fine; a large message is signed as it streams.
	big := "From: =?x-unknown?B?w6k=?= <Team+x@Example.TEST>\r\nSubject: big\r\n\r\n" + strings.Repeat("0123456789abcdefghij\r\n", 300000)
	res, err = send(t, cl, submission("a@example.test"), big)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, body(t, spool, res.QueueID), keys, "example.test")

	// Someone else's From:, none, two, or garbage: 550 5.7.1 from smtpd, nothing queued.
	for _, m := range []string{
		"From: b@example.test\r\n\r\nx\r\n",
		"From: a@example.test\r\nSender: b@example.test\r\n\r\nx\r\n",
		"From: a@example.test, boss@example.test\r\n\r\nx\r\n",
		"From: a@example.test\r\nFrom: b@example.test\r\n\r\nx\r\n",
		"Subject: no from\r\n\r\nx\r\n",
		"From: <<<\r\n\r\nx\r\n",
		"From: a@example.test\r\n" + strings.Repeat("X-Long: "+strings.Repeat("y", 990)+"\r\n", 70) + "\r\nx\r\n",
	} {
		_, err := send(t, cl, submission("a@example.test"), m)
		if !ipc.IsCode(err, enqueue.CodeRejected) {
			t.Errorf("%.60q: err = %v, want rejected", m, err)
		}
	}
	ids, _ := spool.List(queue.Incoming)
	if len(ids) != 2 {
		t.Errorf("%d files in incoming, want 2", len(ids))
	}
	// The connection stays usable after a refusal.
	if _, err := send(t, cl, submission("a@example.test"), msg); err != nil {
		t.Fatal(err)
	}
}

// The From: of a submission is checked against the addresses smtpd was given at AUTH
// (Envelope.SendAs), when it sends them, not against a new answer of authd.
func TestSendAsFromSMTPD(t *testing.T) {
	cl, _, _ := startSigning(t, true)
	env := submission("a@example.test")
	env.SendAs = []string{"a@example.test", "boss@example.test"} // fakeSendAs would refuse boss@
	if _, err := send(t, cl, env, "From: boss@example.test\r\n\r\nx\r\n"); err != nil {
		t.Errorf("From: an address smtpd's list allows: %v", err)
	}
	env.SendAs = []string{"a@example.test"} // fakeSendAs would allow team@
	if _, err := send(t, cl, env, "From: team@example.test\r\n\r\nx\r\n"); !ipc.IsCode(err, enqueue.CodeRejected) {
		t.Errorf("From: an address smtpd's list does not allow: err = %v, want rejected", err)
	}
}

func TestBounceSignedInboundNot(t *testing.T) {
	cl, spool, keys := startSigning(t, false)
	// A bounce's From: is at the host name; the parent domain's keys sign it.
	res, err := send(t, cl, &enqueue.Envelope{Bounce: true, Recipients: []enqueue.Recipient{{Addr: "x@other.test"}}},
		"From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\nSubject: Undelivered\r\n\r\nsorry\r\n")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, body(t, spool, res.QueueID), keys, "example.test")
	// Mail from the world is not signed, even with a From: of ours.
	res, err = send(t, cl, &enqueue.Envelope{From: "x@other.test", ClientAddr: "192.0.2.9", Recipients: []enqueue.Recipient{{Addr: "a@example.test"}}},
		"From: a@example.test\r\n\r\nforged\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, spool, res.QueueID); bytes.Contains(b, []byte("DKIM-Signature")) || !bytes.Contains(b, []byte("192.0.2.9")) {
		t.Errorf("inbound message:\n%s", b)
	}
	// A submission from a domain without keys goes out unsigned.
	res, err = send(t, cl, &enqueue.Envelope{From: "u@other.test", Submission: true, Recipients: []enqueue.Recipient{{Addr: "a@example.test"}}},
		"From: u@other.test\r\n\r\nx\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, spool, res.QueueID); bytes.Contains(b, []byte("DKIM-Signature")) {
		t.Errorf("signed without a key:\n%s", b)
	}
	// A message that is all header, without the empty line, cannot be signed: it is
	// queued unsigned all the same.
	res, err = send(t, cl, submission("a@example.test"), "From: a@example.test\r\nSubject: no body\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, spool, res.QueueID); bytes.Contains(b, []byte("DKIM-Signature")) || !bytes.HasSuffix(b, []byte("Subject: no body\r\n")) {
		t.Errorf("header-only message:\n%s", b)
	}
}

func TestHeaderAddresses(t *testing.T) {
	for _, c := range []struct {
		section, want string
		err           bool
	}{
		{"From: a@b.test\r\n", "a@b.test", false},
		{"from:\r\n \"Name, Folded\"\r\n\t<a@b.test>\r\nSubject: x\r\n", "a@b.test", false},
		{"FROM : =?utf-8?q?J=C3=B6?= <a@b.test>, c@d.test\r\n", "a@b.test c@d.test", false},
		{"Subject: x\r\n", "", false},
		{"X-From: a@b.test\r\n", "", false},
		{"Subject: x\r\n From: folded@b.test\r\n", "", false},
		{"From: a@b.test\r\nFrom: c@d.test\r\n", "", true},
		{"From: not an address\r\n", "", true},
	} {
		got, err := headerAddresses([]byte(c.section), "From")
		if strings.Join(got, " ") != c.want || (err != nil) != c.err {
			t.Errorf("headerAddresses(%q) = %q, %v", c.section, got, err)
		}
	}
}

// FuzzHeaderAddresses: the From: parser takes any header section without panicking,
// and what it returns are addresses with an @.
func FuzzHeaderAddresses(f *testing.F) {
	for _, s := range []string{
		"From: a@b.test\r\n", "From: \"x\" <a@b.test>\r\n\tSubject: y\r\n", "From: =?utf-8?B?w6k=?= <a@b>\r\n",
		"From: a@b, c@d\r\n", "From:\r\n", "From: <>\r\n", "From: (comment) a@b (c)\r\n", "From: g: a@b, c@d;\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, section []byte) {
		addrs, err := headerAddresses(section, "From")
		if err != nil {
			return
		}
		for _, a := range addrs {
			if !strings.Contains(a, "@") {
				t.Errorf("address %q without @ from %q", a, section)
			}
		}
	})
}

// TestSendAsDisplayNameAndResent: a display name that is another address, plainly,
// in nested quotes, encoded or with a fullwidth at sign, and a Resent-From: or
// Resent-Sender: the user may not use are refused like a foreign From:; the user's own
// address as display name, and Resent-* in the user's name, are fine.
func TestSendAsDisplayNameAndResent(t *testing.T) {
	cl, _, _ := startSigning(t, true)
	for _, m := range []string{
		"From: \"b@example.test\" <a@example.test>\r\n\r\nx\r\n",
		"From: \"\\\"b@example.test\\\"\" <a@example.test>\r\n\r\nx\r\n",
		"From: \"'b@example.test'\" <a@example.test>\r\n\r\nx\r\n",
		"From: \"Boss <b@example.test>\" <a@example.test>\r\n\r\nx\r\n",
		"From: =?utf-8?q?b=40example=2Etest?= <a@example.test>\r\n\r\nx\r\n",
		"From: \"b\uff20example.test\" <a@example.test>\r\n\r\nx\r\n",
		"From: a@example.test\r\nResent-From: b@example.test\r\n\r\nx\r\n",
		"Resent-From: a@example.test\r\nResent-Sender: b@example.test\r\nFrom: a@example.test\r\n\r\nx\r\n",
		"Resent-From: a@example.test\r\nResent-From: b@example.test\r\nFrom: a@example.test\r\n\r\nx\r\n",
		"From: a@example.test\r\nResent-From: \"b@example.test\" <a@example.test>\r\n\r\nx\r\n",
		"From: a@example.test\r\nResent-From: <<<\r\n\r\nx\r\n",
	} {
		_, err := send(t, cl, submission("a@example.test"), m)
		if !ipc.IsCode(err, enqueue.CodeRejected) {
			t.Errorf("%.70q: err = %v, want rejected", m, err)
		}
	}
	for _, m := range []string{
		"From: \"a@example.test\" <a@example.test>\r\n\r\nx\r\n",
		"From: \"Team (team@example.test)\" <a@example.test>\r\n\r\nx\r\n",
		"From: \"Alice at home\" <a@example.test>\r\n\r\nx\r\n",
		"Resent-From: a@example.test\r\nResent-Sender: team@example.test\r\nFrom: a@example.test\r\n\r\nx\r\n",
	} {
		if _, err := send(t, cl, submission("a@example.test"), m); err != nil {
			t.Errorf("%.70q: %v", m, err)
		}
	}
}

// FuzzNameAddress: the scan of display names for addresses takes any text without
// panicking, and what it reports contains an @ and is not one of the user's addresses.
func FuzzNameAddress(f *testing.F) {
	for _, s := range []string{
		"demo@example.test", `"demo@example.test"`, "Boss <b@x.test>", "a\uff20b.test", "@", "x@", "@y", "",
		"Team (team@example.test)", "a@example.test b@example.test",
	} {
		f.Add(s)
	}
	sa := auth.SendAsResult{Addresses: []string{"a@example.test"}}
	f.Fuzz(func(t *testing.T, name string) {
		got := nameAddress(name, sa)
		if got != "" && (!strings.Contains(got, "@") || sa.Allows(got)) {
			t.Errorf("nameAddress(%q) = %q", name, got)
		}
	})
}
