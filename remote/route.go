package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/net/idna"

	"postern/pkg/mtasts"

	"postern/pkg/delivery"
	"postern/pkg/resolver"
)

// target is one server to try: the MX host's name and an address of it.
type target struct {
	host string
	addr string // ip:port
	// dane is the host's DANE policy (RFC 7672), nil when there is none.
	dane *danePolicy
	// sts is the mode of the domain's MTA-STS policy (RFC 8461) when it applies to this
	// host: mtasts.Enforce or mtasts.Testing; "" for none. DANE, when the host has a
	// policy, takes its place.
	sts string
	// domain is the next-hop domain, for messages.
	domain string
}

// policyKey names the TLS policy a connection to the target was checked by; a cached
// connection serves a later message only under the same policy.
func (t target) policyKey() string {
	switch {
	case t.dane != nil:
		var b strings.Builder
		b.WriteString("dane")
		for _, r := range t.dane.records {
			b.WriteString(" " + r.String())
		}
		return b.String()
	case t.sts != "":
		return "mta-sts " + t.sts
	}
	return ""
}

// errSTS marks a server that does not meet the MTA-STS policy of its domain.
var errSTS = errors.New("MTA-STS")

// requirement returns words naming the target's TLS policy and the error that marks a
// failure to meet it, or a nil error when TLS is opportunistic. The target must do TLS
// when the error is not nil: DANE, or MTA-STS in enforce mode.
func (t target) requirement() (who string, sentinel error) {
	switch {
	case t.dane != nil:
		return "the TLSA records of " + t.host, errDANE
	case t.sts == mtasts.Enforce:
		return "the MTA-STS policy of " + t.domain, errSTS
	}
	return "", nil
}

// routeError is a routing failure with the result every recipient of the domain gets.
type routeError struct{ res delivery.Result }

func (e *routeError) Error() string { return e.res.Reason }

// maxTargets bounds the addresses tried for one domain in one attempt (Postfix's
// smtp_mx_address_limit is 5); RFC 5321 §5.1 asks for at least two.
const maxTargets = 10

// route finds the servers that take mail for domain, in the order to try them
// (RFC 5321 §5.1): the MX records by preference, in random order among equal
// preferences, each host's IPv4 then IPv6 addresses; without MX records the domain's
// own addresses (the implicit MX); an address literal ("[192.0.2.1]") as it is. It logs
// on log, which names the message and the domain.
func (a *Agent) route(ctx context.Context, domain string, log *slog.Logger) ([]target, error) {
	port := strconv.Itoa(a.Port)
	if strings.HasPrefix(domain, "[") && strings.HasSuffix(domain, "]") {
		lit := strings.TrimSuffix(strings.TrimPrefix(domain, "["), "]")
		if v6, ok := cutPrefixFold(lit, "IPv6:"); ok {
			lit = v6
		}
		ip, err := netip.ParseAddr(lit)
		if err != nil {
			return nil, &routeError{fail(delivery.Bounced, "5.1.2", "bad address literal "+domain)}
		}
		return []target{{host: domain, addr: net.JoinHostPort(ip.String(), port)}}, nil
	}
	name, err := idna.Lookup.ToASCII(domain)
	if err != nil {
		// RFC 3463 X.1.2: bad destination system address.
		return nil, &routeError{fail(delivery.Bounced, "5.1.2", fmt.Sprintf("the domain %s is not a valid domain name", domain))}
	}
	mxs, secure, err := a.Resolver.LookupMXSecure(ctx, name)
	switch {
	case resolver.IsNotFound(err):
		return nil, &routeError{fail(delivery.Bounced, "5.1.2", fmt.Sprintf("the domain %s does not exist (DNS: no such domain)", domain))}
	case err != nil:
		// RFC 3463 X.4.3: directory server failure; RFC 5321 §5.1: try again later.
		return nil, &routeError{fail(delivery.Deferred, "4.4.3", fmt.Sprintf("cannot find the mail servers of %s: %v", domain, err))}
	}
	// RFC 7505: a single MX of preference 0 with the root as its exchange says the
	// domain takes no mail. Bounce at once, with X.1.10 ("recipient address has null
	// MX"), the enhanced status code RFC 7505 registers.
	if len(mxs) == 1 && mxs[0].Host == "" {
		return nil, &routeError{fail(delivery.Bounced, "5.1.10", fmt.Sprintf("the domain %s does not accept mail (null MX, RFC 7505)", domain))}
	}
	if len(mxs) == 0 {
		// RFC 5321 §5.1: no MX records, so the domain itself is the implicit MX.
		mxs = []resolver.MX{{Host: name, Pref: 0}}
	}
	// Lower preference first, random among equals (RFC 5321 §5.1).
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Pref < mxs[j].Pref })

	// RFC 8461 §5.1: the domain's MTA-STS policy, fetched or cached.
	var sts *mtasts.Policy
	if a.STS != nil {
		p, err := a.STS.Get(ctx, name)
		if err != nil {
			log.Warn("MTA-STS", "err", err)
		}
		if p != nil && p.Mode != mtasts.None {
			sts = p
		}
	}

	var targets []target
	var tempErr error
	unmatched := 0
	for _, mx := range mxs {
		if mx.Host == "" {
			continue // a "." among other MX records: a broken zone; skip it
		}
		stsMode := ""
		if sts != nil {
			stsMode = sts.Mode
			if !sts.Matches(mx.Host) {
				if sts.Mode == mtasts.Enforce {
					// RFC 8461 §4.1: an MX host the policy does not name is not used.
					log.Warn("MX host skipped: not in the MTA-STS policy", "mx", mx.Host)
					unmatched++
					continue
				}
				log.Warn("MTA-STS policy in testing mode would skip this MX host", "mx", mx.Host)
				stsMode = ""
			}
		}
		ips, ipSecure, err := a.Resolver.LookupIPSecure(ctx, mx.Host)
		if err != nil {
			if resolver.IsTemporary(err) {
				tempErr = err
			}
			log.Info("MX host has no address", "mx", mx.Host, "err", err)
			continue
		}
		var policy *danePolicy
		if a.DANE && secure && ipSecure && len(ips) > 0 {
			// RFC 7672 §2.2.1, §2.2.2: TLSA records count only under validated MX
			// and address records.
			if policy, err = a.danePolicyFor(ctx, name, mx.Host); err != nil {
				tempErr = err
				log.Warn("MX host skipped", "mx", mx.Host, "err", err)
				continue
			}
		}
		for _, ip := range ips {
			if len(targets) < maxTargets {
				targets = append(targets, target{host: mx.Host, addr: net.JoinHostPort(ip.String(), port), dane: policy, sts: stsMode, domain: domain})
			}
		}
	}
	if len(targets) == 0 {
		if unmatched > 0 && tempErr == nil {
			// RFC 8461 §5.1: no MX host is allowed; the mail waits (RFC 3463 X.7.5).
			return nil, &routeError{fail(delivery.Deferred, "4.7.5", fmt.Sprintf("no mail server of %s is named by its MTA-STS policy", domain))}
		}
		if tempErr != nil {
			return nil, &routeError{fail(delivery.Deferred, "4.4.3", fmt.Sprintf("cannot find the addresses of the mail servers of %s: %v", domain, tempErr))}
		}
		// RFC 3463 X.4.4: unable to route.
		return nil, &routeError{fail(delivery.Bounced, "5.4.4", fmt.Sprintf("the mail servers of %s have no addresses in the DNS", domain))}
	}
	return targets, nil
}

// fail is a result in Postern's own words, not tied to a server.
func fail(status, code, reason string) delivery.Result {
	return delivery.Result{Status: status, Code: code, Reason: reason, Relay: "none"}
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
