package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"postern/pkg/acmecert"
	"postern/pkg/daemon"
)

// runCertRenew gets a certificate for the host names from an ACME CA when the one
// [tls] names is due (or --force), answering HTTP-01 through httpd (which serves
// <data_dir>/acme on its http listener), on --http itself, or through --webroot.
// Names given are kept in acme-names beside the TLS key once the run succeeds; a run
// without names (the timer's) takes them from there, or the hostname when none are
// kept. smtpd, imapd, httpd and sieved notice the new files by themselves.
func runCertRenew(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if o.acmeHTTP != "" && o.webroot != "" {
		return usagef("--http and --webroot exclude each other")
	}
	if cfg.TLS.Cert == "" || cfg.TLS.Key == "" {
		return errors.New("[tls] cert and key name no files to write the certificate to")
	}
	namesFile := filepath.Join(filepath.Dir(cfg.TLS.Key), acmecert.NamesFileName)
	var names []string
	for _, arg := range args {
		n, err := acmecert.CheckName(arg)
		if err != nil {
			return usagef("%v", err)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	kept, err := acmecert.ReadNames(namesFile)
	if err != nil {
		return err
	}
	switch {
	case len(names) > 0:
	case len(kept) > 0:
		names = kept
		fmt.Fprintf(a.stdout, "Names kept in %s: %s.\n", namesFile, strings.Join(names, ", "))
	default:
		n, err := acmecert.CheckName(cfg.Hostname)
		if err != nil {
			return fmt.Errorf("hostname: %w; give the names to certify", err)
		}
		names = []string{n}
	}
	// keep records the names given, for the runs that give none, once this one
	// succeeded: a name the CA refused is not kept.
	keep := func() error {
		if len(args) == 0 || slices.Equal(names, kept) {
			return nil
		}
		if err := acmecert.WriteNames(namesFile, names); err != nil {
			return fmt.Errorf("keeping the names for the next renewals: %w", err)
		}
		fmt.Fprintf(a.stdout, "Kept the names in %s: cert renew without names renews them.\n", namesFile)
		return nil
	}
	m := &acmecert.Manager{
		DirectoryURL: o.directory, Email: o.email, Names: names,
		AccountKey: filepath.Join(filepath.Dir(cfg.TLS.Key), "acme-account.key"),
		CertFile:   cfg.TLS.Cert, KeyFile: cfg.TLS.Key,
		RenewBefore: time.Duration(o.renewDays) * 24 * time.Hour,
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return fmt.Errorf("reading --ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca %s holds no PEM certificate", o.caFile)
		}
		m.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: time.Minute}
	}
	due, why := m.Due(time.Now())
	if !due && !o.force {
		fmt.Fprintf(a.stdout, "Not renewed: %s.\n", why)
		return keep()
	}
	fmt.Fprintf(a.stdout, "Renewing: %s.\n", why)
	httpd := cfg.Service("httpd")
	switch {
	case o.webroot != "":
		m.Solver = acmecert.Webroot{Dir: o.webroot}
	case o.acmeHTTP == "" && httpd != nil && httpd.Enable && httpd.Listen["http"] != "":
		// httpd holds port 80 and serves the answers from <data_dir>/acme.
		m.Solver = acmecert.Webroot{Dir: acmecert.WebrootDir(cfg.DataDir)}
		fmt.Fprintf(a.stdout, "httpd answers the CA's http-01 check on %s.\n", httpd.Listen["http"])
	default:
		addr := o.acmeHTTP
		if addr == "" {
			addr = ":80"
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listening on %s for the CA's http-01 check (another web server there? use --webroot): %w", addr, err)
		}
		resp := &acmecert.Responder{}
		srv := &http.Server{Handler: resp, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
		defer srv.Close()
		m.Solver = resp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	leaf, err := m.Obtain(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Wrote %s and %s: %s, from %s, valid until %s.\nsmtpd, imapd, httpd and sieved serve it within %s, without a restart.\n",
		m.CertFile, m.KeyFile, strings.Join(leaf.DNSNames, ", "), leaf.Issuer.CommonName,
		leaf.NotAfter.UTC().Format(time.DateOnly), daemon.CertCheckInterval)
	return keep()
}
