package main

import (
	"context"
	"encoding/json"
	"net/mail"
	"os"
	"os/user"
	"strconv"
	"strings"

	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/smtp"
)

// Local submission: sendmail(1) hands a local user's message to cleanup over
// <spool>/public/cleanup, a socket every local user may connect to (Postfix's postdrop
// and pickup in one step). cleanup believes nothing about the user but what the kernel
// says (SO_PEERCRED): the Received header names the uid, the default sender is
// user@hostname. The message is an authenticated submission of a local user: no spam
// check, DKIM-signed like the mail of smtpd's submission port.

// localSubmission is the Unix user who submitted a message through sendmail.
type localSubmission struct {
	uid  int
	name string // the login name, or the uid when it has none
	// fullName is sendmail -F's, for a From: field cleanup adds.
	fullName string
	// maxSize is the largest message taken ([smtpd] max_message_size).
	maxSize int64
}

// UID returns the submitter's uid for the log, or nil when there is no submitter.
func (l *localSubmission) UID() any {
	if l == nil {
		return nil
	}
	return l.uid
}

// fromField is the From: field of a message that has none: the envelope sender and the
// full name sendmail -F gave, or MAILER-DAEMON for the null sender.
func (l *localSubmission) fromField(sender, hostname string) string {
	if sender == "" {
		sender = "MAILER-DAEMON@" + hostname
	}
	a := mail.Address{Name: l.fullName, Address: sender}
	return "From: " + a.String() + "\r\n"
}

// PublicServer returns the ipc server of public/cleanup, open to every local user.
// maxSize bounds the messages it takes.
func (c *Cleanup) PublicServer(maxSize int64) *ipc.Server {
	s := &ipc.Server{Name: "cleanup-public", Logger: c.Log}
	s.HandleStream(enqueue.OpSubmit, func(ctx context.Context, peer ipc.Cred, conn *ipc.Conn, body json.RawMessage, files []*os.File) error {
		ipc.CloseFiles(files)
		return c.serveSubmit(ctx, peer, conn, body, maxSize)
	})
	return s
}

// serveSubmit takes a message from sendmail. Of the request only the addresses, the full
// name and the body type are taken; everything that would make it more than a local
// user's submission (authd's answers, an AUTH identity, a client address) is not in
// enqueue.Local at all.
func (c *Cleanup) serveSubmit(ctx context.Context, peer ipc.Cred, conn *ipc.Conn, body json.RawMessage, maxSize int64) error {
	var req enqueue.Local
	if err := json.Unmarshal(body, &req); err != nil {
		return c.refuseStream(conn, ipc.Errorf("invalid", "decoding envelope: %v", err))
	}
	l := &localSubmission{uid: peer.UID, name: strconv.Itoa(peer.UID), maxSize: maxSize}
	if u, err := user.LookupId(strconv.Itoa(peer.UID)); err == nil {
		l.name = u.Username
	}
	env, err := localEnvelope(&req, l, c.Hostname)
	if err != nil {
		c.Log.Info("refused", "uid", peer.UID, "reason", err.Error())
		return c.refuseStream(conn, err)
	}
	return c.enqueue(ctx, conn, env, l)
}

// localEnvelope checks the addresses of a local submission and makes its envelope. An
// address without a domain is the user's own at this host, as in Postfix
// (append_at_myorigin): "root" is root@hostname.
func localEnvelope(req *enqueue.Local, l *localSubmission, hostname string) (*enqueue.Envelope, error) {
	env := &enqueue.Envelope{Submission: true, BodyType: req.BodyType, Ret: req.Ret, EnvID: req.EnvID}
	// qualify also marks the envelope SMTPUTF8 when an address is not ASCII.
	qualify := func(a string) (string, error) {
		a = strings.TrimSpace(a)
		if !strings.Contains(a, "@") {
			a += "@" + hostname
		}
		addr, err := smtp.ParseAddress(a, true)
		if err != nil {
			return "", enqueue.Refusal(enqueue.CodeRejected, "5.1.3", "Bad address syntax: "+strconv.Quote(a))
		}
		if !addr.IsASCII() {
			env.SMTPUTF8 = true
		}
		return addr.String(), nil
	}
	switch req.BodyType {
	case "", "7BIT", "8BITMIME":
	default:
		return nil, ipc.Errorf("invalid", "unknown body type %q (7BIT or 8BITMIME)", req.BodyType)
	}
	switch req.Ret {
	case "", "FULL", "HDRS": // RFC 3461 §4.3
	default:
		return nil, ipc.Errorf("invalid", "unknown RET %q (FULL or HDRS)", req.Ret)
	}
	// RFC 3461 §4.4: an ENVID is at most 100 characters; the queue keeps printable ASCII.
	if len(req.EnvID) > 100 || strings.IndexFunc(req.EnvID, func(r rune) bool { return r < '!' || r > '~' }) >= 0 {
		return nil, ipc.Errorf("invalid", "invalid envelope ID %q", req.EnvID)
	}
	notify := ""
	if req.Notify != "" {
		n, ok := smtp.ParseNotify(req.Notify)
		if !ok {
			return nil, ipc.Errorf("invalid", "invalid NOTIFY %q", req.Notify)
		}
		notify = n
	}
	switch {
	case req.NullSender:
	case req.Sender != "":
		from, err := qualify(req.Sender)
		if err != nil {
			return nil, err
		}
		env.From = from
	default:
		from, err := qualify(l.name)
		if err != nil {
			return nil, err
		}
		env.From = from
	}
	if len(req.Recipients) == 0 {
		return nil, enqueue.Refusal(enqueue.CodeRejected, "5.5.1", "No recipients")
	}
	for _, r := range req.Recipients {
		a, err := qualify(r)
		if err != nil {
			return nil, err
		}
		env.Recipients = append(env.Recipients, enqueue.Recipient{Addr: a, Notify: notify})
	}
	// The name goes into a header field: no control characters (a CRLF would start a
	// field of the user's choosing).
	l.fullName = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, req.FullName)
	return env, nil
}
