package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"postern/pkg/auth"
	"postern/pkg/dkim"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/metrics"
	"postern/pkg/queue"
	"postern/pkg/smtp"
)

// Cleanup serves enqueue requests.
type Cleanup struct {
	Hostname string
	Spool    queue.Spool
	Auth     *auth.Client
	Qmgr     *ipc.Client
	Log      *slog.Logger
	// DKIM holds the signing keys of outbound mail (submissions and bounces); nil signs
	// nothing.
	DKIM *dkim.Keyring
	// HideClient leaves the client's address and HELO name out of the Received header
	// of authenticated submissions ([submission] hide_client).
	HideClient bool
	// Spam is how inbound mail is checked by spamd.
	Spam SpamPolicy
	// Reports is what cleanup takes from spamd as its reports.
	Reports ReportPolicy
	// OnlyLocal tells a peer that may queue local's messages alone (local's uid):
	// forwarded messages (forward.go) and automatic replies (autoreply.go); nil: none.
	OnlyLocal func(ipc.Cred) bool

	wake chan string
}

// Server returns the ipc server of private/cleanup.
func (c *Cleanup) Server(allow func(ipc.Cred) bool) *ipc.Server {
	c.wake = make(chan string, 4096)
	s := &ipc.Server{Name: "cleanup", Allow: allow, Logger: c.Log}
	s.HandleStream(enqueue.OpEnqueue, c.serveEnqueue)
	return s
}

func (c *Cleanup) serveEnqueue(ctx context.Context, peer ipc.Cred, conn *ipc.Conn, body json.RawMessage, files []*os.File) error {
	ipc.CloseFiles(files)
	var env enqueue.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return c.refuseStream(conn, ipc.Errorf("invalid", "decoding envelope: %v", err))
	}
	if rerr := c.checkReportEnvelope(peer, &env); rerr != nil {
		return c.refuseStream(conn, rerr)
	}
	if c.OnlyLocal != nil && c.OnlyLocal(peer) && !env.Forward && !env.AutoReply {
		return c.refuseStream(conn, ipc.Errorf("denied", "this peer may queue forwarded messages and automatic replies only"))
	}
	if rerr := checkForwardEnvelope(&env); rerr != nil {
		return c.refuseStream(conn, rerr)
	}
	if rerr := checkAutoReplyEnvelope(&env); rerr != nil {
		return c.refuseStream(conn, rerr)
	}
	return c.enqueue(ctx, conn, &env, nil)
}

// refuseStream answers err to a client whose message is refused before it is read: the
// client streams regardless, so the stream is drained to keep the connection in sync.
func (c *Cleanup) refuseStream(conn *ipc.Conn, err error) error {
	if _, derr := io.Copy(io.Discard, conn.StreamReader()); derr != nil {
		return derr
	}
	var end enqueue.End
	if _, rerr := conn.Receive(&end); rerr != nil {
		return rerr
	}
	return conn.Reply(nil, err)
}

// enqueue receives the message of env over conn into a queue file and answers with its
// queue ID once the file is durable. local is the submitting Unix user of a message from
// sendmail (public/cleanup), nil for smtpd's and qmgr's.
func (c *Cleanup) enqueue(ctx context.Context, conn *ipc.Conn, env *enqueue.Envelope, local *localSubmission) error {
	w, err := c.begin(ctx, env, local)
	if err != nil {
		return c.refuseStream(conn, err)
	}
	w.hideClient = c.HideClient && env.Submission
	fixer := newHeaderFixer(conn.StreamReader(), w, c.Hostname)
	if err := fixer.prepare(); err != nil {
		w.Abort()
		return fmt.Errorf("receiving message: %w", err)
	}
	// The header section is known: check the author of a submission, and start the
	// DKIM signatures of outbound mail, computed as the message streams into the file.
	refusal := c.checkAuthor(ctx, w.env.ID, env, fixer)
	if refusal == nil {
		refusal = c.checkReportAuthor(env, fixer)
	}
	var signer *dkim.Signer
	var dst io.Writer = w
	switch {
	case refusal != nil:
		dst = io.Discard // read to the end all the same, to stay in step
	case w.submission: // outbound mail, set by begin
		if signer = c.signer(fixer.section, w); signer != nil {
			dst = io.MultiWriter(w, signer)
		}
	}
	var limit *smtp.LineNormalizer
	if local != nil {
		// A local user's message is held to the size smtpd takes, and to CRLF line
		// endings (RFC 5322 §2.1), whatever the program that talks to the socket sends.
		limit = smtp.NewLineNormalizer(dst, smtp.DataOptions{MaxSize: local.maxSize})
		dst = limit
	}
	_, cerr := io.Copy(dst, fixer)
	if cerr == nil && limit != nil {
		cerr = limit.Close()
		if lerr := limit.Err(); lerr != nil && refusal == nil {
			refusal = enqueue.Refusal(enqueue.CodeRejected, "5.3.4", "Message too big ("+lerr.Error()+")")
		}
	}
	if cerr != nil {
		// A broken stream is a broken connection: the client got no queue ID.
		w.Abort()
		if signer != nil {
			signer.Abort()
		}
		return fmt.Errorf("receiving message: %w", cerr)
	}
	var end enqueue.End
	if _, err := conn.Receive(&end); err != nil {
		w.Abort()
		if signer != nil {
			signer.Abort()
		}
		return err
	}
	if end.Complete && refusal == nil && w.checked {
		// spamd's verdict comes before the file is marked complete: a refused
		// message is removed and never queued, and its client hears a 5xx.
		refusal = c.judge(ctx, w, env)
	}
	if !end.Complete || refusal != nil {
		w.Abort()
		if signer != nil {
			signer.Abort()
		}
		if refusal != nil {
			c.Log.Info("refused", "id", w.env.ID, "from", "<"+env.From+">", "auth", env.AuthUser, "client", env.ClientAddr, "uid", local.UID(), "reason", refusal.Message)
			return conn.Reply(nil, refusal)
		}
		return conn.Reply(nil, ipc.Errorf("aborted", "message discarded"))
	}
	if signer != nil {
		// The signatures go in front of the message before the file is committed. A
		// message that cannot be signed (one without the empty line that ends the
		// header section, say) goes out unsigned rather than not at all.
		sigs, err := signer.Signatures()
		if err == nil {
			err = w.Prepend(sigs)
		}
		if err != nil {
			c.Log.Warn("message not DKIM-signed", "id", w.env.ID, "err", err)
			w.signedBy = ""
		}
	}
	// smtpd gone (killed, say) while the file was written: its client hears that the
	// message failed, so the message must not be queued (its client sends it again).
	if err := w.CommitFor(conn.PeerGone); err != nil {
		if errors.Is(err, queue.ErrNobodyWaits) {
			c.Log.Warn("message discarded: smtpd went away before it was queued", "id", w.env.ID)
			return err
		}
		c.Log.Error("queue file not written", "id", w.env.ID, "err", err)
		return conn.Reply(nil, ipc.Errorf("temporary", "queue file error"))
	}
	// The answer goes right after the fsync, nothing in between: from the moment the
	// file is complete qmgr delivers it, and a cleanup killed before answering leaves a
	// message queued whose client hears that it failed, and sends it again.
	e := w.env
	rerr := conn.Reply(enqueue.Result{QueueID: e.ID, Size: w.Size()}, nil)
	c.Log.Info("queued", "id", e.ID, "from", "<"+e.From+">", "size", w.Size(), "nrcpt", len(e.Recipients),
		"client", e.ClientAddr, "auth", e.AuthUser, "uid", local.UID(), "bounce", e.Bounce, "dkim", w.signedBy)
	if rerr != nil {
		// The client may never learn the queue ID, but the message is queued: it may
		// be delivered twice if the client retries, never lost.
		c.Log.Warn("answer to client lost", "id", e.ID, "err", rerr)
	}
	metrics.Inc(metrics.Received, "origin", origin(e))
	c.wakeup(e.ID)
	return nil
}

// begin expands the recipients and starts the queue file (of a local user's message from
// sendmail when local is not nil).
func (c *Cleanup) begin(ctx context.Context, env *enqueue.Envelope, local *localSubmission) (*queueWriter, error) {
	if len(env.Recipients) == 0 {
		return nil, ipc.Errorf("invalid", "no recipients")
	}
	id := queue.NewID()
	rcpts, err := c.expand(ctx, id, env.Recipients)
	if err != nil {
		return nil, err
	}
	if env.Forward {
		for i := range rcpts {
			rcpts[i].Forward = true
		}
	}
	qe := &queue.Envelope{
		ID:         id,
		From:       env.From,
		Recipients: rcpts,
		Arrival:    time.Now(),
		ClientAddr: env.ClientAddr,
		ClientName: env.ClientName,
		Helo:       env.Helo,
		Protocol:   env.Protocol,
		AuthUser:   env.AuthUser,
		BodyType:   env.BodyType,
		SMTPUTF8:   env.SMTPUTF8,
		EnvID:      env.EnvID,
		Ret:        env.Ret,
		Bounce:     env.Bounce,
	}
	if local != nil {
		qe.Local, qe.LocalUID = true, local.uid
	}
	w, err := queue.Create(c.Spool.Dir(queue.Incoming), qe)
	if err != nil {
		c.Log.Error("cannot create queue file", "id", id, "err", err)
		return nil, ipc.Errorf("temporary", "queue file error")
	}
	qw := &queueWriter{Writer: w, env: qe, submission: env.Submission || env.Bounce || env.Report || env.AutoReply, tls: env.TLS, local: local}
	if c.checked(env) {
		// Room for spamd's headers and the junk mark, filled in before Commit.
		if err := w.Reserve(verdictRoom + junkMarkRoom*len(rcpts)); err != nil {
			w.Abort()
			c.Log.Error("cannot create queue file", "id", id, "err", err)
			return nil, ipc.Errorf("temporary", "queue file error")
		}
		qw.checked, qw.authservID = true, c.Spam.AuthservID
	}
	return qw, nil
}

// expand replaces each recipient of a local domain by the accounts and forwarding
// addresses its aliases lead to, the way Postfix's cleanup expands virtual aliases, so
// that every queue recipient is delivered, and recorded, exactly once. A recipient that
// came in twice, directly or through aliases, is kept once (RFC 5321 §3.3 lets a server
// drop such duplicates).
func (c *Cleanup) expand(ctx context.Context, id string, in []enqueue.Recipient) ([]queue.Recipient, error) {
	var out []queue.Recipient
	seen := map[string]bool{}
	add := func(r queue.Recipient) {
		key := strings.ToLower(r.Addr)
		if seen[key] {
			return
		}
		seen[key] = true
		out = append(out, r)
	}
	for _, r := range in {
		orcpt := r.ORcpt
		if orcpt == "" {
			orcpt = r.Addr
		}
		var res auth.ResolveResult
		if r.Resolution != nil {
			// smtpd asked authd at RCPT; only smtpd and qmgr may talk to cleanup.
			res = *r.Resolution
		} else {
			var err error
			if res, err = c.Auth.Resolve(ctx, r.Addr); err != nil {
				c.Log.Warn("cannot resolve recipient", "id", id, "to", "<"+r.Addr+">", "err", err)
				return nil, ipc.Errorf("temporary", "recipient lookup failed")
			}
		}
		if !res.Local || !res.Found || len(res.Targets) == 0 {
			// Foreign (relayed) or unknown: qmgr routes it or bounces it.
			add(queue.Recipient{Addr: r.Addr, ORcpt: origIfDifferent(orcpt, r.Addr), Notify: r.Notify})
			continue
		}
		for _, t := range res.Targets {
			// A target other than the address itself is forwarded to: when it is
			// another host's, qmgr sends it from the SRS form of the sender. That is
			// also how a valid SRS address (authd resolves it to the original sender)
			// sends its bounce on.
			add(queue.Recipient{Addr: t, ORcpt: origIfDifferent(orcpt, t), Notify: r.Notify, Forward: !strings.EqualFold(t, r.Addr)})
		}
	}
	return out, nil
}

func origIfDifferent(orig, addr string) string {
	if orig == addr {
		return ""
	}
	return orig
}

// queueWriter is a queue file being written plus what the header fixer needs to know.
type queueWriter struct {
	*queue.Writer
	env        *queue.Envelope
	submission bool
	tls        string
	hideClient bool
	signedBy   string // the DKIM domain and selectors, for the log
	// checked says spamd judges the message; authservID is ours, whose
	// Authentication-Results fields are removed from the message as it comes.
	checked    bool
	authservID string
	// local is the Unix user of a message from sendmail, nil for others.
	local *localSubmission
}

// wakeup tells qmgr about a new file without holding up the client.
func (c *Cleanup) wakeup(id string) {
	select {
	case c.wake <- id:
	default:
		// qmgr is slow or down; it scans incoming/ on its own.
	}
}

// origin is the origin label of metrics.Received: "submission" for a message from an
// authenticated user, "local" for one made here (a bounce) or handed over without a
// network client, "smtp" for mail from the world.
func origin(e *queue.Envelope) string {
	switch {
	case e.AuthUser != "":
		return "submission"
	case e.Bounce || e.ClientAddr == "":
		return "local"
	}
	return "smtp"
}

// Wakeups sends queued IDs to qmgr until ctx ends.
func (c *Cleanup) Wakeups(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-c.wake:
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.Qmgr.Call(cctx, queue.OpWakeup, queue.Wakeup{ID: id}, nil)
			cancel()
			if err != nil && !errors.Is(err, context.Canceled) {
				c.Log.Debug("qmgr wakeup failed", "id", id, "err", err)
			}
		}
	}
}

// newHeaderFixer returns the message as it goes into the queue file: a Received header,
// then, for submissions, Message-ID and Date if the client left them out, then the
// message as received.
func newHeaderFixer(r io.Reader, w *queueWriter, hostname string) *headerFixer {
	return &headerFixer{r: r, w: w, hostname: hostname}
}

// maxHeaderScan bounds how much of the header section is buffered to look for
// Message-ID and Date; past it the message is passed on as it is.
const maxHeaderScan = 64 << 10

type headerFixer struct {
	r        io.Reader
	w        *queueWriter
	hostname string
	out      []byte // prepared bytes not yet returned
	started  bool
	// section is the header section the client sent (for submissions and bounces),
	// without the empty line; complete says it was read to its end.
	section  []byte
	complete bool
}

func (h *headerFixer) Read(p []byte) (int, error) {
	if !h.started {
		if err := h.prepare(); err != nil {
			return 0, err
		}
	}
	if len(h.out) > 0 {
		n := copy(p, h.out)
		h.out = h.out[n:]
		return n, nil
	}
	return h.r.Read(p)
}

// prepare reads the header section (for submissions and bounces) and makes the lines
// that go in front of the message. Read calls it if the caller did not.
func (h *headerFixer) prepare() error {
	if h.started {
		return nil
	}
	h.started = true
	var head bytes.Buffer
	env := h.w.env
	if h.w.hideClient {
		// Privacy: the Received header of a submission names no client address.
		anon := *env
		anon.ClientAddr, anon.ClientName, anon.Helo = "", "", ""
		env = &anon
	}
	head.WriteString(received(env, h.hostname, h.w.tls, time.Now()))
	if !h.w.submission && !h.w.checked {
		h.out = head.Bytes()
		return nil
	}
	// Read the header section (up to the empty line) to see what is there.
	var buf []byte
	chunk := make([]byte, 8192)
	end := -1
	for len(buf) < maxHeaderScan {
		n, err := h.r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if end = headerEnd(buf); end >= 0 {
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	section := buf
	if end >= 0 {
		section = buf[:end]
	}
	h.section, h.complete = section, end >= 0 || len(buf) < maxHeaderScan
	if !h.w.submission {
		// Inbound: Authentication-Results fields that claim to be ours were not
		// written here (RFC 8601 §5). A header section longer than maxHeaderScan is
		// filtered in its first part only.
		if end < 0 {
			end = lastFieldEnd(buf)
		}
		head.Write(removeOwnResults(buf[:end], h.w.authservID))
		head.Write(buf[end:])
		h.out = head.Bytes()
		return nil
	}
	if l := h.w.local; l != nil && !hasField(section, "From") {
		// RFC 5322 §3.6: a message has a From: field. A local user's message without
		// one gets the sender's address, and sendmail -F's full name, as Postfix's
		// cleanup writes it; the DKIM signer finds the domain in it.
		from := l.fromField(h.w.env.From, h.hostname)
		head.WriteString(from)
		h.section = append([]byte(from), section...)
	}
	now := time.Now()
	if !hasField(section, "Message-ID") {
		// RFC 6409 §8.3: a submission server may add a missing Message-ID.
		fmt.Fprintf(&head, "Message-ID: <%s@%s>\r\n", h.w.env.ID, h.hostname)
	}
	if !hasField(section, "Date") {
		// RFC 6409 §8.2: add a missing Date.
		fmt.Fprintf(&head, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	head.Write(buf)
	h.out = head.Bytes()
	return nil
}

// headerEnd returns the offset of the empty line that ends the header section, or -1.
func headerEnd(b []byte) int {
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return 0
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 2
	}
	return -1
}

// hasField reports whether the header section has a field of that name (RFC 5322 §2.2:
// a field starts at the beginning of a line; names compare case-insensitively).
func hasField(section []byte, name string) bool {
	for len(section) > 0 {
		line := section
		if i := bytes.Index(section, []byte("\r\n")); i >= 0 {
			line, section = section[:i], section[i+2:]
		} else {
			section = nil
		}
		if len(line) > len(name) && line[len(name)] == ':' && strings.EqualFold(string(line[:len(name)]), name) {
			return true
		}
		if i := bytes.IndexByte(line, ':'); i > 0 && strings.EqualFold(strings.TrimRight(string(line[:i]), " \t"), name) {
			return true
		}
	}
	return false
}

// received formats the trace header of RFC 5321 §4.4 (and RFC 5322 §3.6.7).
func received(e *queue.Envelope, hostname, tls string, now time.Time) string {
	var b strings.Builder
	b.WriteString("Received: ")
	if e.ClientAddr != "" || e.Helo != "" {
		helo := e.Helo
		if helo == "" {
			helo = "unknown"
		}
		name := e.ClientName
		if name == "" {
			name = "unknown"
		}
		fmt.Fprintf(&b, "from %s (%s [%s])\r\n\t", sanitize(helo), sanitize(name), e.ClientAddr)
	}
	if e.Local {
		// A message from sendmail(1) names the Unix user who handed it over, as
		// Postfix's pickup does ("by host (Postfix, from userid 1000)"), and no
		// protocol: it came by none (the WITH clause is optional, RFC 5321 §4.4).
		fmt.Fprintf(&b, "by %s (Postern, from userid %d)\r\n\tid %s", hostname, e.LocalUID, e.ID)
	} else {
		fmt.Fprintf(&b, "by %s (Postern)", hostname)
		if tls != "" {
			fmt.Fprintf(&b, " (%s)", sanitize(tls))
		}
		proto := e.Protocol
		if proto == "" {
			proto = "ESMTP"
			if e.Bounce {
				proto = "local"
			}
		}
		fmt.Fprintf(&b, " with %s id %s", proto, e.ID)
	}
	// Name the recipient only when there is exactly one, so the header does not
	// disclose the other recipients of the message (RFC 5321 §7.2).
	if len(e.Recipients) == 1 {
		fmt.Fprintf(&b, "\r\n\tfor <%s>", e.Recipients[0].Original())
	}
	fmt.Fprintf(&b, "; %s\r\n", now.Format(time.RFC1123Z))
	return b.String()
}

// sanitize keeps client-supplied text from breaking the header: no CR, LF or parentheses.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\n' || r == '(' || r == ')' || r < ' ':
			return '?'
		}
		return r
	}, s)
}
