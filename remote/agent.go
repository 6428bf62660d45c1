package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"postern/pkg/config"
	"postern/pkg/delivery"
	"postern/pkg/ipc"
	"postern/pkg/mtasts"
	"postern/pkg/resolver"
	"postern/pkg/smtp"
)

// Limits of one delivery request.
const (
	// requestTimeout bounds a whole request, below qmgr's 10 minutes for an answer: a
	// result that comes too late makes qmgr defer recipients that may have been
	// delivered.
	requestTimeout = 9*time.Minute + 30*time.Second
	// maxRcptsPerTransaction: RFC 5321 §4.5.3.1.8 has servers take at least 100.
	maxRcptsPerTransaction = 100
	// maxDomainsAtOnce bounds the domains one message is sent to in parallel.
	maxDomainsAtOnce = 10
)

// Resolver is what remote asks the DNS. *resolver.Resolver implements it.
type Resolver interface {
	LookupMXSecure(ctx context.Context, domain string) ([]resolver.MX, bool, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, error)
	LookupIPSecure(ctx context.Context, host string) ([]net.IP, bool, error)
	LookupTLSA(ctx context.Context, host string, port int) ([]*dns.TLSA, bool, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Agent is the remote delivery agent.
type Agent struct {
	// Resolver finds mail servers; Port is the port they listen on (25).
	Resolver Resolver
	Port     int
	// DANE makes TLSA records validated by DNSSEC binding (RFC 7672).
	DANE bool
	// STS finds the MTA-STS policies of domains (RFC 8461); nil leaves them aside.
	STS *mtasts.Cache
	Log *slog.Logger

	dialer *dialer
	pool   *pool
}

// Server returns the server of private/remote.
func (a *Agent) Server(allow func(ipc.Cred) bool) *ipc.Server {
	if a.Log == nil {
		a.Log = slog.Default()
	}
	s := &ipc.Server{Name: "remote", Allow: allow, Logger: a.Log}
	delivery.Handle(s, a.serveDeliver)
	return s
}

func (a *Agent) serveDeliver(ctx context.Context, req *delivery.Request, f *os.File) []delivery.Result {
	// A stopping daemon lets the delivery finish rather than cut a message in half.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer cancel()
	return a.Deliver(dctx, f, req)
}

// Deliver sends the message in f to the request's recipients, one domain at a time in
// parallel, and returns a result per recipient.
func (a *Agent) Deliver(ctx context.Context, f *os.File, req *delivery.Request) []delivery.Result {
	results := make([]delivery.Result, len(req.Recipients))
	msg := &message{
		id: req.QueueID, f: f, off: req.Offset, size: req.Size,
		bodyType: req.BodyType, smtputf8: req.SMTPUTF8, envid: req.EnvID, ret: req.Ret,
	}
	if req.From != "" {
		from, err := smtp.ParseAddress(req.From, true)
		if err != nil {
			for i := range results {
				results[i] = fail(delivery.Bounced, "5.1.7", "bad sender address <"+req.From+">")
			}
			return results
		}
		msg.from = from.String()
		msg.needsUTF8Env = !from.IsASCII()
	}
	// Recipients by domain, in the order they come.
	type group struct {
		idx   []int
		rcpts []delivery.Recipient
	}
	groups := map[string]*group{}
	var order []string
	for i, r := range req.Recipients {
		addr, err := smtp.ParseAddress(r.Addr, true)
		if err != nil || addr.Domain == "" {
			// RFC 3463 X.1.3: bad destination mailbox address syntax.
			results[i] = fail(delivery.Bounced, "5.1.3", "bad destination mailbox address <"+r.Addr+">")
			continue
		}
		if !addr.IsASCII() {
			msg.needsUTF8Env = true
		}
		r.Addr = addr.String()
		g := groups[addr.Domain]
		if g == nil {
			g = &group{}
			groups[addr.Domain] = g
			order = append(order, addr.Domain)
		}
		g.idx = append(g.idx, i)
		g.rcpts = append(g.rcpts, r)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxDomainsAtOnce)
	for _, domain := range order {
		g := groups[domain]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			res := a.deliverDomain(ctx, msg, domain, g.rcpts)
			for k, i := range g.idx {
				results[i] = res[k]
			}
		}()
	}
	wg.Wait()
	return results
}

// deliverDomain delivers the message to the recipients of one domain: over a cached
// connection if there is one, else to the domain's mail servers in MX order, the
// recipients in transactions of at most maxRcptsPerTransaction.
func (a *Agent) deliverDomain(ctx context.Context, msg *message, domain string, rcpts []delivery.Recipient) []delivery.Result {
	log := a.Log.With("id", msg.id, "domain", domain)
	results := make([]delivery.Result, len(rcpts))
	pending := make([]int, len(rcpts))
	for i := range pending {
		pending[i] = i
	}
	settle := func(res delivery.Result) []delivery.Result {
		for _, i := range pending {
			results[i] = res
		}
		return results
	}
	d, err := a.pool.acquire(ctx, domain)
	if err != nil {
		// RFC 3463 X.4.5: mail system congestion.
		return settle(fail(delivery.Deferred, "4.4.5", "too many deliveries to "+domain+" at once; try again later"))
	}
	defer a.pool.release(d)

	// The route comes first, even when a connection is cached: a cached connection is
	// used only if its server is still one of the domain's and was checked by the TLS
	// policy (DANE, MTA-STS) that applies now.
	targets, err := a.route(ctx, domain, log)
	if err != nil {
		var re *routeError
		if errors.As(err, &re) {
			log.Info("no route", "status", re.res.Status, "reason", re.res.Reason)
			return settle(re.res)
		}
		return settle(fail(delivery.Deferred, "4.4.3", err.Error()))
	}
	current := func(s *session) bool {
		for _, t := range targets {
			if t.host == s.host && t.addr == s.addr && t.policyKey() == s.policy {
				return true
			}
		}
		return false
	}
	next := 0                  // the next target to dial
	noTLS := map[string]bool{} // addresses whose TLS handshake failed
	var lastErr error          // why the last connection failed
	lastCode := "4.4.1"        // and its status: RFC 3463 X.4.1, no answer from host
	for len(pending) > 0 {
		s, fresh := a.pool.take(domain, current), false
		if s == nil {
			for s == nil && next < len(targets) {
				t := targets[next]
				s, err = a.dialer.dial(ctx, t, !noTLS[t.addr])
				switch {
				case errors.Is(err, errTLSFailed) && !noTLS[t.addr]:
					// RFC 7435 §3: opportunistic TLS falls back to plain text.
					log.Warn("TLS handshake failed; trying again without TLS", "err", err)
					noTLS[t.addr] = true
				case err != nil:
					log.Info("connection failed", "err", err)
					lastErr, lastCode = err, "4.4.1"
					if errors.Is(err, errDANE) || errors.Is(err, errSTS) {
						// RFC 3463 X.7.5: cryptographic failure; RFC 7672 §2.2: try
						// the next MX, and keep the mail if none will do.
						lastCode = "4.7.5"
					}
					next++
				default:
					fresh = true
					a.logSession(log, s)
				}
			}
			if s == nil {
				if lastErr == nil {
					lastErr = errors.New("no server to try")
				}
				// RFC 5321 §4.5.4.1: try later.
				return settle(fail(delivery.Deferred, lastCode, fmt.Sprintf("cannot deliver to %s: %v", domain, lastErr)))
			}
		}
		batch := pending[:min(len(pending), maxRcptsPerTransaction)]
		brcpts := make([]delivery.Recipient, len(batch))
		for k, i := range batch {
			brcpts[k] = rcpts[i]
		}
		outs, err := s.transact(msg, brcpts)
		if err != nil {
			s.close()
			lastErr = err
			log.Info("connection failed before the transaction", "relay", s.relay, "err", err)
			if fresh {
				next++ // this server failed: the next one; a cached one: dial anew
			}
			if ctx.Err() != nil {
				return settle(fail(delivery.Deferred, "4.4.7", "delivery took too long: "+err.Error()))
			}
			continue
		}
		var again []int
		for k, o := range outs {
			i := batch[k]
			if o.retry {
				again = append(again, i)
				continue
			}
			results[i] = o.res
			if o.res.Status != delivery.Sent {
				log.Info("not delivered", "to", "<"+rcpts[i].Addr+">", "relay", s.relay, "status", o.res.Status, "reason", o.res.Reason)
			}
		}
		pending = append(again, pending[len(batch):]...)
		a.pool.put(domain, s)
	}
	return results
}

// logSession logs a new connection and its TLS state: whether TLS was used and whether
// the certificate verified.
func (a *Agent) logSession(log *slog.Logger, s *session) {
	switch {
	case strings.HasPrefix(s.tls, "TLS") && s.dane:
		log.Info("connected", "relay", s.relay, "tls", s.tls, "verified", s.verified, "dane", true)
	case strings.HasPrefix(s.tls, "TLS") && s.sts != "":
		log.Info("connected", "relay", s.relay, "tls", s.tls, "verified", s.verified, "mta_sts", s.sts)
	case strings.HasPrefix(s.tls, "TLS"):
		log.Info("connected", "relay", s.relay, "tls", s.tls, "verified", s.verified)
	case s.tls != "":
		log.Info("connected", "relay", s.relay, "tls", "none", "starttls", s.tls)
	default:
		log.Info("connected", "relay", s.relay, "tls", "none")
	}
	if s.sts == mtasts.Testing && !s.verified {
		// Without TLS, or with a certificate that does not verify (enforce refuses both).
		log.Warn("MTA-STS policy in testing mode would refuse this server", "relay", s.relay)
	}
}

// NewAgent returns the agent configured by cfg's [remote] section, asking res.
func NewAgent(cfg *config.Config, res Resolver, log *slog.Logger) *Agent {
	helo := cfg.Remote.Helo
	if helo == "" {
		helo = cfg.Hostname
	}
	rc := cfg.Remote
	var bind net.IP
	if rc.BindAddress != "" {
		bind = net.ParseIP(rc.BindAddress)
	}
	a := &Agent{
		Resolver: res,
		Port:     rc.Port,
		DANE:     rc.DANE,
		Log:      log,
		dialer: &dialer{
			helo:     helo,
			bind:     bind,
			timeouts: timeouts{connect: rc.ConnectTimeout.D(), command: rc.CommandTimeout.D(), data: rc.DataTimeout.D()},
		},
		pool: newPool(rc.DestinationConcurrency, rc.ConnectionCacheTime.D()),
	}
	if rc.MTASTS {
		f := mtasts.NewFetcher(a.dialHost, nil)
		a.STS = &mtasts.Cache{DNS: res, Fetch: f.Fetch}
	}
	return a
}

// dialHost connects to host:port, the host's addresses found with the agent's
// resolver (so that the HTTPS fetches of MTA-STS policies use the same DNS as the
// mail), from the bind address.
func (a *Agent) dialHost(ctx context.Context, network, hostport string) (net.Conn, error) {
	return resolver.Dialer(a.Resolver, a.dialer.netDialer())(ctx, network, hostport)
}
