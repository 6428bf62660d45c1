package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/dkim"
	"postern/pkg/dnscheck"
	"postern/pkg/mtasts"
)

// DKIM keys are made offline: `mailctl dkim generate` writes a new file under
// <data_dir>/dkim/<domain>/ and nothing else. That is safe without a daemon in between:
// no daemon owns that directory's list of files the way authd owns users.db; cleanup
// only reads the keys, sees a new one by the directory's modification time, and the
// file appears whole (written aside, fsynced, then linked into place) and is never
// overwritten. As root the files are given to cleanup's user, the one that signs.

func runDKIMGenerate(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	domain, err := dkim.CanonicalDomain(args[0])
	if err != nil {
		return usagef("%v", err)
	}
	alg := o.algorithm
	if alg == "" {
		alg = dkim.Ed25519
	}
	if alg != dkim.Ed25519 && alg != dkim.RSA {
		return usagef("--algorithm %q: want ed25519 or rsa", alg)
	}
	sel := o.selector
	if sel == "" {
		// The algorithm and the month: a new key later gets a new name.
		short := "ed"
		if alg == dkim.RSA {
			short = "rsa"
		}
		sel = short + time.Now().UTC().Format("200601")
	}
	if err := dkim.CheckSelector(sel); err != nil {
		return usagef("--selector: %v", err)
	}
	if known, err := a.ourDomain(cfg, domain); err == nil && !known {
		fmt.Fprintf(a.stderr, "mailctl dkim generate: warning: %s is not one of Postern's domains (mailctl domain add %s); cleanup signs only the mail of users who may send as it\n", domain, domain)
	}
	uid, gid := -1, -1
	if a.root {
		if uid, gid, err = ids(cfg.Service("cleanup").User); err != nil {
			return err
		}
	}
	k, err := dkim.Generate(dkim.Dir(cfg.DataDir), domain, sel, alg, uid, gid)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Created the %s key %s for %s in %s.\nPublish this record, then mail from %s is signed with it:\n\n", alg, sel, domain, dkim.Dir(cfg.DataDir), domain)
	return writeKeyRecord(a.stdout, k)
}

// ourDomain asks authd whether domain is one of ours; an error when it cannot tell.
func (a *app) ourDomain(cfg *config.Config, domain string) (bool, error) {
	var res control.DomainListResult
	if err := a.call(cfg, "authd", control.DomainList, nil, &res); err != nil {
		return false, err
	}
	for _, d := range res.Domains {
		if d.Name == domain {
			return true, nil
		}
	}
	return false, nil
}

func runDKIMList(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	dir := dkim.Dir(cfg.DataDir)
	domains, err := dkim.Domains(dir)
	if err != nil {
		return err
	}
	if len(args) == 1 {
		d, err := dkim.CanonicalDomain(args[0])
		if err != nil {
			return usagef("%v", err)
		}
		domains = []string{d}
	}
	w := a.stdout
	n := 0
	for _, d := range domains {
		keys, err := dkim.Load(dir, d, false)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if n == 0 {
				fmt.Fprintf(w, "%-30s %-16s %-8s %s\n", "DOMAIN", "SELECTOR", "TYPE", "CREATED")
			}
			n++
			fmt.Fprintf(w, "%-30s %-16s %-8s %s\n", k.Domain, k.Selector, k.Algorithm, k.Created.UTC().Format("2006-01-02 15:04"))
		}
	}
	if n == 0 {
		fmt.Fprintf(a.stderr, "no DKIM keys in %s (mailctl dkim generate DOMAIN makes one)\n", dir)
	}
	return nil
}

// ttl is the time to live of the records printed.
const ttl = 3600

// zoneLine writes one resource record in zone-file syntax, names absolute.
func zoneLine(w io.Writer, name, typ, data string) {
	fmt.Fprintf(w, "%-40s %d IN %-5s %s\n", name+".", ttl, typ, data)
}

// quoteTXT renders TXT data as zone-file character-strings, split at 255 octets.
func quoteTXT(s string) string {
	parts := dkim.SplitTXT(s)
	for i, p := range parts {
		parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "( " + strings.Join(parts, "\n"+strings.Repeat(" ", 53)) + " )"
}

func writeKeyRecord(w io.Writer, k *dkim.Key) error {
	rec, err := k.Record()
	if err != nil {
		return err
	}
	zoneLine(w, k.RecordName(), "TXT", quoteTXT(rec))
	return nil
}

// publicIPs are the addresses smtpd listens on, when they are specific ones that the
// world can reach (not 0.0.0.0, loopback or private).
func publicIPs(cfg *config.Config) []net.IP {
	var out []net.IP
	if s := cfg.Service("smtpd"); s != nil {
		host, _, err := net.SplitHostPort(s.Listen["smtp"])
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsGlobalUnicast() && !ip.IsPrivate() {
			out = append(out, ip)
		}
	}
	return out
}

// dnsPlan is what the domain's DNS should hold for this instance: what dns records
// prints and dns check compares with, and the MTA-STS policy the record announces.
func dnsPlan(cfg *config.Config, domain, dmarcPolicy string) (dnscheck.Expected, string, error) {
	host := strings.TrimSuffix(strings.ToLower(cfg.Hostname), ".")
	e := dnscheck.Expected{Domain: domain, Host: host, IPs: publicIPs(cfg)}
	e.SPF = "v=spf1 mx -all"
	for _, ip := range e.IPs {
		if ip.To4() != nil {
			e.SPF = "v=spf1 ip4:" + ip.String() + " mx -all"
		} else {
			e.SPF = "v=spf1 ip6:" + ip.String() + " mx -all"
		}
	}
	keys, err := dkim.Load(dkim.Dir(cfg.DataDir), domain, false)
	if err != nil {
		return e, "", err
	}
	for _, k := range keys {
		rec, err := k.Record()
		if err != nil {
			return e, "", err
		}
		e.DKIM = append(e.DKIM, dnscheck.Record{Name: k.RecordName(), Type: "TXT", Data: rec})
	}
	e.DMARC = "v=DMARC1; p=" + dmarcPolicy + "; rua=mailto:postmaster@" + domain + "; adkim=r; aspf=r"
	// The policy httpd serves (pkg/mtasts), and its id.
	policy, id := mtasts.Published(host)
	e.MTASTS = "v=STSv1; id=" + id
	e.TLSRPT = "v=TLSRPTv1; rua=mailto:postmaster@" + domain
	// RFC 6186, RFC 8314 §5.1: submission with implicit TLS is preferred (priority 0)
	// over STARTTLS; a service not offered has "." (POP3 is imapd's, when its listeners
	// are configured).
	e.SRV = []dnscheck.SRV{
		{Service: "_submissions", Priority: 0, Port: cfg.ListenPort("smtpd", "submissions", 465), Target: host},
		{Service: "_submission", Priority: 10, Port: cfg.ListenPort("smtpd", "submission", 587), Target: host},
		{Service: "_imaps", Priority: 0, Port: cfg.ListenPort("imapd", "imaps", 993), Target: host},
		{Service: "_imap", Priority: 10, Port: cfg.ListenPort("imapd", "imap", 143), Target: host},
	}
	for _, p := range []struct {
		listener string
		prio     int
	}{{"pop3s", 0}, {"pop3", 10}} {
		if s := cfg.Service("imapd"); s != nil && s.Enable && s.Listen[p.listener] != "" {
			e.SRV = append(e.SRV, dnscheck.SRV{Service: "_" + p.listener, Priority: p.prio, Port: cfg.ListenPort("imapd", p.listener, 0), Target: host})
		} else {
			e.SRV = append(e.SRV, dnscheck.SRV{Service: "_" + p.listener, Target: "."})
		}
	}
	return e, policy, nil
}

func dmarcOption(o *options) (string, error) {
	dmarc := o.dmarc
	if dmarc == "" {
		dmarc = "quarantine"
	}
	if dmarc != "none" && dmarc != "quarantine" && dmarc != "reject" {
		return "", usagef("--dmarc %q: want none, quarantine or reject", dmarc)
	}
	return dmarc, nil
}

func runDNSRecords(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	domain, err := dkim.CanonicalDomain(args[0])
	if err != nil {
		return usagef("%v", err)
	}
	// Records that send a domain's mail here are wrong for a domain Postern would refuse
	// mail for. When authd cannot be asked (Postern not running), the records are printed.
	if known, err := a.ourDomain(cfg, domain); err == nil && !known {
		return fmt.Errorf("%s is not one of Postern's domains: add it first (mailctl domain add %s)", domain, domain)
	}
	dmarc, err := dmarcOption(o)
	if err != nil {
		return err
	}
	e, policy, err := dnsPlan(cfg, domain, dmarc)
	if err != nil {
		return err
	}
	host := e.Host
	w := a.stdout
	fmt.Fprintf(w, "; DNS records for %s, served by %s (mailctl dns records %s)\n", domain, host, domain)

	fmt.Fprintf(w, "\n; Mail for the domain goes to this host (RFC 5321 §5.1); the host needs an A\n; (and AAAA) record, and its address a PTR record giving %s back.\n", host)
	zoneLine(w, domain, "MX", "10 "+host+".")
	for _, ip := range e.IPs {
		if ip.To4() != nil {
			zoneLine(w, host, "A", ip.String())
		} else {
			zoneLine(w, host, "AAAA", ip.String())
		}
	}

	fmt.Fprintf(w, "\n; SPF (RFC 7208): only the MX hosts send mail for the domain.\n")
	zoneLine(w, domain, "TXT", quoteTXT(e.SPF))

	fmt.Fprintf(w, "\n; DKIM (RFC 6376, RFC 8463): the public half of every key of the domain.\n")
	if len(e.DKIM) == 0 {
		fmt.Fprintf(w, "; none yet: mailctl dkim generate %s\n", domain)
	}
	for _, r := range e.DKIM {
		zoneLine(w, r.Name, r.Type, quoteTXT(r.Data))
	}

	fmt.Fprintf(w, "\n; DMARC (RFC 7489): what receivers do with mail that fails SPF and DKIM, and\n; where they send their aggregate reports.\n")
	zoneLine(w, "_dmarc."+domain, "TXT", quoteTXT(e.DMARC))

	fmt.Fprintf(w, "\n; MTA-STS (RFC 8461): senders should use TLS to %s. The policy is served at\n; https://mta-sts.%s%s, and reads:\n", host, domain, mtasts.PolicyPath)
	for _, l := range strings.Split(strings.TrimSpace(policy), "\r\n") {
		fmt.Fprintf(w, ";   %s\n", l)
	}
	zoneLine(w, "_mta-sts."+domain, "TXT", quoteTXT(e.MTASTS))
	zoneLine(w, "mta-sts."+domain, "CNAME", host+".")
	fmt.Fprintf(w, "; TLS reporting (RFC 8460): where senders report TLS failures.\n")
	zoneLine(w, "_smtp._tls."+domain, "TXT", quoteTXT(e.TLSRPT))

	fmt.Fprintf(w, "\n; Mail clients find their servers (RFC 6186, RFC 8314 §5.1): submission with\n; implicit TLS is preferred (priority 0) over STARTTLS; a service not offered has \".\".\n")
	for _, s := range e.SRV {
		if s.Target == "." {
			zoneLine(w, s.Service+"._tcp."+domain, "SRV", "0 0 0 .")
		} else {
			zoneLine(w, s.Service+"._tcp."+domain, "SRV", fmt.Sprintf("%d 1 %d %s.", s.Priority, s.Port, s.Target))
		}
	}
	fmt.Fprintf(w, "; Thunderbird's autoconfig and Outlook's autodiscover look here.\n")
	zoneLine(w, "autoconfig."+domain, "CNAME", host+".")
	zoneLine(w, "autodiscover."+domain, "CNAME", host+".")
	zoneLine(w, "_autodiscover._tcp."+domain, "SRV", fmt.Sprintf("0 1 %d %s.", cfg.ListenPort("httpd", "https", 443), host))
	return nil
}
