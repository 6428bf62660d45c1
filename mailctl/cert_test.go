package main

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"postern/pkg/acmecert"
	"postern/pkg/acmecert/acmetest"
	"postern/pkg/resolver/resolvertest"
)

// certLeaf reads the leaf of the PEM chain in path.
func certLeaf(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCertRenewKeepsNames has cert renew get a certificate for two names from pebble
// (Let's Encrypt's test CA, on loopback), answering HTTP-01 itself on --http: the names
// are kept in acme-names beside the TLS key, and a later run without names (the
// timer's) renews the certificate for both, not for the hostname alone. A run whose
// names the CA cannot check keeps nothing; names given again replace the kept ones.
func TestCertRenewKeepsNames(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "postern.toml")
	ta := newTestApp(t, "")
	if code := ta.run("-c", conf, "init", "--dev"); code != 0 {
		t.Fatalf("init: %d %s", code, ta.err)
	}
	certFile := filepath.Join(dir, "tls", "cert.pem")
	namesFile := filepath.Join(dir, "tls", "acme-names")

	dns, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.Add("mail.example.test. A 127.0.0.1", "imap.example.test. A 127.0.0.1", "away.example.test. A 127.0.0.9")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ca := acmetest.Start(t, dns.Addr, port)
	caFile := filepath.Join(dir, "pebble-root.pem")
	if err := os.WriteFile(caFile, ca.RootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	renew := func(args ...string) int {
		t.Helper()
		return ta.run(append([]string{"-c", conf, "cert", "renew", "--directory", ca.URL, "--ca", caFile,
			"--http", "127.0.0.1:" + strconv.Itoa(port)}, args...)...)
	}
	kept := func() []string {
		t.Helper()
		names, err := acmecert.ReadNames(namesFile)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}

	// Without names and with none kept: the hostname, and nothing is kept.
	if code := renew(); code != 0 {
		t.Fatalf("cert renew: exit %d\n%s%s", code, ta.out, ta.err)
	}
	if got := certLeaf(t, certFile).DNSNames; !slices.Equal(got, []string{"mail.example.test"}) {
		t.Errorf("cert renew without names: certificate for %v, want the hostname", got)
	}
	if _, err := os.Stat(namesFile); err == nil {
		t.Errorf("a run without names wrote %s", namesFile)
	}

	// The first run with names gets them, and keeps them (lower case, no trailing dot).
	if code := renew("mail.example.test", "IMAP.example.test."); code != 0 {
		t.Fatalf("cert renew NAME...: exit %d\n%s%s", code, ta.out, ta.err)
	}
	first := certLeaf(t, certFile)
	if !slices.Equal(first.DNSNames, []string{"mail.example.test", "imap.example.test"}) {
		t.Errorf("certificate for %v", first.DNSNames)
	}
	if got := kept(); !slices.Equal(got, []string{"mail.example.test", "imap.example.test"}) {
		t.Errorf("kept names %v", got)
	}
	if !strings.Contains(ta.out.String(), "Kept the names in "+namesFile) {
		t.Errorf("cert renew does not say where it kept the names:\n%s", ta.out)
	}
	if fi, err := os.Stat(namesFile); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s: %v %v", namesFile, fi, err)
	}

	// The timer's run, with no names, when the certificate is due: a new one, for both.
	if code := renew("--renew-before", "100"); code != 0 {
		t.Fatalf("cert renew (timer): exit %d\n%s%s", code, ta.out, ta.err)
	}
	if !strings.Contains(ta.out.String(), "Names kept in "+namesFile+": mail.example.test, imap.example.test.") {
		t.Errorf("cert renew does not say which names it took:\n%s", ta.out)
	}
	renewed := certLeaf(t, certFile)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the certificate was not renewed")
	}
	for _, n := range []string{"mail.example.test", "imap.example.test"} {
		if err := renewed.VerifyHostname(n); err != nil {
			t.Errorf("the renewal without names dropped a kept name: %v", err)
		}
	}
	// Not due: nothing happens, and the kept names stay.
	if code := renew(); code != 0 || !strings.Contains(ta.out.String(), "Not renewed: ") {
		t.Errorf("cert renew, not due: exit %d\n%s%s", code, ta.out, ta.err)
	}

	// A name the CA cannot reach: an error, the files and the kept names as they were.
	if code := renew("mail.example.test", "away.example.test"); code != 1 || !strings.Contains(ta.err.String(), "away.example.test") {
		t.Errorf("unreachable name: exit %d\n%s", code, ta.err)
	}
	if got := kept(); !slices.Equal(got, []string{"mail.example.test", "imap.example.test"}) {
		t.Errorf("a failed run changed the kept names to %v", got)
	}
	if certLeaf(t, certFile).SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Error("a failed run replaced the certificate")
	}
	// A name that is no host name is a usage error, and keeps nothing either.
	if code := renew("192.0.2.1"); code != 2 {
		t.Errorf("cert renew 192.0.2.1: exit %d, want 2", code)
	}

	// Names given again replace the kept ones, even when the certificate is not due
	// (it covers them); the next renewal is for those alone.
	if code := renew("mail.example.test"); code != 0 || !strings.Contains(ta.out.String(), "Not renewed: ") {
		t.Fatalf("cert renew with fewer names: exit %d\n%s%s", code, ta.out, ta.err)
	}
	if got := kept(); !slices.Equal(got, []string{"mail.example.test"}) {
		t.Errorf("kept names %v after naming one", got)
	}
	if code := renew("--force"); code != 0 {
		t.Fatalf("cert renew --force: exit %d\n%s%s", code, ta.out, ta.err)
	}
	if got := certLeaf(t, certFile).DNSNames; !slices.Equal(got, []string{"mail.example.test"}) {
		t.Errorf("renewed for %v, want the names kept last", got)
	}
}
