package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/pkg/smtp"
)

// fakeServer is an SMTP server for the tests: it announces the extensions it is told
// to, answers RCPT by a function of the address, and records what it received.
type fakeServer struct {
	t    *testing.T
	l    net.Listener
	addr string
	port int

	cfg fakeConfig // behaviour, changed with set

	mu          sync.Mutex
	conns       int
	active      int
	maxActive   int
	messages    []fakeMessage
	commands    []string
	pipelined   bool // several commands arrived in one packet
	violations  []string
	tlsSessions int
}

// fakeConfig is how a fakeServer behaves.
type fakeConfig struct {
	ext       []string                 // EHLO keywords, e.g. "PIPELINING", "SIZE 1000"
	tlsConfig *tls.Config              // STARTTLS works when set (and announced)
	badTLS    bool                     // answer 220 to STARTTLS, then break the handshake
	rcptReply func(addr string) string // "250 2.1.5 OK" when nil
	dataReply string                   // reply to the final dot; "250 2.0.0 queued" when ""
	maxRcpts  int                      // 452 beyond this many recipients per transaction
	slow      time.Duration            // wait before answering the final dot
	greeting  string                   // "220 fake ESMTP" when ""
	onCommand func(line string) string // an answer overriding the rest, when not ""

}

// set changes the server's behaviour.
func (s *fakeServer) set(f func(c *fakeConfig)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.cfg)
}

func (s *fakeServer) config() fakeConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

type fakeMessage struct {
	from       string
	mailParams string
	rcpts      []string
	rcptParams []string
	data       []byte
	tls        bool
}

func newFakeServer(t *testing.T, ip string) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{t: t, l: l, addr: l.Addr().String(), port: l.Addr().(*net.TCPAddr).Port}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (c fakeConfig) has(ext string) bool {
	for _, e := range c.ext {
		if strings.EqualFold(strings.Fields(e)[0], ext) {
			return true
		}
	}
	return false
}

func (s *fakeServer) serve(c net.Conn) {
	s.mu.Lock()
	s.conns++
	s.active++
	s.maxActive = max(s.maxActive, s.active)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		c.Close()
	}()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(text string) {
		fmt.Fprintf(w, "%s\r\n", text)
		w.Flush()
	}
	cfg := s.config()
	greet := cfg.greeting
	if greet == "" {
		greet = "220 fake ESMTP"
	}
	reply(greet)
	if !strings.HasPrefix(greet, "220") {
		return
	}
	inTLS := false
	var msg *fakeMessage
	for {
		line, err := smtp.ReadLine(r, 2048)
		if err != nil {
			return
		}
		cmd := string(line)
		verb := strings.ToUpper(strings.Fields(cmd + " x")[0])
		cfg = s.config()
		s.mu.Lock()
		s.commands = append(s.commands, cmd)
		if r.Buffered() > 0 {
			if !cfg.has("PIPELINING") {
				s.violations = append(s.violations, "pipelined without PIPELINING: "+cmd)
			}
			s.pipelined = true
		}
		s.mu.Unlock()
		if cfg.onCommand != nil {
			if ans := cfg.onCommand(cmd); ans != "" {
				reply(ans)
				if strings.HasPrefix(ans, "421") {
					return
				}
				continue
			}
		}
		switch verb {
		case "EHLO":
			lines := []string{"fake.test"}
			for _, e := range cfg.ext {
				if e == "STARTTLS" && inTLS {
					continue
				}
				lines = append(lines, e)
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				fmt.Fprintf(w, "250%s%s\r\n", sep, l)
			}
			w.Flush()
		case "HELO":
			reply("250 fake.test")
		case "STARTTLS":
			if cfg.badTLS {
				reply("220 go ahead")
				c.Write([]byte("this is not TLS\r\n"))
				return
			}
			if cfg.tlsConfig == nil || inTLS {
				reply("502 5.5.1 no")
				continue
			}
			reply("220 2.0.0 go ahead")
			tc := tls.Server(c, cfg.tlsConfig)
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
			r = bufio.NewReader(c)
			w = bufio.NewWriter(c)
			inTLS = true
			s.mu.Lock()
			s.tlsSessions++
			s.mu.Unlock()
		case "MAIL":
			from, params, err := smtp.ParseMailFrom(cmd[len("MAIL "):], true)
			if err != nil {
				reply("501 5.5.4 bad MAIL")
				continue
			}
			msg = &fakeMessage{from: from.String(), mailParams: params.String(), tls: inTLS}
			reply("250 2.1.0 OK")
		case "RCPT":
			if msg == nil {
				reply("503 5.5.1 MAIL first")
				continue
			}
			to, params, err := smtp.ParseRcptTo(cmd[len("RCPT "):], true)
			if err != nil {
				reply("501 5.5.4 bad RCPT")
				continue
			}
			if cfg.maxRcpts > 0 && len(msg.rcpts) >= cfg.maxRcpts {
				reply("452 4.5.3 too many recipients")
				continue
			}
			ans := "250 2.1.5 OK"
			if cfg.rcptReply != nil {
				ans = cfg.rcptReply(to.String())
			}
			if strings.HasPrefix(ans, "2") {
				msg.rcpts = append(msg.rcpts, to.String())
				msg.rcptParams = append(msg.rcptParams, params.String())
			}
			reply(ans)
		case "DATA":
			if msg == nil || len(msg.rcpts) == 0 {
				reply("554 5.5.1 no valid recipients")
				continue
			}
			reply("354 go on")
			data, err := io.ReadAll(smtp.NewDataReader(r, smtp.DataOptions{}))
			if err != nil {
				return
			}
			msg.data = data
			if cfg.slow > 0 {
				time.Sleep(cfg.slow)
			}
			ans := cfg.dataReply
			if ans == "" {
				ans = "250 2.0.0 queued as FAKE1"
			}
			if strings.HasPrefix(ans, "2") {
				s.mu.Lock()
				s.messages = append(s.messages, *msg)
				s.mu.Unlock()
			}
			msg = nil
			reply(ans)
		case "RSET":
			msg = nil
			reply("250 2.0.0 OK")
		case "NOOP":
			reply("250 2.0.0 OK")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("500 5.5.2 what?")
		}
	}
}

func (s *fakeServer) snapshot() (msgs []fakeMessage, conns int, cmds []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fakeMessage(nil), s.messages...), s.conns, append([]string(nil), s.commands...)
}

// selfSigned returns a TLS configuration with a self-signed certificate for name.
func selfSigned(t *testing.T, name string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// certPool returns a pool holding the certificate of cfg.
func certPool(t *testing.T, cfg *tls.Config) *x509.CertPool {
	c, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

var _ = bytes.Equal
