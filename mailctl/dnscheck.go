package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"postern/pkg/dkim"
	"postern/pkg/dnscheck"
	"postern/pkg/mtasts"
	"postern/pkg/resolver"
)

func runDNSCheck(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	domain, err := dkim.CanonicalDomain(args[0])
	if err != nil {
		return usagef("%v", err)
	}
	dmarc, err := dmarcOption(o)
	if err != nil {
		return err
	}
	e, _, err := dnsPlan(cfg, domain, dmarc)
	if err != nil {
		return err
	}
	// The resolvers remote uses: what the world's senders would see, as this host sees it.
	res, err := resolver.NewFromConfig(cfg.Remote.Resolvers)
	if err != nil {
		return fmt.Errorf("setting up the DNS resolver: %w", err)
	}
	fetch := mtasts.NewFetcher(resolver.Dialer(res, &net.Dialer{Timeout: 20 * time.Second}), nil)
	c := &dnscheck.Checker{DNS: res, FetchPolicy: fetch.Fetch}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results := c.Check(ctx, e)
	return writeDNSCheck(a, e, results)
}

// writeDNSCheck prints one line per result, with the records that fix it, and fails
// when any required record is wrong or missing.
func writeDNSCheck(a *app, e dnscheck.Expected, results []dnscheck.Result) error {
	w := a.stdout
	fmt.Fprintf(w, "DNS of %s for mail served by %s:\n\n", e.Domain, e.Host)
	failed := 0
	for _, r := range results {
		status := string(r.Status)
		if r.Status == dnscheck.Missing && r.Optional {
			status += " (optional)"
		}
		fmt.Fprintf(w, "%-18s %-10s %s: %s\n", status, r.What, r.Name, r.Detail)
		if r.Status != dnscheck.OK {
			for _, f := range r.Fix {
				data := f.Data
				if f.Type == "TXT" {
					data = quoteTXT(data)
				}
				fmt.Fprintf(w, "    fix: ")
				zoneLine(w, f.Name, f.Type, data)
			}
			if r.Advice != "" {
				fmt.Fprintf(w, "    fix: %s\n", r.Advice)
			}
		}
		if r.Failed() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of the records of %s are wrong or missing", failed, e.Domain)
	}
	fmt.Fprintf(w, "\nEvery required record of %s is in place.\n", e.Domain)
	return nil
}
