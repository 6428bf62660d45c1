package test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/pkg/acmecert/acmetest"
	"postern/pkg/resolver/resolvertest"
)

// TestCertRenewFromPebble has `mailctl cert renew` get the host's certificate from
// pebble, Let's Encrypt's test CA on loopback, whose HTTP-01 checks httpd answers on
// its http listener from what cert renew left in data_dir/acme; smtpd (port 465), imapd
// (993) and httpd (443) then serve the new certificate, with no SIGHUP and no restart.
// A second run finds it not due.
func TestCertRenewFromPebble(t *testing.T) {
	in := NewInstance(t, "")
	dns, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.Add("mail.example.test. A 127.0.0.1")
	ca := acmetest.Start(t, dns.Addr, in.PortBase+80)
	caFile := filepath.Join(in.Dir, "pebble-root.pem")
	if err := os.WriteFile(caFile, ca.RootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	pids := in.DaemonPIDs()

	out := in.Mailctl("", "cert", "renew", "--directory", ca.URL, "--ca", caFile, "--email", "postmaster@example.test")
	if !strings.Contains(out, "is self-signed") || !strings.Contains(out, "httpd answers") || !strings.Contains(out, "mail.example.test, from Pebble") {
		t.Fatalf("cert renew:\n%s", out)
	}
	for _, addr := range []string{in.SubmissionsAddr(), in.IMAPSAddr(), net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+443))} {
		in.WaitFor("the renewed certificate served on "+addr, 60*time.Second, func() bool {
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "mail.example.test", InsecureSkipVerify: true})
			if err != nil {
				return false
			}
			defer c.Close()
			leaf := c.ConnectionState().PeerCertificates[0]
			return strings.Contains(leaf.Issuer.CommonName, "Pebble")
		})
	}
	for name, pid := range pids {
		if now := in.DaemonPIDs()[name]; now != pid {
			t.Errorf("%s restarted (pid %d, now %d)", name, pid, now)
		}
	}
	if !strings.Contains(in.Log(), "TLS certificates reloaded") {
		t.Errorf("no daemon logged the reload")
	}
	if out := in.Mailctl("", "cert", "renew", "--directory", ca.URL, "--ca", caFile); !strings.Contains(out, "Not renewed: ") {
		t.Errorf("second cert renew:\n%s", out)
	}
}
