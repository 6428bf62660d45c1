package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// DANE for SMTP (RFC 7672): when a domain's MX records and an MX host's TLSA records
// come validated by DNSSEC, the host must speak TLS and present a certificate those
// records match; otherwise it is skipped, and the mail waits rather than go to an
// impostor or in clear text. Without validated records the connection stays
// opportunistic.

// danePolicy is what the TLSA records of one MX host require.
type danePolicy struct {
	// records are the usable TLSA records: DANE-TA(2) and DANE-EE(3) with a known
	// selector and matching type (RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are
	// unusable for SMTP).
	records []*dns.TLSA
	// names are the reference identifiers a DANE-TA chain's leaf must match: the MX
	// host's name and the next-hop domain (RFC 7672 §3.2.2).
	names []string
}

// encryptOnly is a policy whose records are all unusable: TLS is still required, but
// cannot authenticate the server (RFC 7672 §2.2).
func (p *danePolicy) encryptOnly() bool { return len(p.records) == 0 }

// errDANE marks a server that does not meet its DANE policy.
var errDANE = errors.New("DANE")

// danePolicyFor looks up the TLSA records of an MX host and returns its policy: nil
// when DANE does not apply (no validated records), an error when the lookup failed, in
// which case the host must not be used (RFC 7672 §2.2: a failed TLSA lookup is not the
// absence of records).
func (a *Agent) danePolicyFor(ctx context.Context, domain, host string) (*danePolicy, error) {
	records, secure, err := a.Resolver.LookupTLSA(ctx, host, a.Port)
	if err != nil {
		return nil, fmt.Errorf("TLSA lookup for %s failed: %w", host, err)
	}
	if !secure || len(records) == 0 {
		return nil, nil
	}
	p := &danePolicy{names: []string{host, domain}}
	for _, r := range records {
		if usableTLSA(r) {
			p.records = append(p.records, r)
		}
	}
	return p, nil
}

func usableTLSA(r *dns.TLSA) bool {
	return (r.Usage == 2 || r.Usage == 3) && r.Selector <= 1 && r.MatchingType <= 2
}

// daneVerify checks the server's certificate chain against the policy (RFC 7672 §3.1):
// DANE-EE(3) matches the server's own certificate, with no check of its names or
// dates (§3.1.1); DANE-TA(2) matches a certificate of the chain the server sent, which
// must then issue the server's certificate for one of the policy's names (§3.1.2).
func daneVerify(cs tls.ConnectionState, p *danePolicy) error {
	if p.encryptOnly() {
		return nil
	}
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("%w: no certificate", errDANE)
	}
	for _, r := range p.records {
		switch r.Usage {
		case 3:
			if tlsaMatches(r, certs[0]) {
				return nil
			}
		case 2:
			for i, ta := range certs {
				if !tlsaMatches(r, ta) {
					continue
				}
				roots := x509.NewCertPool()
				roots.AddCert(ta)
				inter := x509.NewCertPool()
				for _, c := range certs[1:i] {
					inter.AddCert(c)
				}
				for _, name := range p.names {
					if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err == nil {
						return nil
					}
				}
			}
		}
	}
	return fmt.Errorf("%w: no TLSA record matches the certificate of the server", errDANE)
}

func tlsaMatches(r *dns.TLSA, c *x509.Certificate) bool {
	h, err := dns.CertificateToDANE(r.Selector, r.MatchingType, c)
	return err == nil && strings.EqualFold(h, r.Certificate)
}
