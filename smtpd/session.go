package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"postern/pkg/auth"
	"postern/pkg/metrics"
	"postern/pkg/smtp"
	mailstats "postern/pkg/stats"
)

// Buffer sizes of a session. The reader is large enough that a small message arrives
// in one read and is passed to cleanup in one frame.
const (
	readBufferSize  = 16 << 10
	writeBufferSize = 4 << 10
)

// errShutdown ends a session because the server is stopping.
var errShutdown = errors.New("server shutting down")

// session is one SMTP connection, served by one goroutine.
type session struct {
	srv    *Server
	policy listenerPolicy
	raw    net.Conn // the TCP connection
	conn   net.Conn // raw, or the TLS connection over it
	br     *bufio.Reader
	bw     *bufio.Writer
	ip     netip.Addr
	web    int // fromWeb's answer: 0 not worked out yet, 1 httpd, -1 not
	log    *slog.Logger
	// exempt: the client is in smtpd.exempt_networks, out of the per-client limits.
	exempt bool
	// unknown counts the unknown recipients of the session (dictionary attacks).
	unknown int

	helo     string // the EHLO/HELO argument; "" until the client sent one
	esmtp    bool   // the client said EHLO
	tlsInfo  string // "TLS1.3 TLS_AES_128_GCM_SHA256" once TLS is up
	authUser string // the authenticated account, after AUTH
	// sendAs are the addresses authUser may send as (authd's answer at AUTH).
	sendAs auth.SendAsResult

	tx      *transaction // nil outside a mail transaction
	errors  int          // 5xx replies so far
	quit    bool         // end the session after the current command
	verb    string       // the command being served, for logs
	lastOK  bool         // the last reply was positive
	stats   stats
	started time.Time

	// Shared with the server's shutdown, under mu.
	mu          sync.Mutex
	idle        bool      // waiting for a command outside a transaction
	interrupted bool      // the shutdown cut that wait short
	deadline    time.Time // of the wait for a command
}

func newSession(srv *Server, c net.Conn, p listenerPolicy, ip netip.Addr) *session {
	s := &session{srv: srv, policy: p, raw: c, conn: c, ip: ip, started: time.Now()}
	s.br = bufio.NewReaderSize(connReader{s}, readBufferSize)
	s.bw = bufio.NewWriterSize(connWriter{s}, writeBufferSize)
	s.log = srv.log.With("client", ip.String())
	return s
}

// connReader reads from the session's connection. Before it blocks for input it sends
// the replies it holds: the client has no more pipelined commands for which the
// server could gather replies (RFC 2920 §3.1), and waits for these.
type connReader struct{ s *session }

func (r connReader) Read(p []byte) (int, error) {
	if r.s.bw.Buffered() > 0 {
		if err := r.s.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return r.s.conn.Read(p)
}

// connWriter writes to the session's connection within the command timeout, so that a
// client that does not read its replies cannot hold the session forever.
type connWriter struct{ s *session }

func (w connWriter) Write(p []byte) (int, error) {
	w.s.conn.SetWriteDeadline(time.Now().Add(w.s.srv.timeout))
	return w.s.conn.Write(p)
}

// run serves the session to its end.
func (s *session) run() {
	defer s.srv.release(s)
	defer s.raw.Close()
	s.log.Info("connect", "listener", s.policy.name)
	defer func() {
		s.resetTx()
		s.logDisconnect()
	}()
	if s.policy.implicitTLS && !s.implicitTLS() {
		return
	}
	if s.talksFirst() {
		return
	}
	s.write(s.srv.r.greeting)
	for !s.quit {
		line, err := s.readCommand()
		switch {
		case err == nil:
			s.serve(line)
		case errors.Is(err, smtp.ErrLineTooLong):
			// RFC 5321 §4.5.3.1.4: the line was read to its end, so the session is
			// still in step with the client.
			s.verb = ""
			s.reply(rLineTooLong)
		default:
			s.readFailed(err)
			return
		}
	}
	s.bw.Flush()
}

// talksFirst runs the early-talker test of the MX listener (Postfix postscreen's
// pregreet test): smtpd waits smtpd.greet_delay before its greeting, and a client that
// sends anything meanwhile is no client that waits for the greeting as RFC 5321 §4.3.1
// asks, but a spam engine that does not listen; it gets 554 and the session ends. It
// reports whether the session is over. The submission ports (RFC 6409 clients are
// users' mail programs) and exempt clients are greeted at once.
func (s *session) talksFirst() bool {
	if s.policy.name != listenSMTP || s.exempt || s.srv.greetDelay <= 0 {
		return false
	}
	s.raw.SetReadDeadline(time.Now().Add(s.srv.greetDelay))
	_, err := s.br.Peek(1)
	var ne net.Error
	switch {
	case err == nil:
		s.log.Info("early talker: input before the greeting", "octets", s.br.Buffered(), "delay", s.srv.greetDelay)
		s.verb = ""
		s.write(s.srv.r.earlyTalker)
		s.raw.SetReadDeadline(time.Time{})
		s.bw.Flush()
		return true
	case errors.As(err, &ne) && ne.Timeout():
		return false
	}
	return true // the client went away
}

// implicitTLS runs the TLS handshake of a submissions connection (RFC 8314 §3.3).
func (s *session) implicitTLS() bool {
	s.mu.Lock()
	s.idle = true // an idle handshake does not hold up a shutdown
	if s.srv.draining.Load() {
		s.mu.Unlock()
		return false
	}
	s.raw.SetDeadline(time.Now().Add(s.srv.timeout))
	s.mu.Unlock()
	err := s.handshake()
	s.mu.Lock()
	s.idle = false
	s.mu.Unlock()
	if err != nil {
		s.log.Info("TLS handshake failed", "err", err)
		return false
	}
	return true
}

// handshake makes the connection a TLS server connection.
func (s *session) handshake() error {
	tc := tls.Server(s.raw, s.srv.tls)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		return err
	}
	st := tc.ConnectionState()
	s.conn = tc
	s.tlsInfo = strings.ReplaceAll(tls.VersionName(st.Version), " ", "") + " " + tls.CipherSuiteName(st.CipherSuite)
	s.log.Info("TLS established", "tls", s.tlsInfo)
	return nil
}

// readCommand reads the next command line within the command timeout. Outside a
// transaction a stopping server ends the session here, at once or as soon as the
// client's next command arrives.
func (s *session) readCommand() ([]byte, error) {
	s.mu.Lock()
	if s.srv.draining.Load() && s.tx == nil {
		s.mu.Unlock()
		return nil, errShutdown
	}
	s.idle = s.tx == nil
	s.interrupted = false
	timeout := s.srv.timeout
	if s.srv.stressed() {
		timeout = s.srv.stressTimeout
	}
	s.deadline = time.Now().Add(timeout)
	s.raw.SetReadDeadline(s.deadline)
	s.mu.Unlock()

	// MAIL and RCPT may be longer than other commands; ParseCommand applies the
	// limit of each verb (RFC 5321 §4.5.3.1.4).
	line, err := smtp.ReadLine(s.br, smtp.MaxExtendedCommandLine-2)

	s.mu.Lock()
	s.idle = false
	s.deadline = time.Time{} // no longer waiting for a command
	interrupted := s.interrupted
	s.mu.Unlock()
	if err != nil && interrupted {
		return nil, errShutdown
	}
	return line, err
}

// interruptIfIdle is called by the shutdown: a session waiting for a command outside
// a transaction stops waiting and says goodbye.
func (s *session) interruptIfIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle {
		s.interrupted = true
		s.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

// stress shortens the wait for a command to the stress timeout, when smtpd comes under
// stress while the session waits.
func (s *session) stress() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := time.Now().Add(s.srv.stressTimeout); s.deadline.After(d) {
		s.deadline = d
		s.raw.SetReadDeadline(d)
	}
}

// readFailed ends the session after a failed read.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errShutdown):
		s.write(s.srv.r.shutdown)
	case errors.As(err, &ne) && ne.Timeout():
		s.log.Info("timeout", "after", s.verb)
		s.write(s.srv.r.timeout)
	default:
		if !errors.Is(err, io.EOF) {
			s.log.Info("connection lost", "err", err)
		}
		return
	}
	s.raw.SetReadDeadline(time.Time{})
	s.bw.Flush()
}

// write queues a reply; it goes out when the client waits for it (see connReader).
func (s *session) write(r reply) {
	s.bw.WriteString(r.wire)
	s.lastOK = r.code < 400
}

// reply queues a reply to the current command. Negative replies are logged with attrs;
// 5xx replies count toward the error limit, past which the session ends with 421.
func (s *session) reply(r reply, attrs ...any) {
	s.write(r)
	if r.code < 400 {
		return
	}
	args := append([]any{"cmd", s.verb, "reply", r.text()}, attrs...)
	s.log.Info("reject", args...)
	if r.code >= 500 && r.code != 503 && (s.verb == "RCPT" || s.verb == "DATA" || s.verb == "BDAT") {
		// A recipient or a message refused for good (503, a command out of sequence,
		// refuses nothing that was offered).
		s.srv.stats.Add(mailstats.Rejected, 1)
	}
	metrics.Inc(metrics.Rejected, "command", metricVerb(s.verb), "code", cmp.Or(r.enhanced, "none"))
	if r.code >= 500 {
		s.errors++
		if s.errors >= s.srv.maxErrors {
			s.log.Info("too many errors", "errors", s.errors)
			s.write(s.srv.r.tooManyErrors)
			s.quit = true
		}
	}
}

// serve runs one command line.
func (s *session) serve(line []byte) {
	cmd, err := smtp.ParseCommand(line)
	if err != nil {
		s.verb = ""
		s.stats.unknown.total++
		if errors.Is(err, smtp.ErrLineTooLong) {
			s.reply(rLineTooLong)
		} else {
			s.reply(rBadSyntax)
		}
		return
	}
	s.verb = cmd.Verb
	c := s.stats.counter(cmd.Verb)
	c.total++
	s.dispatch(cmd)
	if s.lastOK {
		c.ok++
	}
}

func (s *session) dispatch(cmd smtp.Command) {
	switch cmd.Verb {
	case "EHLO":
		s.cmdHelo(cmd.Arg, true)
	case "HELO":
		s.cmdHelo(cmd.Arg, false)
	case "MAIL":
		s.cmdMail(cmd.Arg)
	case "RCPT":
		s.cmdRcpt(cmd.Arg)
	case "DATA":
		s.cmdData(cmd.Arg)
	case "BDAT":
		s.cmdBdat(cmd.Arg)
	case "RSET":
		if cmd.Arg != "" {
			s.reply(rNoArgs)
			return
		}
		s.resetTx()
		s.reply(rOK)
	case "NOOP":
		s.reply(rOK) // RFC 5321 §4.1.1.9: the argument, if any, is ignored
	case "QUIT":
		s.reply(rBye)
		s.quit = true
	case "VRFY":
		if cmd.Arg == "" {
			s.reply(rVrfySyntax)
			return
		}
		s.reply(rVrfy)
	case "HELP":
		s.reply(rHelp)
	case "STARTTLS":
		s.cmdStartTLS(cmd.Arg)
	case "AUTH":
		s.cmdAuth(cmd.Arg)
	case "EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "BURL":
		s.reply(rNotImpl)
	case "GET", "POST", "PUT", "HEAD", "CONNECT", "USER":
		// A web browser or proxy tricked into talking to us (cross-protocol
		// attacks): there is nothing to gain from going on.
		s.reply(rNotHTTP)
		s.quit = true
	default:
		s.reply(rUnknown)
	}
}

// cmdHelo serves EHLO and HELO (RFC 5321 §4.1.1.1).
func (s *session) cmdHelo(arg string, extended bool) {
	name, _, _ := strings.Cut(arg, " ")
	if name == "" || len(name) > smtp.MaxDomain+2 || !printableASCII(name) {
		if extended {
			s.reply(rEhloSyntax)
		} else {
			s.reply(rHeloSyntax)
		}
		return
	}
	// RFC 5321 §4.1.4: EHLO or HELO in a session clears any transaction, as RSET.
	s.resetTx()
	s.helo, s.esmtp = name, extended
	switch {
	case !extended:
		s.reply(s.srv.r.helo)
	case s.tlsInfo == "" && s.srv.tls != nil:
		// AUTH is not offered before TLS: passwords never travel in the clear.
		s.reply(s.srv.r.ehloPlain)
	case s.tlsInfo != "" && s.policy.submission:
		s.reply(s.srv.r.ehloAuth)
	default:
		// RFC 3207 §4.2: STARTTLS is not offered again in a TLS session.
		s.reply(s.srv.r.ehloTLS)
	}
}

// cmdStartTLS serves STARTTLS (RFC 3207).
func (s *session) cmdStartTLS(arg string) {
	switch {
	case s.srv.tls == nil:
		s.reply(rNotImpl)
		return
	case s.tlsInfo != "":
		s.reply(rTLSActive)
		return
	case arg != "":
		s.reply(rNoArgs) // RFC 3207 §4: no parameters
		return
	case s.helo == "":
		s.reply(rHeloFirst)
		return
	}
	// Whatever the client sent after STARTTLS came in the clear and could have been
	// injected by a man in the middle; it must not be run inside the TLS session
	// (CVE-2011-0411 and its siblings).
	if n := s.br.Buffered(); n > 0 {
		s.br.Discard(n)
		s.log.Warn("discarded input pipelined after STARTTLS", "octets", n)
	}
	s.reply(rReadyTLS)
	if err := s.bw.Flush(); err != nil {
		s.quit = true
		return
	}
	s.raw.SetDeadline(time.Now().Add(s.srv.timeout))
	if err := s.handshake(); err != nil {
		s.log.Info("TLS handshake failed", "err", err)
		s.quit, s.lastOK = true, false
		s.bw.Reset(io.Discard) // nothing more can be said in the clear
		return
	}
	s.raw.SetDeadline(time.Time{})
	// RFC 3207 §4.2: the server discards what it knew from the client before TLS;
	// the client must say EHLO again.
	s.resetTx()
	s.helo, s.esmtp = "", false
}

// printableASCII reports whether s is made of printable ASCII characters.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// counter counts the commands of one kind and how many of them succeeded.
type counter struct{ ok, total int }

// stats are the command counters logged at disconnect, as Postfix does.
type stats struct {
	helo, ehlo, starttls, mail, rcpt, data, bdat, rset, noop, vrfy, quit, unknown counter
	other                                                                         counter
}

func (st *stats) counter(verb string) *counter {
	switch verb {
	case "HELO":
		return &st.helo
	case "EHLO":
		return &st.ehlo
	case "STARTTLS":
		return &st.starttls
	case "MAIL":
		return &st.mail
	case "RCPT":
		return &st.rcpt
	case "DATA":
		return &st.data
	case "BDAT":
		return &st.bdat
	case "RSET":
		return &st.rset
	case "NOOP":
		return &st.noop
	case "VRFY":
		return &st.vrfy
	case "QUIT":
		return &st.quit
	case "HELP", "EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "AUTH", "BURL":
		return &st.other
	}
	return &st.unknown
}

// metricVerb is the command label of metrics.Rejected: the verb when smtpd knows it,
// else "unknown", so that no client can make up label values.
func metricVerb(verb string) string {
	var st stats
	if verb == "" || st.counter(verb) == &st.unknown {
		return "unknown"
	}
	return verb
}

func (s *session) logDisconnect() {
	st := &s.stats
	args := []any{"duration", time.Since(s.started).Round(time.Millisecond)}
	var all counter
	for _, c := range []struct {
		name string
		c    counter
	}{
		{"helo", st.helo}, {"ehlo", st.ehlo}, {"starttls", st.starttls}, {"mail", st.mail},
		{"rcpt", st.rcpt}, {"data", st.data}, {"bdat", st.bdat}, {"rset", st.rset},
		{"noop", st.noop}, {"vrfy", st.vrfy}, {"quit", st.quit}, {"other", st.other},
		{"unknown", st.unknown},
	} {
		all.ok += c.c.ok
		all.total += c.c.total
		if c.c.total > 0 {
			args = append(args, c.name, c.c.String())
		}
	}
	args = append(args, "commands", all.String(), "errors", s.errors)
	s.log.Info("disconnect", args...)
}

// String formats a counter as Postfix does: "3", or "2/3" when some failed.
func (c counter) String() string {
	if c.ok == c.total {
		return strconv.Itoa(c.total)
	}
	return strconv.Itoa(c.ok) + "/" + strconv.Itoa(c.total)
}
