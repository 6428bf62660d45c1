package config

import (
	"net/mail"
	"strings"
	"time"
)

// DMARCReports are the keys of [spamd] that make spamd send DMARC aggregate reports
// (RFC 7489 §7.2) to the domains that ask for them with rua=. Off by default, as in
// mox and OpenDMARC: a report tells a domain's owner which hosts send in its name, and
// a site chooses to tell.
type DMARCReports struct {
	// Reports turns the reports on: spamd records each DMARC evaluation and mails the
	// reports once per ReportInterval.
	Reports bool `toml:"dmarc_reports"`
	// ReportInterval is the period a report covers; reports go out at its multiples
	// since the epoch (RFC 7489 §7.2: on hour boundaries, daily by default).
	ReportInterval Duration `toml:"dmarc_report_interval"`
	// ReportOrg is the org_name of the reports; empty means Hostname.
	ReportOrg string `toml:"dmarc_report_org"`
	// ReportFrom is the From: address of the reports (and their <email>); empty means
	// postmaster@ the domain of Hostname. Its domain should have a DKIM key, so that
	// the reports pass DMARC (RFC 7489 §7.2.1.1).
	ReportFrom string `toml:"dmarc_report_from"`
}

// Greylist are the keys of [spamd] for greylisting (RFC 6647): smtpd asks spamd about
// each (client network, sender, recipient) triplet on port 25 and answers 451 4.7.1 to
// one seen for the first time until GreylistDelay has passed.
type Greylist struct {
	Greylist bool `toml:"greylist"`
	// GreylistDelay is how long a new triplet is refused; GreylistWindow how long after
	// its first attempt a retry still passes (later, it starts over).
	GreylistDelay  Duration `toml:"greylist_delay"`
	GreylistWindow Duration `toml:"greylist_window"`
	// GreylistAutoAllow lets every message of a client network through once that many
	// of its triplets have passed; 0 never does.
	GreylistAutoAllow int `toml:"greylist_auto_allow"`
	// GreylistMaxAge is how long a passed triplet, or an allowed network, is
	// remembered after it was last seen.
	GreylistMaxAge Duration `toml:"greylist_max_age"`
	// GreylistExempt are the clients and senders never greylisted: IP addresses and
	// CIDRs of clients, and sender addresses or domains (a domain covers its
	// subdomains).
	GreylistExempt []string `toml:"greylist_exempt"`
}

func (c *Config) validateReports(bad func(key, format string, args ...any) error) error {
	r := &c.Spamd.DMARCReports
	if r.ReportInterval.D() < time.Minute {
		return bad("spamd.dmarc_report_interval", "must be at least 1m")
	}
	if r.ReportFrom != "" {
		a, err := mail.ParseAddress(r.ReportFrom)
		if err != nil || a.Name != "" || !strings.Contains(a.Address, "@") {
			return bad("spamd.dmarc_report_from", "must be an address like dmarc@example.org, not %q", r.ReportFrom)
		}
	}
	if strings.ContainsAny(r.ReportOrg, "\r\n") {
		return bad("spamd.dmarc_report_org", "must be one line")
	}
	return nil
}

func (c *Config) validateGreylist(bad func(key, format string, args ...any) error) error {
	g := &c.Spamd.Greylist
	if g.GreylistDelay.D() < time.Second {
		return bad("spamd.greylist_delay", "must be at least 1s")
	}
	if g.GreylistWindow.D() <= g.GreylistDelay.D() {
		return bad("spamd.greylist_window", "must be longer than spamd.greylist_delay")
	}
	if g.GreylistMaxAge.D() < g.GreylistWindow.D() {
		return bad("spamd.greylist_max_age", "must not be shorter than spamd.greylist_window")
	}
	if g.GreylistAutoAllow < 0 {
		return bad("spamd.greylist_auto_allow", "must not be negative")
	}
	if len(g.GreylistExempt) == 0 {
		g.GreylistExempt = nil
	}
	for _, e := range g.GreylistExempt {
		if _, err := ParseNet(e); err == nil {
			continue
		}
		if e == "" || strings.ContainsAny(e, " \t\r\n<>") || strings.HasSuffix(e, "@") {
			return bad("spamd.greylist_exempt", "%q is neither an IP address, a CIDR, an address nor a domain", e)
		}
	}
	return nil
}

// MyDomain is the domain of Hostname, derived the way Postfix derives $mydomain from
// $myhostname: without its first label, unless that would leave fewer than two labels.
func (c *Config) MyDomain() string {
	host := strings.ToLower(strings.TrimSuffix(c.Hostname, "."))
	if _, rest, ok := strings.Cut(host, "."); ok && strings.Contains(rest, ".") {
		return rest
	}
	return host
}

// DMARCReportFrom is the From: address of DMARC aggregate reports: [spamd]
// dmarc_report_from, else postmaster@MyDomain. spamd writes it and cleanup accepts no
// other from spamd.
func (c *Config) DMARCReportFrom() string {
	if c.Spamd.ReportFrom != "" {
		return c.Spamd.ReportFrom
	}
	return "postmaster@" + c.MyDomain()
}

// DMARCReportOrg is the org_name of DMARC aggregate reports.
func (c *Config) DMARCReportOrg() string {
	if c.Spamd.ReportOrg != "" {
		return c.Spamd.ReportOrg
	}
	return c.Hostname
}
