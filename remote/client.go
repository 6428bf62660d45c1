package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"postern/pkg/smtp"
)

// session is one SMTP connection to a server, after the greeting and EHLO (and
// STARTTLS when the server offered it).
type session struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	// host is the server's name (the MX), addr its "ip:port"; relay is both, for logs
	// and results: "mx.b.test[127.0.0.3]:25".
	host, addr, relay string
	ext               extensions
	// tls describes the TLS state for logs: "" for none.
	tls string
	// verified says whether the server's certificate verified for host: by the
	// system's authorities, or by DANE when dane is set.
	verified bool
	dane     bool
	// sts is the mode of the MTA-STS policy that applied, "" for none.
	sts string
	// policy is the policyKey of the target the session was made for.
	policy string
	// broken is set once the connection can no longer be used for another message.
	broken bool
	// inTx is set while a mail transaction is open: MAIL FROM accepted, and neither the
	// message's final reply nor RSET has ended it.
	inTx bool

	timeouts timeouts
}

type timeouts struct {
	connect, command, data time.Duration
}

// extensions are the SMTP service extensions a server announced in its EHLO reply
// (RFC 5321 §4.1.1.1).
type extensions struct {
	esmtp      bool // the server answered EHLO, not only HELO
	pipelining bool // RFC 2920
	starttls   bool // RFC 3207
	eightBit   bool // 8BITMIME, RFC 6152
	smtputf8   bool // RFC 6531
	dsn        bool // RFC 3461
	size       bool // RFC 1870
	maxSize    int64
}

// parseExtensions reads the extensions out of the lines of an EHLO reply: the first
// line is the server's greeting, each further line "KEYWORD [params]"
// (RFC 5321 §4.1.1.1: ehlo-line).
func parseExtensions(rep smtp.Reply) extensions {
	ext := extensions{esmtp: true}
	for i, line := range rep.Lines {
		if i == 0 {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "PIPELINING":
			ext.pipelining = true
		case "STARTTLS":
			ext.starttls = true
		case "8BITMIME":
			ext.eightBit = true
		case "SMTPUTF8":
			ext.smtputf8 = true
		case "DSN":
			ext.dsn = true
		case "SIZE":
			ext.size = true
			// RFC 1870 §4: an optional limit; 0 or none means no fixed limit.
			if len(fields) > 1 {
				if n, err := strconv.ParseInt(fields[1], 10, 64); err == nil && n > 0 {
					ext.maxSize = n
				}
			}
		}
	}
	return ext
}

// replyError is a reply that is not the one a step expected.
type replyError struct {
	rep  smtp.Reply
	what string // the command it answered: "MAIL FROM", "RCPT TO", "DATA" ...
}

func (e *replyError) Error() string {
	return fmt.Sprintf("%s (in reply to %s)", replyText(e.rep), e.what)
}

// replyText is a reply on one line, as the diagnostic of a DSN (RFC 3464 §2.3.6 for
// type smtp): "550 5.1.1 <bob@b.test>: no such user".
func replyText(r smtp.Reply) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enhanced != "" {
		b.WriteString(" " + r.Enhanced)
	}
	for _, l := range r.Lines {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString(" " + l)
		}
	}
	return b.String()
}

// enhancedCode returns the reply's enhanced status code, or X.0.0 of its class when
// the server gave none or one of another class (RFC 3463 §2).
func enhancedCode(r smtp.Reply) string {
	class := strconv.Itoa(r.Code / 100)
	if r.Enhanced != "" && strings.HasPrefix(r.Enhanced, class+".") {
		return r.Enhanced
	}
	return class + ".0.0"
}

// dialer opens sessions.
type dialer struct {
	helo     string
	timeouts timeouts
	// bind is the local address to connect from; nil lets the kernel choose.
	bind net.IP
	// roots verifies server certificates; nil means the system's.
	roots *x509.CertPool
}

// errTLSFailed marks a STARTTLS handshake that failed: the caller may connect again
// without TLS.
var errTLSFailed = errors.New("TLS handshake failed")

// dial connects to the target, reads the greeting and says EHLO (or HELO), then
// STARTTLS and EHLO again when the server offers it and useTLS is set. A target with a
// DANE policy must do TLS and pass the policy's check, or dial fails with errDANE.
func (d *dialer) dial(ctx context.Context, t target, useTLS bool) (*session, error) {
	host, addr := t.host, t.addr
	nd := d.netDialer()
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", relayName(host, addr), plainNetError(err))
	}
	return d.open(ctx, conn, t, useTLS)
}

// netDialer returns a dialer that connects from the bind address within the connect
// timeout.
func (d *dialer) netDialer() *net.Dialer {
	nd := &net.Dialer{Timeout: d.timeouts.connect}
	if d.bind != nil {
		nd.LocalAddr = &net.TCPAddr{IP: d.bind}
	}
	return nd
}

// open makes a session of a connection to the target: greeting, EHLO, STARTTLS.
func (d *dialer) open(ctx context.Context, conn net.Conn, t target, useTLS bool) (*session, error) {
	host, addr := t.host, t.addr
	s := &session{
		conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn),
		host: host, addr: addr, relay: relayName(host, addr), timeouts: d.timeouts,
		policy: t.policyKey(), dane: t.dane != nil, sts: t.sts,
	}
	fail := func(err error) (*session, error) {
		s.close()
		return nil, err
	}
	// RFC 5321 §4.5.3.2.1: the greeting may take up to 5 minutes.
	rep, err := s.read(s.timeouts.command)
	if err != nil {
		return fail(fmt.Errorf("%s: reading the greeting: %w", s.relay, err))
	}
	if rep.Code != 220 {
		// RFC 5321 §3.1: a 554 greeting means no service; QUIT and try elsewhere.
		s.quit()
		return fail(fmt.Errorf("%s: %w", s.relay, &replyError{rep, "the connection greeting"}))
	}
	if err := s.hello(d.helo); err != nil {
		return fail(err)
	}
	who, sentinel := t.requirement()
	if sentinel != nil && !s.ext.starttls {
		s.quit()
		return fail(fmt.Errorf("%s: %w: the server offers no STARTTLS, but %s require TLS", s.relay, sentinel, who))
	}
	if (useTLS || sentinel != nil) && s.ext.starttls {
		if err := s.startTLS(ctx, d, t); err != nil {
			return fail(err)
		}
		if err := s.hello(d.helo); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// hello says EHLO, or HELO to a server that does not know EHLO (RFC 5321 §3.2).
func (s *session) hello(name string) error {
	rep, err := s.cmd(s.timeouts.command, "EHLO "+name)
	if err != nil {
		return fmt.Errorf("%s: EHLO: %w", s.relay, err)
	}
	if rep.Code == 250 {
		s.ext = parseExtensions(rep)
		return nil
	}
	if rep.Code/100 != 5 {
		return fmt.Errorf("%s: %w", s.relay, &replyError{rep, "EHLO"})
	}
	rep, err = s.cmd(s.timeouts.command, "HELO "+name)
	if err != nil {
		return fmt.Errorf("%s: HELO: %w", s.relay, err)
	}
	if rep.Code != 250 {
		return fmt.Errorf("%s: %w", s.relay, &replyError{rep, "HELO"})
	}
	s.ext = extensions{}
	return nil
}

// startTLS upgrades the connection (RFC 3207). The certificate is checked against
// the MX host's name and the result recorded, but an unverified certificate does not
// stop delivery: this is opportunistic TLS (RFC 7435), which without MTA-STS or DANE
// cannot know that the server should have had a valid one. A server that refuses
// STARTTLS leaves the session in plain text.
//
// With a DANE policy the server's certificate must match the policy (RFC 7672 §2.2),
// with an MTA-STS policy in enforce mode it must verify for the MX host's name (RFC
// 8461 §4.2), or the handshake fails; and so does a refused STARTTLS.
func (s *session) startTLS(ctx context.Context, d *dialer, t target) error {
	dane := t.dane
	who, sentinel := t.requirement()
	rep, err := s.cmd(s.timeouts.command, "STARTTLS")
	if err != nil {
		return fmt.Errorf("%s: STARTTLS: %w", s.relay, err)
	}
	if rep.Code != 220 && sentinel != nil {
		return fmt.Errorf("%s: %w: STARTTLS refused (%s), but %s require TLS", s.relay, sentinel, replyText(rep), who)
	}
	if rep.Code != 220 {
		s.tls = "refused: " + replyText(rep)
		return nil
	}
	var verifyErr error
	cfg := &tls.Config{
		// The check is done below, so that its outcome can be recorded rather than end
		// the connection (opportunistic), or end it for a reason DANE gives.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if dane != nil {
				return daneVerify(cs, dane)
			}
			verifyErr = verifyChain(cs, s.host, d.roots)
			if verifyErr != nil && sentinel != nil {
				return fmt.Errorf("%w: the certificate of %s does not verify (%v), but %s require it to", errSTS, s.host, verifyErr, who)
			}
			return nil
		},
	}
	if net.ParseIP(s.host) == nil {
		cfg.ServerName = s.host // SNI (RFC 6066 §3)
	}
	tc := tls.Client(s.conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, s.timeouts.command)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		if sentinel != nil {
			// No second try in clear text: the policy requires TLS.
			if errors.Is(err, sentinel) {
				return fmt.Errorf("%s: %w", s.relay, err)
			}
			return fmt.Errorf("%s: %w: TLS handshake failed: %v", s.relay, sentinel, err)
		}
		return fmt.Errorf("%s: %w: %v", s.relay, errTLSFailed, err)
	}
	cs := tc.ConnectionState()
	s.conn = tc
	s.r = bufio.NewReader(tc)
	s.w = bufio.NewWriter(tc)
	s.verified = verifyErr == nil && (dane == nil || !dane.encryptOnly())
	s.tls = tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)
	if dane != nil && dane.encryptOnly() {
		s.tls += " (DANE: TLS required, no usable TLSA record to authenticate with)"
	} else if verifyErr != nil {
		s.tls += " (certificate not verified: " + verifyErr.Error() + ")"
	}
	// RFC 3207 §4.2: forget what the server said before TLS.
	s.ext = extensions{}
	return nil
}

// verifyChain checks the server's chain against roots for the name host.
func verifyChain(cs tls.ConnectionState, host string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	opts := x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ua):
		return errors.New("unknown authority")
	case errors.As(err, &hn):
		return errors.New("name mismatch")
	}
	return err
}

// reset readies a cached connection for another message (RFC 5321 §4.1.1.5) and
// proves that the server is still there.
func (s *session) reset() error {
	rep, err := s.cmd(s.timeouts.command, "RSET")
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return &replyError{rep, "RSET"}
	}
	s.inTx = false
	return nil
}

// quit ends the session politely (RFC 5321 §4.1.1.10), not waiting long.
func (s *session) quit() {
	s.conn.SetDeadline(time.Now().Add(5 * time.Second))
	s.w.WriteString("QUIT\r\n")
	if s.w.Flush() == nil {
		smtp.ReadReply(s.r)
	}
}

func (s *session) close() {
	s.broken = true
	s.conn.Close()
}

// cmd sends one command line and reads its reply.
func (s *session) cmd(timeout time.Duration, line string) (smtp.Reply, error) {
	if err := s.send(timeout, line); err != nil {
		return smtp.Reply{}, err
	}
	if err := s.flush(); err != nil {
		return smtp.Reply{}, err
	}
	return s.read(timeout)
}

// send buffers a command line.
func (s *session) send(timeout time.Duration, line string) error {
	s.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := s.w.WriteString(line + "\r\n")
	if err != nil {
		s.broken = true
	}
	return err
}

func (s *session) flush() error {
	if err := s.w.Flush(); err != nil {
		s.broken = true
		return plainNetError(err)
	}
	return nil
}

// read reads one reply. A 421 means the server is closing the connection
// (RFC 5321 §3.8): the session is not used again.
func (s *session) read(timeout time.Duration) (smtp.Reply, error) {
	s.conn.SetReadDeadline(time.Now().Add(timeout))
	rep, err := smtp.ReadReply(s.r)
	if err != nil {
		s.broken = true
		return smtp.Reply{}, plainNetError(err)
	}
	if rep.Code == 421 {
		s.broken = true
	}
	return rep, nil
}

// relayName is how logs and results name a server: "mx.b.test[127.0.0.3]:25".
func relayName(host, addr string) string {
	ip, port, err := net.SplitHostPort(addr)
	if err != nil {
		return host + "[" + addr + "]"
	}
	return host + "[" + ip + "]:" + port
}

// plainNetError shortens network errors for people: "connection refused", "timed
// out", "connection lost".
func plainNetError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("connection lost")
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("timed out")
	case errors.Is(err, errConnRefused):
		return errors.New("connection refused")
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
