package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"postern/pkg/control"
	"postern/pkg/dnscheck"
	"postern/pkg/resolver"
)

// The admin panel's DKIM page: each domain's keys with the TXT record to publish (the
// zone-file line `mailctl dns records` prints) and whether the DNS has it, and forms
// to generate a key and to retire one. The keys are files httpd may neither read nor
// write: authd keeps them (control.DKIMList, DKIMGenerate, DKIMRemove, the operations
// of `mailctl dkim`), and writes every change into its audit log.

// dnsCheckTimeout bounds the DNS lookups of the DKIM page.
const dnsCheckTimeout = 5 * time.Second

// dkimKey is a line of the DKIM page.
type dkimKey struct {
	control.DKIMKey
	Zone string // the record as a zone-file line
	// DNS is the verdict on the published record (ok, wrong, missing), Detail what was
	// found; both empty when the DNS could not be asked.
	DNS, Detail string
}

// dkimDomain is a domain of the DKIM page.
type dkimDomain struct {
	Name string
	Keys []dkimKey
}

// dkimData fills templates/dkim.html.
type dkimData struct {
	User, CSRF, Notice, Error string
	Domains                   []dkimDomain
	Problems                  []string
}

func (s *Server) dkimPage(w http.ResponseWriter, r *http.Request, sess *session) {
	d := dkimData{User: sess.user, CSRF: sess.csrf, Notice: r.URL.Query().Get("notice"), Error: r.URL.Query().Get("error")}
	ctx := r.Context()
	var dl control.DomainListResult
	if err := s.control(ctx, "authd", control.DomainList, nil, &dl); err != nil {
		d.Problems = append(d.Problems, fmt.Sprintf("authd %s: %v", control.DomainList, err))
	}
	var kl control.DKIMListResult
	if err := s.control(ctx, "authd", control.DKIMList, control.DKIMRequest{}, &kl); err != nil {
		d.Problems = append(d.Problems, fmt.Sprintf("authd %s: %v", control.DKIMList, err))
	}
	byDomain := map[string][]control.DKIMKey{}
	for _, k := range kl.Keys {
		byDomain[k.Domain] = append(byDomain[k.Domain], k)
	}
	checker, err := s.dnsChecker()
	if err != nil {
		d.Problems = append(d.Problems, "the DNS records cannot be checked: "+err.Error())
	}
	cctx, cancel := context.WithTimeout(ctx, dnsCheckTimeout)
	defer cancel()
	for _, dom := range dl.Domains {
		dd := dkimDomain{Name: dom.Name}
		e := dnscheck.Expected{Domain: dom.Name}
		for _, k := range byDomain[dom.Name] {
			dd.Keys = append(dd.Keys, dkimKey{DKIMKey: k, Zone: dnscheck.ZoneLine(k.Name, "TXT", dnscheck.QuoteTXT(k.Record))})
			e.DKIM = append(e.DKIM, dnscheck.Record{Name: k.Name, Type: "TXT", Data: k.Record})
		}
		if checker != nil && len(e.DKIM) > 0 {
			for i, res := range checker.DKIM(cctx, e) {
				dd.Keys[i].DNS, dd.Keys[i].Detail = string(res.Status), res.Detail
			}
		}
		d.Domains = append(d.Domains, dd)
	}
	s.render(w, http.StatusOK, "dkim.html", d)
}

// dnsChecker returns the checker of the DKIM page, made on first use: it asks the
// resolvers remote uses ([remote] resolvers), what the world's verifiers see as this
// host sees it.
func (s *Server) dnsChecker() (*dnscheck.Checker, error) {
	s.dnsOnce.Do(func() {
		res, err := resolver.NewFromConfig(s.cfg.Remote.Resolvers)
		if err != nil {
			s.dnsErr = fmt.Errorf("setting up the DNS resolver: %w", err)
			return
		}
		s.dns = &dnscheck.Checker{DNS: res}
	})
	return s.dns, s.dnsErr
}
