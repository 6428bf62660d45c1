package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"postern/pkg/imap"
)

// Session states (RFC 3501 §3).
const (
	stateNotAuth = iota
	stateAuth
	stateSelected
	stateLogout
)

// writerPool holds the response buffers: a session has one only while it answers, so
// that idle connections cost little memory. readerPool holds the read buffers, which a
// session gives back while it waits in IDLE.
var (
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
)

// Session is one client connection.
type Session struct {
	srv      *Server
	id       uint64
	conn     net.Conn
	raw      net.Conn // the TCP connection under TLS
	ip       netip.Addr
	listener string
	tls      bool
	log      *slog.Logger
	started  time.Time

	br  *bufio.Reader
	dec *imap.Decoder

	// mu is held while a command runs and while an IDLE notification is written; it
	// guards w and everything below.
	mu    sync.Mutex
	w     *bufio.Writer
	buf   []byte // scratch for building response lines
	state int
	user  string
	acct  *Account
	bad   int // BAD responses in a row
	fails int // failed logins

	rev2      bool // ENABLE IMAP4rev2 (RFC 9051)
	condstore bool // a CONDSTORE enabling command was seen (RFC 7162 §3.1)
	qresync   bool // ENABLE QRESYNC (RFC 7162 §3.2.3)
	utf8      bool // ENABLE UTF8=ACCEPT (RFC 6855 §3): mailbox names in UTF-8

	// notify is the state of NOTIFY SET (RFC 5465), nil without.
	notify *notifyState

	// The selected mailbox and this session's view of it: view[i] is the UID of
	// message i+1. seenModseq is the highest mod-sequence reported to the client.
	mb         *Mailbox
	readOnly   bool
	view       []uint32
	seenModseq uint64
	recent     []imap.SeqRange // UIDs that are \Recent in this session
	recentSent int             // the number the last RECENT response gave
	saved      []uint32        // SEARCHRES (RFC 5182), UIDs in ascending order
	keywords   []string        // the keywords this session's last FLAGS response listed
	idleTag    string

	idling  atomic.Bool
	waking  atomic.Bool
	closing atomic.Bool
	// byeText is what the BYE that ends a closing session says (revoke); nil means the
	// server is shutting down.
	byeText atomic.Pointer[string]
}

func newSession(s *Server, c net.Conn, ip netip.Addr, listener string, implicitTLS bool) *Session {
	sess := &Session{srv: s, id: s.nextID.Add(1), conn: c, raw: c, ip: ip, listener: listener, tls: implicitTLS, started: time.Now()}
	sess.log = s.log.With("session", sess.id)
	return sess
}

// secure reports whether passwords may be sent: over TLS or from this host (RFC 9051
// §11.1; the loopback exception serves webmail and development instances).
func (s *Session) secure() bool { return s.tls || s.ip.IsLoopback() }

func (s *Session) serve() {
	defer s.conn.Close()
	s.log.Debug("connect", "client", s.ip.String(), "listener", s.listener)
	if s.tls {
		tc := tls.Server(s.raw, s.srv.tls)
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			s.log.Info("TLS handshake failed", "client", s.ip.String(), "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
		s.conn = tc
	}
	s.br = readerPool.Get().(*bufio.Reader)
	s.br.Reset(s.conn)
	s.dec = imap.NewDecoder(s.br, s.continueLiteral)
	s.dec.MaxLine = s.srv.maxLine
	s.dec.MaxLiteral = s.srv.maxMessage
	s.mu.Lock()
	s.begin()
	// RFC 3501 §7.1.1: the greeting, with the capabilities so clients need not ask.
	s.untagged("OK [CAPABILITY " + s.capabilities() + "] Postern IMAP ready")
	s.end()
	s.mu.Unlock()
	defer s.logout()
	for s.state != stateLogout {
		if s.closing.Load() {
			s.mu.Lock()
			s.begin()
			s.untagged(s.bye())
			s.end()
			s.mu.Unlock()
			return
		}
		s.setReadDeadline()
		cmd, err := s.dec.ReadCommand()
		s.mu.Lock()
		s.begin()
		if err != nil {
			var pe *imap.ParseError
			if !errors.As(err, &pe) {
				switch {
				case s.closing.Load():
					s.untagged(s.bye())
				case isTimeout(err):
					// RFC 9051 §5.4: the autologout timer.
					s.untagged("BYE Autologout; idle for too long")
				}
				s.end()
				s.mu.Unlock()
				return
			}
			s.parseError(pe)
			fatal := pe.Fatal || s.bad >= s.srv.maxBadCommands
			if s.bad >= s.srv.maxBadCommands {
				s.untagged("BYE Too many invalid commands")
			}
			s.end()
			s.mu.Unlock()
			if fatal {
				return
			}
			continue
		}
		s.dispatch(cmd)
		s.end()
		s.mu.Unlock()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// setReadDeadline bounds the wait for the next command: what is left of the login
// timeout before authentication (a connection cannot stay unauthenticated for longer),
// the autologout timer after it (at least 30 minutes, RFC 9051 §5.4).
func (s *Session) setReadDeadline() {
	if s.state == stateNotAuth {
		s.conn.SetReadDeadline(s.started.Add(s.srv.loginTimeout))
	} else {
		s.conn.SetReadDeadline(time.Now().Add(s.srv.idleTimeout))
	}
	// shutdown sets closing, then the deadline: one of the two sides sees the other.
	if s.closing.Load() {
		s.conn.SetReadDeadline(time.Now())
	}
}

func (s *Session) parseError(pe *imap.ParseError) {
	if pe.TooBig && !pe.Fatal && pe.Tag != "" {
		// A synchronizing literal too big, refused before the client sends it:
		// NO [TOOBIG] (RFC 9051 §7.1, RFC 7889 §4).
		s.tagged(pe.Tag, "NO", "[TOOBIG] "+pe.Msg)
		return
	}
	s.bad++
	code := ""
	if pe.TooBig {
		code = "[TOOBIG] "
	}
	if pe.Tag == "" {
		s.untagged("BAD " + code + "Syntax error: " + pe.Msg)
		return
	}
	s.tagged(pe.Tag, "BAD", code+"Syntax error: "+pe.Msg)
}

// revoke ends the session because its account was disabled or deleted, with a BYE that
// says so (RFC 9051 §7.1.5): at once if it waits for a command or idles, else after the
// command it runs.
func (s *Session) revoke(reason string) {
	s.byeText.Store(&reason)
	s.shutdown()
}

// bye is the BYE response of a closing session.
func (s *Session) bye() string {
	if t := s.byeText.Load(); t != nil {
		return "BYE " + *t
	}
	return "BYE Server shutting down"
}

// shutdown makes the session end: at once if it waits for a command or idles.
func (s *Session) shutdown() {
	s.closing.Store(true)
	s.conn.SetReadDeadline(time.Now())
}

// continueLiteral answers a synchronizing literal (RFC 3501 §7.5).
func (s *Session) continueLiteral() error {
	s.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	_, err := io.WriteString(s.conn, "+ Ready for literal data\r\n")
	return err
}

// begin takes a response buffer; end flushes and returns it. Responses are written
// through it and flushed once per command.
func (s *Session) begin() {
	if s.w == nil {
		s.w = writerPool.Get().(*bufio.Writer)
		s.w.Reset(s.conn)
	}
}

func (s *Session) end() {
	if s.w == nil {
		return
	}
	s.conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	s.w.Flush()
	s.w.Reset(nil)
	writerPool.Put(s.w)
	s.w = nil
	if cap(s.buf) > 64<<10 {
		s.buf = nil
	}
}

func (s *Session) flush() {
	s.conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
	s.w.Flush()
}

func (s *Session) untagged(text string) {
	s.w.WriteString("* ")
	s.w.WriteString(text)
	s.w.WriteString("\r\n")
}

func (s *Session) tagged(tag, status, text string) {
	s.w.WriteString(tag)
	s.w.WriteByte(' ')
	s.w.WriteString(status)
	s.w.WriteByte(' ')
	s.w.WriteString(text)
	s.w.WriteString("\r\n")
}

// capabilities lists what the session offers now (RFC 3501 §7.2.1).
func (s *Session) capabilities() string {
	c := "IMAP4rev1 IMAP4rev2"
	if s.state == stateNotAuth {
		if !s.tls && s.srv.tls != nil {
			c += " STARTTLS"
		}
		if s.secure() {
			c += " AUTH=PLAIN AUTH=LOGIN"
		} else {
			// RFC 3501 §6.2.3, RFC 9051 §6.2.3.
			c += " LOGINDISABLED"
		}
	}
	c += " SASL-IR LITERAL+ ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE ID CHILDREN" +
		" CONDSTORE ESEARCH SEARCHRES SPECIAL-USE LIST-EXTENDED LIST-STATUS BINARY STATUS=SIZE" +
		" SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES QRESYNC CREATE-SPECIAL-USE OBJECTID UTF8=ACCEPT SAVEDATE NOTIFY"
	if _, ok := s.conn.(*deflateConn); !ok && s.state != stateNotAuth {
		// RFC 4978 §3: COMPRESS comes after authentication.
		c += " COMPRESS=DEFLATE"
	}
	return c
}

// logout releases what the session holds.
func (s *Session) logout() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unselect()
	if s.acct != nil {
		s.acct.watchers.remove(s)
		s.srv.closeAccount(s.acct)
		s.acct = nil
	}
	s.log.Debug("disconnect", "user", s.user)
}

// dispatch runs one command.
func (s *Session) dispatch(c *imap.Command) {
	ok := func() bool { return true }
	var allowed func() bool
	switch c.Name {
	case "CAPABILITY", "NOOP", "LOGOUT", "ID":
		allowed = ok
	case "STARTTLS", "AUTHENTICATE", "LOGIN":
		allowed = func() bool { return s.state == stateNotAuth }
	case "FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE", "CLOSE", "UNSELECT", "CHECK", "SORT", "THREAD":
		allowed = func() bool { return s.state == stateSelected }
	default:
		allowed = func() bool { return s.state == stateAuth || s.state == stateSelected }
	}
	if !allowed() {
		s.bad++
		switch {
		case s.state == stateNotAuth:
			s.tagged(c.Tag, "BAD", c.Name+" needs authentication first")
		case c.Name == "STARTTLS" || c.Name == "LOGIN" || c.Name == "AUTHENTICATE":
			s.tagged(c.Tag, "BAD", "Already authenticated")
		default:
			s.tagged(c.Tag, "BAD", c.Name+" needs a selected mailbox")
		}
		if c.Append != nil {
			if !c.Append.Sync && s.state == stateNotAuth {
				// Not reading a message an unauthenticated client sent unasked.
				s.state = stateLogout
				return
			}
			s.dec.SkipAppend()
		}
		return
	}
	s.bad = 0
	defer func() {
		// A bug in one command ends this session with a log line and a BAD, not the
		// daemon with everybody's sessions.
		if r := recover(); r != nil {
			s.log.Error("panic in command", "command", c.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			s.tagged(c.Tag, "BAD", "[SERVERBUG] Internal error")
			s.untagged("BYE Internal error")
			s.state = stateLogout
		}
	}()
	switch c.Name {
	case "CAPABILITY":
		s.untagged("CAPABILITY " + s.capabilities())
		s.done(c, "CAPABILITY completed")
	case "NOOP", "CHECK":
		if s.mb != nil {
			s.mb.scanNew()
		}
		s.done(c, c.Name+" completed")
	case "LOGOUT":
		s.untagged("BYE Logging out")
		s.tagged(c.Tag, "OK", "LOGOUT completed")
		s.state = stateLogout
	case "ID":
		// RFC 2971 §3.3; the client's identity is worth a log line.
		if len(c.ID) > 0 {
			var b strings.Builder
			for _, kv := range c.ID {
				if kv[0] == "name" || kv[0] == "version" {
					b.WriteString(kv[0] + "=" + strconv.Quote(kv[1]) + " ")
				}
			}
			s.log.Debug("client id", "client_id", strings.TrimSpace(b.String()))
		}
		s.untagged(`ID ("name" "Postern" "vendor" "Postern")`)
		s.done(c, "ID completed")
	case "STARTTLS":
		s.starttls(c)
	case "LOGIN":
		s.login(c)
	case "AUTHENTICATE":
		s.authenticate(c)
	case "ENABLE":
		s.enable(c)
	case "SELECT", "EXAMINE":
		s.selectCmd(c)
	case "CREATE":
		s.create(c)
	case "DELETE":
		s.deleteCmd(c)
	case "RENAME":
		s.renameCmd(c)
	case "SUBSCRIBE", "UNSUBSCRIBE":
		s.subscribeCmd(c)
	case "LIST", "LSUB":
		s.list(c)
	case "NAMESPACE":
		// RFC 2342: one personal namespace, no prefix, "/" as separator.
		s.untagged(`NAMESPACE (("" "/")) NIL NIL`)
		s.done(c, "NAMESPACE completed")
	case "STATUS":
		s.status(c)
	case "APPEND":
		s.appendCmd(c)
	case "CLOSE":
		// RFC 3501 §6.4.2: expunge silently, unless read-only.
		if !s.readOnly {
			if gone, freed, err := s.mb.expunge(nil); err == nil && len(gone) > 0 {
				s.mb.changed(s)
				s.addUsage(-freed, -int64(len(gone)))
			}
		}
		s.unselect()
		s.state = stateAuth
		s.tagged(c.Tag, "OK", "CLOSE completed")
	case "UNSELECT":
		s.unselect()
		s.state = stateAuth
		s.tagged(c.Tag, "OK", "UNSELECT completed")
	case "EXPUNGE":
		s.expungeCmd(c)
	case "SEARCH":
		s.search(c)
	case "SORT":
		s.sortCmd(c)
	case "THREAD":
		s.threadCmd(c)
	case "FETCH":
		s.fetch(c)
	case "STORE":
		s.storeCmd(c)
	case "COPY", "MOVE":
		s.copyCmd(c)
	case "IDLE":
		s.idle(c)
	case "COMPRESS":
		s.compress(c)
	case "NOTIFY":
		s.notifyCmd(c)
	default:
		s.tagged(c.Tag, "BAD", "Unknown command")
	}
}

// done reports pending mailbox changes (RFC 3501 §7: before the tagged response) and
// completes the command.
func (s *Session) done(c *imap.Command, text string) {
	s.update(true)
	s.tagged(c.Tag, "OK", text)
}

func (s *Session) no(c *imap.Command, text string) { s.tagged(c.Tag, "NO", text) }

func (s *Session) starttls(c *imap.Command) {
	if s.tls || s.srv.tls == nil {
		s.tagged(c.Tag, "BAD", "STARTTLS not available")
		return
	}
	// A client that sent more after STARTTLS is trying to inject plaintext commands
	// into the TLS session (CVE-2011-0411 in Postfix, and the like in IMAP servers).
	if s.dec.Buffered() > 0 {
		s.tagged(c.Tag, "BAD", "Data after STARTTLS")
		s.state = stateLogout
		return
	}
	s.tagged(c.Tag, "OK", "Begin TLS negotiation now")
	s.flush()
	tc := tls.Server(s.raw, s.srv.tls)
	tc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.Handshake(); err != nil {
		s.log.Info("STARTTLS handshake failed", "client", s.ip.String(), "err", err)
		s.state = stateLogout
		return
	}
	tc.SetDeadline(time.Time{})
	s.conn = tc
	s.tls = true
	s.w.Reset(s.conn)
	s.br = bufio.NewReaderSize(s.conn, 4096)
	s.dec.Reset(s.br)
}

func (s *Session) enable(c *imap.Command) {
	var enabled []string
	for _, cap := range c.Capabilities {
		switch cap {
		case "IMAP4REV2":
			if !s.rev2 {
				s.rev2 = true
				enabled = append(enabled, "IMAP4rev2")
			}
		case "CONDSTORE":
			if !s.condstore {
				s.enableCondstore()
				enabled = append(enabled, "CONDSTORE")
			}
		case "UTF8=ACCEPT":
			// RFC 6855 §3: from now on mailbox names are UTF-8 both ways.
			if !s.utf8 {
				s.utf8 = true
				enabled = append(enabled, "UTF8=ACCEPT")
			}
		case "QRESYNC":
			// RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
			if !s.qresync {
				s.enableCondstore()
				s.qresync = true
				enabled = append(enabled, "QRESYNC")
			}
		}
	}
	// RFC 5161 §3.1: the ENABLED response lists what this command enabled.
	s.untagged(strings.TrimSpace("ENABLED " + strings.Join(enabled, " ")))
	s.done(c, "ENABLE completed")
}

// enableCondstore starts CONDSTORE for the session (RFC 7162 §3.1). Enabled while a
// mailbox is selected, the mailbox's HIGHESTMODSEQ goes out at once (§3.1.2.1 says it
// with SELECT; a client enabling later learns it here).
func (s *Session) enableCondstore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if s.mb != nil && s.w != nil {
		s.untagged("OK [HIGHESTMODSEQ " + strconv.FormatUint(s.mb.modseqNow(), 10) + "] Highest")
	}
}

// ctx returns a context for calls to other daemons on behalf of a command.
func (s *Session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
