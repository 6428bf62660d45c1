package main

// POP3 (RFC 1939, with CAPA and the response codes of RFC 2449, STLS from RFC 2595, SASL
// PLAIN from RFC 5034 and RFC 3206's codes), served by imapd because imapd alone owns
// the index and cur/ of every Maildir: a POP3 DELE is an expunge of the same index that
// IMAP sessions read, under the same lock, and they see it at once.
//
// How POP3 and IMAP share a mailbox:
//   - The maildrop is INBOX. At login the session takes a snapshot of INBOX's messages
//     (UID and size); message numbers are positions in that snapshot and stay fixed for
//     the session (RFC 1939 §5). Mail that arrives later waits for the next session.
//   - One POP3 session at a time per account (RFC 1939 §8 asks for exclusive access to
//     the maildrop): a second one gets -ERR [IN-USE] (RFC 2449 §8.1.2). IMAP sessions
//     are not locked out, as in Dovecot: they go on reading, flagging and expunging.
//   - DELE only marks a message in the session; the messages marked are expunged when
//     the client sends QUIT, in the UPDATE state (RFC 1939 §6), and the IMAP sessions
//     with INBOX selected get their EXPUNGE responses. A session that ends any other
//     way (the connection drops, autologout, shutdown) deletes nothing.
//   - A message an IMAP session expunged meanwhile is answered -ERR by RETR and TOP,
//     and is silently left out at QUIT.
//   - Messages retrieved whole with RETR get \Seen at QUIT, as Dovecot does, so that an
//     IMAP client sees what the POP3 client has downloaded.
//   - UIDL (RFC 1939 §7) is the IMAP UID and UIDVALIDITY in hexadecimal, eight digits
//     each: Dovecot's default pop3_uidl_format "%08Xu%08Xv", so that a UIDL stays the
//     same as long as the IMAP UID does, and across a move between Dovecot and Postern.
//   - Sizes (LIST, STAT, RETR) are the index's RFC822.SIZE: the size of the message with
//     CRLF line endings, the form in which RETR sends it.

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"postern/pkg/imap"
	"postern/pkg/metrics"
	"postern/pkg/pop3"
)

// POP3 session states (RFC 1939 §3).
const (
	popAuthorization = iota
	popTransaction
	popDone // UPDATE done, or the session ends
)

// popMinAutologout is the shortest autologout timer RFC 1939 §3 allows once logged in.
const popMinAutologout = 10 * time.Minute

// errInUse is a maildrop that another POP3 session has.
var errInUse = errors.New("maildrop in use")

// pop3Session is one POP3 connection.
type pop3Session struct {
	srv      *Server
	conn     net.Conn // the connection, TLS once negotiated
	raw      net.Conn // the TCP connection
	ip       netip.Addr
	listener string
	tls      bool
	log      *slog.Logger
	started  time.Time
	closing  atomic.Bool
	byeText  atomic.Pointer[string] // see revoke

	r *pop3.Reader
	w *bufio.Writer

	state int
	user  string // the name USER gave, waiting for PASS
	fails int    // failed logins
	bad   int    // -ERR answers in a row to commands that could not be parsed

	acct     *Account
	mb       *Mailbox // INBOX
	validity uint32
	msgs     []popMessage // the maildrop as it was at login; message n is msgs[n-1]
}

// popMessage is a message of the maildrop, and what the session did with it.
type popMessage struct {
	uid       uint32
	size      int64
	deleted   bool // DELE
	retrieved bool // RETR
}

func newPOP3Session(s *Server, c net.Conn, ip netip.Addr, listener string, implicitTLS bool) *pop3Session {
	p := &pop3Session{srv: s, conn: c, raw: c, ip: ip, listener: listener, tls: implicitTLS, started: time.Now()}
	p.log = s.log.With("session", s.nextID.Add(1), "protocol", "pop3")
	return p
}

// secure reports whether passwords may be sent: over TLS or from this host, as for IMAP.
func (p *pop3Session) secure() bool { return p.tls || p.ip.IsLoopback() }

// revoke ends the session because its account was disabled or deleted: the client
// gets -ERR [AUTH] (RFC 3206 §4: a problem with the user's credentials) and the
// connection closes without the UPDATE state, so that nothing is deleted.
func (p *pop3Session) revoke(reason string) {
	p.byeText.Store(&reason)
	p.shutdown()
}

// bye is the last answer of a closing session.
func (p *pop3Session) bye() string {
	if t := p.byeText.Load(); t != nil {
		return "-ERR [AUTH] " + *t + "; session ended"
	}
	return "-ERR [SYS/TEMP] Server shutting down"
}

// shutdown makes the session end, at once if it waits for a command. The deadline is
// set on the TCP connection, under TLS too, since the session may be swapping p.conn.
func (p *pop3Session) shutdown() {
	p.closing.Store(true)
	p.raw.SetReadDeadline(time.Now())
}

// deadlineWriter gives every write to the connection five minutes: a RETR of a large
// message to a slow client goes on as long as it moves.
type deadlineWriter struct{ p *pop3Session }

func (d deadlineWriter) Write(b []byte) (int, error) {
	d.p.conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	return d.p.conn.Write(b)
}

func (p *pop3Session) serve() {
	defer func() { p.conn.Close() }()
	p.log.Debug("connect", "client", p.ip.String(), "listener", p.listener)
	if p.tls {
		tc := tls.Server(p.raw, p.srv.tls)
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			p.log.Info("TLS handshake failed", "client", p.ip.String(), "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
		p.conn = tc
	}
	p.r = pop3.NewReader(bufio.NewReaderSize(p.conn, 4096), pop3.MaxLine)
	p.w = bufio.NewWriterSize(deadlineWriter{p}, 16<<10)
	defer p.logout()
	// RFC 1939 §4: the greeting.
	p.reply("+OK Postern POP3 ready")
	p.w.Flush()
	for p.state != popDone {
		if p.closing.Load() {
			p.reply(p.bye())
			break
		}
		p.setReadDeadline()
		line, err := p.r.ReadLine()
		switch {
		case err == nil:
			p.command(line)
		case errors.Is(err, pop3.ErrLineTooLong):
			p.syntaxError("Line too long")
		case p.closing.Load():
			p.reply(p.bye())
			p.state = popDone
		case isTimeout(err):
			// RFC 1939 §3: the autologout timer; no UPDATE state, nothing deleted.
			p.reply("-ERR Autologout; idle for too long")
			p.state = popDone
		default:
			p.state = popDone // the client went away: no UPDATE state either (RFC 1939 §6)
		}
		if p.state == popDone {
			// The maildrop is free before the client reads the answer to QUIT, so that
			// it may log in again at once.
			p.release()
		}
		// RFC 2449 §6.6 (PIPELINING): answers go out in one write per batch of commands.
		if p.r.Buffered() == 0 || p.state == popDone {
			if p.w.Flush() != nil {
				return
			}
		}
	}
	p.w.Flush()
}

// setReadDeadline bounds the wait for the next command: what is left of the login
// timeout before login, the autologout timer after it.
func (p *pop3Session) setReadDeadline() {
	if p.state == popAuthorization {
		p.conn.SetReadDeadline(p.started.Add(p.srv.loginTimeout))
	} else {
		p.conn.SetReadDeadline(time.Now().Add(max(p.srv.idleTimeout, popMinAutologout)))
	}
	if p.closing.Load() {
		p.conn.SetReadDeadline(time.Now())
	}
}

func (p *pop3Session) reply(line string) {
	p.w.WriteString(line)
	p.w.WriteString("\r\n")
}

// syntaxError answers a line that is no command; too many in a row end the session.
func (p *pop3Session) syntaxError(msg string) {
	p.bad++
	p.reply("-ERR " + msg)
	if p.bad >= p.srv.maxBadCommands {
		p.reply("-ERR Too many invalid commands")
		p.state = popDone
	}
}

// logout ends the session. Nothing is deleted here: only QUIT does that (update).
func (p *pop3Session) logout() {
	p.release()
	p.log.Debug("disconnect")
}

// release gives back the maildrop and the account.
func (p *pop3Session) release() {
	if p.mb != nil {
		p.acct.release(p.mb)
		p.mb = nil
	}
	if p.acct != nil {
		p.acct.mu.Lock()
		p.acct.pop3 = false
		p.acct.mu.Unlock()
		p.srv.closeAccount(p.acct)
		p.acct = nil
	}
}

// command runs one command line.
func (p *pop3Session) command(line string) {
	c, err := pop3.ParseCommand(line)
	if err != nil {
		p.syntaxError(err.Error())
		return
	}
	p.bad = 0
	defer func() {
		// A bug in one command ends this session with a log line, not the daemon.
		if r := recover(); r != nil {
			p.log.Error("panic in POP3 command", "command", c.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			p.reply("-ERR [SYS/TEMP] Internal error")
			p.state = popDone
		}
	}()
	if c.Name == "CAPA" {
		p.capa() // RFC 2449 §5: in every state
		return
	}
	if c.Name == "QUIT" {
		if p.state == popTransaction {
			p.update()
		} else {
			p.reply("+OK Bye")
		}
		p.state = popDone
		return
	}
	if p.state == popAuthorization {
		switch c.Name {
		case "USER":
			p.userCmd(c)
		case "PASS":
			p.pass(c)
		case "AUTH":
			p.authCmd(c)
		case "STLS":
			p.stls()
		default:
			p.reply("-ERR Log in first")
		}
		return
	}
	switch c.Name {
	case "STAT":
		n, size := p.count()
		p.reply("+OK " + strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
	case "LIST", "UIDL":
		p.list(c)
	case "RETR":
		p.retr(c.Msg, -1)
	case "TOP":
		p.retr(c.Msg, c.Lines)
	case "DELE":
		if m := p.message(c.Msg); m != nil {
			m.deleted = true
			p.reply("+OK Message " + strconv.Itoa(c.Msg) + " deleted")
		}
	case "NOOP":
		p.reply("+OK")
	case "RSET":
		// RFC 1939 §5: RSET unmarks the messages marked as deleted.
		for i := range p.msgs {
			p.msgs[i].deleted = false
		}
		n, size := p.count()
		p.reply(fmt.Sprintf("+OK Maildrop has %d messages (%d octets)", n, size))
	default:
		p.reply("-ERR " + c.Name + " is not allowed now")
	}
}

// capa answers CAPA (RFC 2449 §5, §6) with what the session offers now.
func (p *pop3Session) capa() {
	caps := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	if p.state == popAuthorization {
		if !p.tls && p.srv.tls != nil {
			caps = append(caps, "STLS")
		}
		if p.secure() {
			// Without TLS off loopback, no password may be sent: USER and SASL are not
			// offered (as imapd's LOGINDISABLED, RFC 2595 §4's spirit).
			caps = append(caps, "USER", "SASL PLAIN")
		}
	}
	caps = append(caps, "IMPLEMENTATION Postern")
	p.reply("+OK Capability list follows")
	for _, c := range caps {
		p.reply(c)
	}
	p.reply(".")
}

func (p *pop3Session) userCmd(c pop3.Command) {
	if !p.secure() {
		p.reply("-ERR [AUTH] Plaintext authentication is disabled without TLS; use STLS first")
		return
	}
	p.user = c.Arg
	p.reply("+OK Send the password")
}

func (p *pop3Session) pass(c pop3.Command) {
	if p.user == "" {
		p.reply("-ERR USER first")
		return
	}
	user := p.user
	p.user = ""
	p.finishLogin(p.login(user, c.Arg))
}

// login checks the password exactly as IMAP LOGIN does, takes the maildrop and binds
// the session to the account (see Server.loginBound).
func (p *pop3Session) login(user, password string) error {
	var addr string
	err := p.srv.loginBound(p, func() (loginEntry, uint64, error) {
		return p.srv.checkLogin(p.log, p.ip, user, password)
	}, func(e loginEntry) error {
		addr = e.addr
		return p.take(e)
	}, p.release)
	if err == nil {
		p.log = p.log.With("user", addr)
	}
	return err
}

// take opens the account of e and takes its maildrop.
func (p *pop3Session) take(e loginEntry) error {
	a, err := p.srv.openAccount(e.addr, e.maildir, e.quota)
	if err != nil {
		p.log.Error("opening the mailbox", "user", e.addr, "err", err)
		return err
	}
	a.mu.Lock()
	inUse := a.pop3
	a.pop3 = true
	a.mu.Unlock()
	if inUse {
		p.srv.closeAccount(a)
		return errInUse
	}
	p.acct = a // logout gives it back from here on
	mb, err := a.openMailbox("INBOX")
	if err != nil {
		p.log.Error("opening INBOX", "user", e.addr, "err", err)
		return err
	}
	p.mb = mb
	// Mail just delivered into new/ that the watcher has not taken yet.
	mb.scanNew()
	mb.mu.RLock()
	p.validity = mb.uidValidity
	p.msgs = make([]popMessage, len(mb.msgs))
	for i, m := range mb.msgs {
		p.msgs[i] = popMessage{uid: m.uid, size: m.size}
	}
	mb.mu.RUnlock()
	return nil
}

// finishLogin answers PASS or AUTH (RFC 2449 §8.1.2 IN-USE, RFC 3206 §4 AUTH and
// SYS/TEMP, announced by AUTH-RESP-CODE).
func (p *pop3Session) finishLogin(err error) {
	var te throttledError
	switch {
	case err == nil:
		p.state = popTransaction
		n, size := p.count()
		p.log.Info("login", "client", p.ip.String(), "tls", p.tls, "messages", n)
		p.reply(fmt.Sprintf("+OK Logged in; %d messages (%d octets)", n, size))
		return
	case errors.Is(err, errInUse):
		p.reply("-ERR [IN-USE] Another POP3 session has this maildrop; try again later")
	case errors.Is(err, errAuthFailed):
		metrics.Inc(metrics.AuthFailures, "daemon", "imapd", "service", "pop3")
		p.fails++
		p.reply("-ERR [AUTH] Authentication failed")
	case errors.As(err, &te):
		p.fails++
		p.reply(fmt.Sprintf("-ERR [SYS/TEMP] Too many failed logins; try again in %d seconds", te.retryAfter))
	default:
		p.reply("-ERR [SYS/TEMP] Authentication is unavailable, try again later")
	}
	// A failed login holds nothing.
	p.release()
	if p.fails >= maxLoginFailures {
		p.state = popDone
	}
}

// authCmd runs AUTH (RFC 5034): PLAIN (RFC 4616) through go-sasl, as imapd's
// AUTHENTICATE does; AUTH alone lists the mechanisms.
func (p *pop3Session) authCmd(c pop3.Command) {
	if c.Arg == "" {
		p.reply("+OK Mechanisms follow")
		p.reply("PLAIN")
		p.reply(".")
		return
	}
	if !p.secure() {
		p.reply("-ERR [AUTH] Authentication is disabled without TLS; use STLS first")
		return
	}
	if c.Arg != "PLAIN" {
		p.reply("-ERR Unsupported authentication mechanism")
		return
	}
	verr := errAuthFailed
	srv := sasl.NewPlainServer(func(identity, user, password string) error {
		if identity != "" && identity != user {
			return errAuthFailed // no proxy authorization
		}
		verr = p.login(user, password)
		return verr
	})
	var resp []byte
	if c.HasInitial {
		resp = []byte{} // RFC 5034 §4: "=" is an empty initial response
		if c.Initial != "=" {
			b, err := base64.StdEncoding.DecodeString(c.Initial)
			if err != nil {
				p.reply("-ERR Invalid base64 in the initial response")
				return
			}
			resp = b
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil || done {
			if err == nil {
				verr = nil
			}
			p.finishLogin(verr)
			return
		}
		p.reply("+ " + base64.StdEncoding.EncodeToString(challenge))
		if p.w.Flush() != nil {
			p.state = popDone
			return
		}
		p.setReadDeadline()
		line, err := p.r.ReadLine()
		if err != nil {
			p.reply("-ERR Authentication aborted")
			p.state = popDone
			return
		}
		if line == "*" {
			// RFC 5034 §4: the client cancels.
			p.reply("-ERR Authentication cancelled")
			return
		}
		if resp, err = base64.StdEncoding.DecodeString(strings.TrimSpace(line)); err != nil {
			p.reply("-ERR Invalid base64")
			return
		}
	}
}

// stls starts TLS (RFC 2595 §4).
func (p *pop3Session) stls() {
	if p.tls || p.srv.tls == nil {
		p.reply("-ERR STLS not available")
		return
	}
	// Commands sent before the handshake would be injected into the TLS session
	// (CVE-2011-0411 and its kin).
	if p.r.Buffered() > 0 {
		p.reply("-ERR Data after STLS")
		p.state = popDone
		return
	}
	p.reply("+OK Begin TLS negotiation")
	if p.w.Flush() != nil {
		p.state = popDone
		return
	}
	tc := tls.Server(p.raw, p.srv.tls)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		p.log.Info("STLS handshake failed", "client", p.ip.String(), "err", err)
		p.state = popDone
		return
	}
	tc.SetDeadline(time.Time{})
	p.conn, p.tls = tc, true
	p.r.Reset(bufio.NewReaderSize(p.conn, 4096))
	// RFC 2595 §4: what the client said before TLS is forgotten.
	p.user = ""
}

// count returns the number of messages not marked as deleted and their size.
func (p *pop3Session) count() (n int, size int64) {
	for _, m := range p.msgs {
		if !m.deleted {
			n++
			size += m.size
		}
	}
	return n, size
}

// message returns message number n, or answers -ERR and returns nil when there is none
// or it is marked as deleted (RFC 1939 §5).
func (p *pop3Session) message(n int) *popMessage {
	if n < 1 || n > len(p.msgs) {
		p.reply("-ERR No such message")
		return nil
	}
	m := &p.msgs[n-1]
	if m.deleted {
		p.reply("-ERR Message " + strconv.Itoa(n) + " is deleted")
		return nil
	}
	return m
}

// uidl is a message's unique-id (RFC 1939 §7): its UID and the UIDVALIDITY, as
// Dovecot's "%08Xu%08Xv".
func (p *pop3Session) uidl(m *popMessage) string {
	return fmt.Sprintf("%08X%08X", m.uid, p.validity)
}

// list answers LIST and UIDL, for one message or all (RFC 1939 §5, §7).
func (p *pop3Session) list(c pop3.Command) {
	entry := func(n int, m *popMessage) string {
		if c.Name == "UIDL" {
			return strconv.Itoa(n) + " " + p.uidl(m)
		}
		return strconv.Itoa(n) + " " + strconv.FormatInt(m.size, 10)
	}
	if c.Msg != 0 {
		if m := p.message(c.Msg); m != nil {
			p.reply("+OK " + entry(c.Msg, m))
		}
		return
	}
	if c.Name == "UIDL" {
		p.reply("+OK Unique-id listing follows")
	} else {
		n, size := p.count()
		p.reply(fmt.Sprintf("+OK %d messages (%d octets)", n, size))
	}
	for i := range p.msgs {
		if !p.msgs[i].deleted {
			p.reply(entry(i+1, &p.msgs[i]))
		}
	}
	p.reply(".")
}

// retr answers RETR (lines < 0) and TOP, streaming the message from its file.
func (p *pop3Session) retr(n, lines int) {
	pm := p.message(n)
	if pm == nil {
		return
	}
	mb := p.mb
	mb.mu.RLock()
	m := mb.lookup(pm.uid)
	var name, base string
	var size int64
	if m != nil {
		name, base, size = mb.curName(m), m.base, m.size
	}
	mb.mu.RUnlock()
	if m == nil {
		p.reply("-ERR Message " + strconv.Itoa(n) + " was expunged by another session")
		return
	}
	f, err := mb.openName(name, base)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			p.reply("-ERR Message " + strconv.Itoa(n) + " was expunged by another session")
		} else {
			p.log.Error("opening a message", "uid", pm.uid, "err", err)
			p.reply("-ERR [SYS/TEMP] Cannot read the message")
		}
		return
	}
	defer f.Close()
	if lines < 0 {
		p.reply("+OK " + strconv.FormatInt(size, 10) + " octets")
	} else {
		p.reply("+OK Top of message follows")
	}
	if err := pop3.WriteMessage(p.w, f, lines); err != nil {
		// The response has begun: the session cannot go on.
		p.log.Info("sending a message", "uid", pm.uid, "err", err)
		p.state = popDone
		return
	}
	if lines < 0 {
		pm.retrieved = true
	}
}

// update is the UPDATE state (RFC 1939 §6), entered by QUIT: the messages retrieved get
// \Seen, those marked as deleted are expunged, and the IMAP sessions hear of it.
func (p *pop3Session) update() {
	var del, seen []uint32
	for _, m := range p.msgs {
		switch {
		case m.deleted:
			del = append(del, m.uid)
		case m.retrieved:
			seen = append(seen, m.uid)
		}
	}
	changed := false
	if len(seen) > 0 {
		res, err := p.mb.store(seen, &flagChange{mode: imap.StoreAdd, bits: flagSeen}, 0, false)
		if err != nil {
			p.log.Warn("flagging retrieved messages \\Seen", "err", err)
		}
		changed = len(res.changed) > 0
	}
	gone, freed, err := p.mb.expungeUIDs(del)
	if len(gone) > 0 {
		changed = true
		p.acct.addUsage(-freed, -int64(len(gone)))
	}
	if changed {
		p.mb.changed(nil)
	}
	left := 0
	p.mb.mu.RLock()
	for _, u := range del {
		if p.mb.lookup(u) != nil {
			left++
		}
	}
	p.mb.mu.RUnlock()
	p.log.Info("logout", "retrieved", len(seen), "deleted", len(gone))
	if err != nil || left > 0 {
		p.log.Error("expunging the messages deleted over POP3", "left", left, "err", err)
		// RFC 1939 §6: -ERR when some messages marked as deleted were not removed.
		p.reply("-ERR [SYS/TEMP] Some deleted messages were not removed")
		return
	}
	n, _ := p.count()
	p.reply(fmt.Sprintf("+OK Bye; %d messages deleted, %d left", len(gone), n))
}
