package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"blitiri.com.ar/go/spf"
	bolt "go.etcd.io/bbolt"

	"postern/pkg/config"
	"postern/pkg/ipc"
	"postern/pkg/spamcheck"
)

// Greylisting (RFC 6647), for smtpd: a (client network, sender, recipient) triplet seen
// for the first time is refused for now (smtpd answers 451 4.7.1 at RCPT); a real mail
// server retries, and a retry after the delay and within the window passes, as does
// the triplet from then on. A network whose triplets passed autoAllow times passes
// whole. spamd is the state's only owner: the triplets live in memory, loaded from the
// greylist bucket of spamd.db at start and written back behind the answers, so that a
// question never waits on the disk (a crash forgets the last writes, which greylists
// those triplets once more, nothing worse).

// greylistBucket holds the state: "t " + triplet key and "n " + network, JSON values.
var greylistBucket = []byte("greylist")

// greylister answers OpGreylist.
type greylister struct {
	delay, window, maxAge time.Duration
	autoAllow             int
	// exempt are client networks never greylisted (trusted_relays, greylist_exempt);
	// senders are exempt sender addresses and domains (greylist_exempt).
	exempt  []*net.IPNet
	senders []string
	// lists are the administrator's block and allow lists (nil: none): an allowed
	// client is never greylisted, nor an allowed MAIL FROM address or domain that SPF
	// vouches for (spf, nil: never).
	lists *senderLists
	spf   func(ctx context.Context, ip net.IP, helo, sender string) spf.Result
	db    *bolt.DB
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	triplets map[string]*triplet
	nets     map[string]*network
	writes   chan greylistWrite
}

// triplet is the state of one triplet: when it was first tried, whether it passed,
// and when it was last seen.
type triplet struct {
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
	Passed bool      `json:"passed,omitempty"`
}

// network counts the triplets of a client network that passed.
type network struct {
	Passes int       `json:"passes"`
	Last   time.Time `json:"last"`
}

// greylistWrite is a change to write into the database: a value, or a deletion (nil).
type greylistWrite struct {
	key   string
	value any
}

// newGreylister returns the greylister of the configuration, its state read from db,
// telling the time with now.
func newGreylister(cfg *config.Config, db *bolt.DB, log *slog.Logger, now func() time.Time) (*greylister, error) {
	g := &greylister{
		delay: cfg.Spamd.GreylistDelay.D(), window: cfg.Spamd.GreylistWindow.D(), maxAge: cfg.Spamd.GreylistMaxAge.D(),
		autoAllow: cfg.Spamd.GreylistAutoAllow, exempt: config.ParseNets(cfg.Spamd.TrustedRelays),
		db: db, log: log, now: now,
	}
	for _, e := range cfg.Spamd.GreylistExempt {
		if n, err := config.ParseNet(e); err == nil {
			g.exempt = append(g.exempt, n)
		} else {
			g.senders = append(g.senders, strings.ToLower(strings.TrimPrefix(e, "@")))
		}
	}
	if err := g.load(); err != nil {
		return nil, err
	}
	return g, nil
}

// load reads the state and deletes what has expired (or does not decode): sweep only
// forgets what is in memory, so a key left out here would stay in spamd.db for ever.
func (g *greylister) load() error {
	g.triplets, g.nets = map[string]*triplet{}, map[string]*network{}
	g.writes = make(chan greylistWrite, 4096)
	now := g.now()
	return g.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(greylistBucket)
		if err != nil {
			return fmt.Errorf("creating the greylist bucket: %w", err)
		}
		var stale [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			key := string(k)
			switch {
			case strings.HasPrefix(key, "t "):
				var t triplet
				if json.Unmarshal(v, &t) == nil && !g.expiredTriplet(&t, now) {
					g.triplets[key[2:]] = &t
					return nil
				}
			case strings.HasPrefix(key, "n "):
				var n network
				if json.Unmarshal(v, &n) == nil && now.Sub(n.Last) <= g.maxAge {
					g.nets[key[2:]] = &n
					return nil
				}
			}
			stale = append(stale, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return fmt.Errorf("reading the greylist state: %w", err)
		}
		// A bucket may not change under ForEach (bbolt), hence the second pass.
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("deleting expired greylist state: %w", err)
			}
		}
		return nil
	})
}

func (g *greylister) expiredTriplet(t *triplet, now time.Time) bool {
	if t.Passed {
		return now.Sub(t.Last) > g.maxAge
	}
	return now.Sub(t.First) > g.window
}

// networkOf is the client network of a triplet: the /24 of an IPv4 address, the /64 of
// an IPv6 one, so that the pool of servers a sender retries from counts as one.
func networkOf(ip netip.Addr) string {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// normalizeSender folds the parts of an envelope sender that change from message to
// message of one sender (as Postgrey does): a BATV tag (prvs=tag=user), a
// +extension, and the digits of VERP-like and per-message local parts.
func normalizeSender(from string) string {
	from = strings.ToLower(from)
	at := strings.LastIndexByte(from, '@')
	if at < 0 {
		return from
	}
	local, domain := from[:at], from[at+1:]
	if rest, ok := strings.CutPrefix(local, "prvs="); ok {
		if _, user, ok := strings.Cut(rest, "="); ok {
			local = user
		}
	}
	local, _, _ = strings.Cut(local, "+")
	var b strings.Builder
	digits := false
	for _, r := range local {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String() + "@" + domain
}

// exemptSender reports whether from is an address or in a domain of greylist_exempt.
func (g *greylister) exemptSender(from string) bool {
	from = strings.ToLower(from)
	domain := domainOf(from)
	for _, s := range g.senders {
		switch {
		case strings.Contains(s, "@"):
			if s == from {
				return true
			}
		case domain == s || strings.HasSuffix(domain, "."+s):
			return true
		}
	}
	return false
}

// greylistSPFTimeout bounds the SPF check of an allowed sender: smtpd waits two seconds
// for the answer (greylistTimeout in smtpd).
const greylistSPFTimeout = 1500 * time.Millisecond

// allowed reports whether the administrator's allow list admits the client or the
// sender, by its rules (lists.go): an allowed client address or network always; an
// allowed MAIL FROM address or domain only when SPF passes for it, which is checked now
// (the full check with DKIM and DMARC comes with the message). A From: address is not
// known at RCPT: an allow entry that only it would match does not spare the greylisting.
// A block entry that matches wins, as at DATA.
func (g *greylister) allowed(ctx context.Context, req *spamcheck.GreylistRequest, ip net.IP) string {
	if g.lists == nil {
		return ""
	}
	lists := g.lists.read(senderIdentities(ip, req.From, nil), nil)
	if len(lists.block) > 0 {
		return ""
	}
	ms := lists.allow
	sender := false
	for _, m := range ms {
		if m.id.kind == "client" {
			return "allowed client " + m.reason("ALLOWLIST")
		}
		sender = true
	}
	if !sender || g.spf == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, greylistSPFTimeout)
	defer cancel()
	if r := g.spf(ctx, ip, req.Helo, req.From); r != spf.Pass {
		return ""
	}
	return "allowed sender with SPF pass " + ms[0].reason("ALLOWLIST")
}

// Check decides about a triplet.
func (g *greylister) Check(ctx context.Context, req *spamcheck.GreylistRequest) spamcheck.GreylistResult {
	ip, err := netip.ParseAddr(req.ClientAddr)
	if err != nil {
		return spamcheck.GreylistResult{Pass: true, Reason: "no client address"}
	}
	for _, n := range g.exempt {
		if n.Contains(net.IP(ip.Unmap().AsSlice())) {
			return spamcheck.GreylistResult{Pass: true, Reason: "exempt client"}
		}
	}
	if req.From != "" && g.exemptSender(req.From) {
		return spamcheck.GreylistResult{Pass: true, Reason: "exempt sender"}
	}
	if why := g.allowed(ctx, req, net.IP(ip.Unmap().AsSlice())); why != "" {
		return spamcheck.GreylistResult{Pass: true, Reason: why}
	}
	netKey := networkOf(ip)
	key := netKey + " " + normalizeSender(req.From) + " " + strings.ToLower(req.Rcpt)
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.nets[netKey]; n != nil && g.autoAllow > 0 && n.Passes >= g.autoAllow {
		if now.Sub(n.Last) > time.Hour {
			n.Last = now
			g.write("n "+netKey, *n)
		}
		return spamcheck.GreylistResult{Pass: true, Reason: "network allowed"}
	}
	t := g.triplets[key]
	switch {
	case t == nil || g.expiredTriplet(t, now):
		t = &triplet{First: now, Last: now}
		g.triplets[key] = t
		g.write("t "+key, *t)
		return spamcheck.GreylistResult{Retry: seconds(g.delay), Reason: "new"}
	case !t.Passed && now.Sub(t.First) < g.delay:
		return spamcheck.GreylistResult{Retry: seconds(g.delay - now.Sub(t.First)), Reason: "early retry"}
	case !t.Passed:
		t.Passed, t.Last = true, now
		g.write("t "+key, *t)
		n := g.nets[netKey]
		if n == nil {
			n = &network{}
			g.nets[netKey] = n
		}
		n.Passes++
		n.Last = now
		g.write("n "+netKey, *n)
		return spamcheck.GreylistResult{Pass: true, Reason: "retried"}
	}
	if now.Sub(t.Last) > time.Hour {
		t.Last = now
		g.write("t "+key, *t)
	}
	return spamcheck.GreylistResult{Pass: true, Reason: "known"}
}

func seconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// write queues a change for the database; when the writer is behind, the change is
// dropped (the state in memory is right, the database catches up at the next change).
func (g *greylister) write(key string, value any) {
	select {
	case g.writes <- greylistWrite{key, value}:
	default:
		g.log.Warn("greylisting state not written: the database is behind")
	}
}

// run writes the queued changes, many per transaction, and forgets expired triplets
// every few minutes, until ctx ends.
func (g *greylister) run(ctx context.Context) {
	sweep := time.NewTicker(5 * time.Minute)
	defer sweep.Stop()
	for {
		var batch []greylistWrite
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			g.sweep()
			continue
		case w := <-g.writes:
			batch = append(batch, w)
		}
	more:
		for len(batch) < 1000 {
			select {
			case w := <-g.writes:
				batch = append(batch, w)
			default:
				break more
			}
		}
		if err := g.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(greylistBucket)
			for _, w := range batch {
				if w.value == nil {
					if err := b.Delete([]byte(w.key)); err != nil {
						return err
					}
					continue
				}
				v, err := json.Marshal(w.value)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(w.key), v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			g.log.Error("greylisting state not written", "n", len(batch), "err", err)
		}
	}
}

// sweep forgets the triplets and networks that expired.
func (g *greylister) sweep() {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, t := range g.triplets {
		if g.expiredTriplet(t, now) {
			delete(g.triplets, k)
			g.write("t "+k, nil)
		}
	}
	for k, n := range g.nets {
		if now.Sub(n.Last) > g.maxAge {
			delete(g.nets, k)
			g.write("n "+k, nil)
		}
	}
}

// serveGreylist answers smtpd's OpGreylist on private/spamd.
func (g *greylister) serveGreylist(ctx context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
	ipc.CloseFiles(files)
	req, err := spamcheck.DecodeGreylistRequest(body)
	if err != nil {
		return nil, ipc.Errorf("invalid", "%v", err)
	}
	res := g.Check(ctx, req)
	if !res.Pass {
		g.log.Info("greylisted", "client", req.ClientAddr, "from", "<"+req.From+">", "to", "<"+req.Rcpt+">", "reason", res.Reason, "retry", res.Retry)
	} else {
		g.log.Debug("greylisting passed", "client", req.ClientAddr, "from", "<"+req.From+">", "to", "<"+req.Rcpt+">", "reason", res.Reason)
	}
	return res, nil
}
