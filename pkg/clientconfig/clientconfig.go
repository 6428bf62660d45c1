// Package clientconfig tells mail clients how to reach this host, so that a user types
// an address and a password and nothing else: Thunderbird's autoconfig file, Microsoft's
// Autodiscover in its plain-XML ("POX") form that Outlook and many mobile clients use, and
// an Apple configuration profile (.mobileconfig) of one account for iOS and macOS Mail.
// Handler serves the first two for httpd to mount; MobileConfig makes the profile the
// account page offers. The host name and the ports come from the configuration
// (FromConfig), the same ones mailctl dns records publishes in SRV records; implicit TLS
// (993, 465) is offered first, as RFC 8314 §5.1 recommends, then STARTTLS (143, 587).
package clientconfig

import (
	"context"
	"strings"

	"postern/pkg/config"
	"postern/pkg/smtp"
)

// Settings are the servers a client is given.
type Settings struct {
	// Hostname is the name of this host, the one its certificate is for.
	Hostname string
	// The ports of IMAP over implicit TLS and with STARTTLS, and of submission over
	// implicit TLS and with STARTTLS; 0 for a listener that is not configured.
	IMAPS, IMAP, Submissions, Submission int
}

// FromConfig returns the settings of a configuration: its hostname and the ports imapd
// and smtpd listen on.
func FromConfig(cfg *config.Config) Settings {
	return Settings{
		Hostname:    strings.TrimSuffix(strings.ToLower(cfg.Hostname), "."),
		IMAPS:       cfg.ListenPort("imapd", "imaps", 0),
		IMAP:        cfg.ListenPort("imapd", "imap", 0),
		Submissions: cfg.ListenPort("smtpd", "submissions", 0),
		Submission:  cfg.ListenPort("smtpd", "submission", 0),
	}
}

// server is one way to reach a service: a port, and whether TLS is implicit (else
// STARTTLS).
type server struct {
	port     int
	implicit bool
}

// imap lists the IMAP servers, implicit TLS first.
func (s Settings) imap() []server { return servers(s.IMAPS, s.IMAP) }

// smtp lists the submission servers, implicit TLS first.
func (s Settings) smtp() []server { return servers(s.Submissions, s.Submission) }

func servers(implicit, starttls int) []server {
	var out []server
	if implicit > 0 {
		out = append(out, server{implicit, true})
	}
	if starttls > 0 {
		out = append(out, server{starttls, false})
	}
	return out
}

// Known tells whether domain is one of this host's mail domains
// (auth.Client.LocalDomain asks authd).
type Known func(ctx context.Context, domain string) (bool, error)

// maxAddress bounds an address taken from a request.
const maxAddress = 320

// splitAddress checks that addr looks like local@domain and returns it trimmed and its
// domain in lower case. It checks no more than a client's settings need: authd decides
// whether the domain is ours.
func splitAddress(addr string) (string, string, bool) {
	addr = strings.TrimSpace(addr)
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || len(addr) > maxAddress {
		return "", "", false
	}
	for _, c := range addr {
		if c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' {
			return "", "", false
		}
	}
	domain := strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	if !validDomain(domain) {
		return "", "", false
	}
	return addr, domain, true
}

// validDomain checks the syntax of a domain name with smtp.ParseDomain (RFC 5321
// §4.1.2, U-labels allowed), refusing address literals: autoconfiguration is per domain.
func validDomain(d string) bool {
	_, err := smtp.ParseDomain(d, true)
	return err == nil && !strings.HasPrefix(d, "[")
}
