package test

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestTLSCipherSuites: on every TLS listener (SMTP STARTTLS on 25 and 587, implicit TLS
// on 465 and 993, IMAP STARTTLS on 143) a TLS 1.2 client offering only CBC suites with
// SHA-1 MACs (ECDHE-ECDSA-AES128-SHA, AES256-SHA) fails the handshake, and one offering
// the ECDHE AEAD suites gets one of them.
func TestTLSCipherSuites(t *testing.T) {
	openssl := need(t, "openssl", "openssl")
	in := NewInstance(t, "")
	addr := func(off int) string { return net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+off)) }
	listeners := []struct {
		name string
		args []string
	}{
		{"smtp", []string{"-connect", addr(25), "-starttls", "smtp"}},
		{"submission", []string{"-connect", addr(587), "-starttls", "smtp"}},
		{"submissions", []string{"-connect", addr(465)}},
		{"imap", []string{"-connect", addr(143), "-starttls", "imap"}},
		{"imaps", []string{"-connect", addr(993)}},
	}
	run := func(args []string, ciphers string) (string, error) {
		args = append([]string{"s_client", "-tls1_2", "-cipher", ciphers}, args...)
		cmd := exec.Command(openssl, args...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, l := range listeners {
		// SECLEVEL=0 so that the client's own OpenSSL does not refuse SHA-1 first.
		out, err := run(l.args, "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:AES256-SHA:@SECLEVEL=0")
		if err == nil || strings.Contains(out, "Cipher is ECDHE") || strings.Contains(out, "Cipher is AES") {
			t.Errorf("%s: a client offering only CBC/SHA-1 suites got through:\n%s", l.name, tail(out, 30))
		}
		out, err = run(l.args, "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
		if err != nil || !(strings.Contains(out, "GCM") || strings.Contains(out, "CHACHA20")) {
			t.Errorf("%s: a client offering AEAD suites failed (%v):\n%s", l.name, err, tail(out, 30))
		}
	}
}
