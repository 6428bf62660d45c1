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
	"postern/pkg/ipc"
	"postern/pkg/mtasts"
)

// DKIM keys are authd's to write (see authd(8)): `mailctl dkim` asks authd over its
// control socket, as the admin panel does, so that the two never disagree and every
// change is in authd's audit log. When authd does not run (mailctl init, a stopped
// instance), or refuses because cleanup runs as another user, mailctl writes the files
// itself with the same pkg/dkim functions, which is safe: cleanup only reads the keys,
// sees a new one by the directory's modification time, and a file appears whole
// (written aside, fsynced, then linked into place) and is never overwritten. As root
// the files are given to cleanup's user, the one that signs.

// offline reports whether err says that authd is not there to ask (or will not write
// the keys), so that mailctl does the work itself.
func offline(err error) bool {
	return unreachable(err) || ipc.IsCode(err, "unavailable")
}

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
		sel = dkim.DefaultSelector(alg, time.Now())
	}
	if err := dkim.CheckSelector(sel); err != nil {
		return usagef("--selector: %v", err)
	}
	var key control.DKIMKey
	err = rawCall(cfg, "authd", control.DKIMGenerate, control.DKIMRequest{Domain: domain, Selector: sel, Algorithm: alg}, &key)
	where := "by authd"
	switch {
	case err != nil && offline(err):
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
		if key, err = control.DKIMKeyOf(k); err != nil {
			return err
		}
		where = "offline (authd does not run)"
	case err != nil:
		return a.callError(cfg, "authd", err)
	}
	fmt.Fprintf(a.stdout, "Created the %s key %s for %s in %s, %s.\nPublish this record, then mail from %s is signed with it:\n\n", alg, sel, domain, dkim.Dir(cfg.DataDir), where, domain)
	fmt.Fprintln(a.stdout, dnscheck.ZoneLine(key.Name, "TXT", dnscheck.QuoteTXT(key.Record)))
	return nil
}

func runDKIMRemove(a *app, _ *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	domain, err := dkim.CanonicalDomain(args[0])
	if err != nil {
		return usagef("%v", err)
	}
	if err := dkim.CheckSelector(args[1]); err != nil {
		return usagef("%v", err)
	}
	err = rawCall(cfg, "authd", control.DKIMRemove, control.DKIMRequest{Domain: domain, Selector: args[1]}, nil)
	switch {
	case err != nil && offline(err):
		if err := dkim.Remove(dkim.Dir(cfg.DataDir), domain, args[1]); err != nil {
			return err
		}
	case err != nil:
		return a.callError(cfg, "authd", err)
	}
	fmt.Fprintf(a.stdout, "Removed the key %s of %s: mail is no longer signed with it. Remove its record %s._domainkey.%s from the DNS once the mail signed with it has been delivered.\n", args[1], domain, args[1], domain)
	return nil
}

func runDKIMList(a *app, _ *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var domain string
	if len(args) == 1 {
		if domain, err = dkim.CanonicalDomain(args[0]); err != nil {
			return usagef("%v", err)
		}
	}
	var res control.DKIMListResult
	err = rawCall(cfg, "authd", control.DKIMList, control.DKIMRequest{Domain: domain}, &res)
	switch {
	case err != nil && offline(err):
		keys, err := dkim.LoadAll(dkim.Dir(cfg.DataDir), domain)
		if err != nil {
			return err
		}
		for _, k := range keys {
			dk, err := control.DKIMKeyOf(k)
			if err != nil {
				return err
			}
			res.Keys = append(res.Keys, dk)
		}
	case err != nil:
		return a.callError(cfg, "authd", err)
	}
	w := a.stdout
	for i, k := range res.Keys {
		if i == 0 {
			fmt.Fprintf(w, "%-30s %-16s %-8s %s\n", "DOMAIN", "SELECTOR", "TYPE", "CREATED")
		}
		fmt.Fprintf(w, "%-30s %-16s %-8s %s\n", k.Domain, k.Selector, k.Algorithm, k.Created.UTC().Format("2006-01-02 15:04"))
	}
	if len(res.Keys) == 0 {
		fmt.Fprintf(a.stderr, "no DKIM keys in %s (mailctl dkim generate DOMAIN makes one)\n", dkim.Dir(cfg.DataDir))
	}
	return nil
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

// zoneLine writes one resource record in zone-file syntax (dnscheck.ZoneLine).
func zoneLine(w io.Writer, name, typ, data string) {
	fmt.Fprintln(w, dnscheck.ZoneLine(name, typ, data))
}

// quoteTXT renders TXT data as zone-file character-strings (dnscheck.QuoteTXT).
var quoteTXT = dnscheck.QuoteTXT

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
