package test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"postern/pkg/sieve"
)

// sieveConn is a plain ManageSieve (RFC 5804) dialogue, as Thunderbird's and
// Roundcube's editors hold it.
type sieveConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	log  func() string
}

// response reads lines up to the OK, NO or BYE that ends a response.
func (c *sieveConn) response() (lines []string, last string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading from sieved: %v (so far %q)\n%s", err, lines, tail(c.log(), 30))
		}
		l = strings.TrimRight(l, "\r\n")
		for _, k := range []string{"OK", "NO", "BYE"} {
			if l == k || strings.HasPrefix(l, k+" ") {
				return lines, l
			}
		}
		lines = append(lines, l)
	}
}

func (c *sieveConn) cmd(line string) ([]string, string) {
	c.t.Helper()
	fmt.Fprintf(c.conn, "%s\r\n", line)
	return c.response()
}

// dialSieve connects to sieved's listener, waiting for sieved, and returns the
// connection with the greeting: its capability lines and its last line.
func dialSieve(t *testing.T, in *Instance) (*sieveConn, []string, string) {
	t.Helper()
	addr := in.Cfg.Service("sieved").Listen["sieve"]
	var conn net.Conn
	var err error
	in.WaitFor("sieved", 20*time.Second, func() bool {
		conn, err = net.Dial("tcp", addr)
		return err == nil
	})
	t.Cleanup(func() { conn.Close() })
	c := &sieveConn{t: t, conn: conn, r: bufio.NewReader(conn), log: in.Log}
	caps, last := c.response()
	return c, caps, last
}

// startTLS runs STARTTLS (RFC 5804 §2.2) and returns the capabilities sieved sends
// over TLS and the line that ends them.
func (c *sieveConn) startTLS(in *Instance) ([]string, string) {
	c.t.Helper()
	if _, ok := c.cmd("STARTTLS"); !strings.HasPrefix(ok, "OK") {
		c.t.Fatalf("STARTTLS: %s", ok)
	}
	tc := tls.Client(c.conn, in.tlsConfig())
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	return c.response()
}

// literal writes s as a non-synchronizing literal (RFC 5804 §4).
func literal(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// TestManageSieve uploads scripts to sieved over STARTTLS with AUTHENTICATE PLAIN: a
// broken one is refused with its line and column; the one activated files mail by a
// header rule into a folder with a flag, which IMAP shows. mailctl sieve lists and
// reads the scripts through control/sieved. The capability lists the extensions (each
// of which a script may require) and the [sieve] limits of postern.toml, which sieved
// applies; UNAUTHENTICATE logs out without closing the connection.
func TestManageSieve(t *testing.T) {
	in := NewInstance(t, "")
	in.SetConfig("sieve", "max_redirects", "2")
	in.SetConfig("sieve", "max_script_size", `"2K"`)
	in.Stop()
	in.Start()
	tg := imapTargetOf(t, in)
	c, caps, ok := dialSieve(t, in)
	if ok != `OK "Postern ManageSieve ready"` || !slices.Contains(caps, `"STARTTLS"`) || !strings.Contains(strings.Join(caps, "\n"), "fileinto") {
		t.Fatalf("greeting %q %q", caps, ok)
	}
	if caps, ok := c.startTLS(in); ok != `OK "TLS active"` || !slices.Contains(caps, `"SASL" "PLAIN"`) || slices.Contains(caps, `"STARTTLS"`) {
		t.Fatalf("capabilities after STARTTLS: %q %s", caps, ok)
	}
	if _, ok := c.cmd("LISTSCRIPTS"); !strings.HasPrefix(ok, "NO") {
		t.Fatalf("LISTSCRIPTS before login: %s", ok)
	}
	bad := base64.StdEncoding.EncodeToString([]byte("\x00demo@example.test\x00wrong"))
	if _, ok := c.cmd(`AUTHENTICATE "PLAIN" "` + bad + `"`); !strings.HasPrefix(ok, "NO") {
		t.Fatalf("AUTHENTICATE with a wrong password: %s", ok)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00demo@example.test\x00" + in.Password))
	if _, ok := c.cmd(`AUTHENTICATE "PLAIN" "` + cred + `"`); !strings.HasPrefix(ok, "OK") {
		t.Fatalf("AUTHENTICATE: %s", ok)
	}

	caps, _ = c.cmd("CAPABILITY")
	var exts []string
	for _, l := range caps {
		if v, ok := strings.CutPrefix(l, `"SIEVE" "`); ok {
			exts = strings.Fields(strings.TrimSuffix(v, `"`))
		}
	}
	if !slices.Equal(exts, sieve.Extensions) {
		t.Errorf("SIEVE capability %q, want %q", exts, sieve.Extensions)
	}
	for _, want := range []string{"variables", "body", "relational", "date", "index", "comparator-i;ascii-numeric", "imap4flags"} {
		if !slices.Contains(exts, want) {
			t.Errorf("SIEVE capability %q lacks %s", exts, want)
		}
	}
	if !slices.Contains(caps, `"MAXREDIRECTS" "2"`) || !slices.Contains(caps, `"UNAUTHENTICATE"`) {
		t.Errorf("capabilities %q, want MAXREDIRECTS 2 (postern.toml) and UNAUTHENTICATE", caps)
	}
	// Every extension announced is one a script may require.
	if _, ok := c.cmd(`CHECKSCRIPT ` + literal(`require ["`+strings.Join(exts, `", "`)+`"];`)); ok != "OK" {
		t.Errorf("CHECKSCRIPT requiring every announced extension: %s", ok)
	}
	big := "keep;\n" + strings.Repeat("# padding\n", 250)
	if _, ok := c.cmd(`PUTSCRIPT "big" ` + literal(big)); !strings.HasPrefix(ok, "NO (QUOTA/MAXSIZE)") {
		t.Errorf("PUTSCRIPT of %d octets with max_script_size 2K: %s", len(big), ok)
	}
	if _, ok := c.cmd(`HAVESPACE "big" 2049`); !strings.HasPrefix(ok, "NO (QUOTA/MAXSIZE)") {
		t.Errorf("HAVESPACE 2049: %s", ok)
	}
	// RFC 5804 §2.14.1: UNAUTHENTICATE, then a login again on the same connection.
	if _, ok := c.cmd("UNAUTHENTICATE"); ok != "OK" {
		t.Fatalf("UNAUTHENTICATE: %s", ok)
	}
	if _, ok := c.cmd("LISTSCRIPTS"); !strings.HasPrefix(ok, "NO") {
		t.Errorf("LISTSCRIPTS after UNAUTHENTICATE: %s", ok)
	}
	if _, ok := c.cmd("UNAUTHENTICATE"); !strings.HasPrefix(ok, "NO") {
		t.Errorf("UNAUTHENTICATE when not logged in: %s", ok)
	}
	if _, ok := c.cmd(`AUTHENTICATE "PLAIN" "` + cred + `"`); !strings.HasPrefix(ok, "OK") {
		t.Fatalf("AUTHENTICATE after UNAUTHENTICATE: %s", ok)
	}

	broken := "require \"fileinto\";\nif header :contains \"subject\" \"x\" {\n  fileinto \"X\"\n}\n"
	_, ok = c.cmd(`PUTSCRIPT "broken" ` + literal(broken))
	if !strings.HasPrefix(ok, "NO") || !strings.Contains(ok, "line 4:1") {
		t.Errorf("PUTSCRIPT of a broken script: %s, want NO with line 4:1", ok)
	}
	if _, ok := c.cmd(`CHECKSCRIPT ` + literal(broken)); !strings.Contains(ok, "line 4:1") {
		t.Errorf("CHECKSCRIPT of a broken script: %s", ok)
	}
	script := "require [\"fileinto\", \"imap4flags\"];\r\nif header :contains \"subject\" \"[report]\" {\r\n  fileinto :flags \"\\\\Flagged\" \"Reports\";\r\n}\r\n"
	for _, line := range []string{
		`HAVESPACE "rules" ` + fmt.Sprint(len(script)),
		`PUTSCRIPT "rules" ` + literal(script),
		`SETACTIVE "rules"`,
		`PUTSCRIPT "spare" "keep;"`,
		`RENAMESCRIPT "spare" "other"`,
	} {
		if _, ok := c.cmd(line); !strings.HasPrefix(ok, "OK") {
			t.Fatalf("%s: %s", strings.SplitN(line, "\r\n", 2)[0], ok)
		}
	}
	if _, ok := c.cmd(`DELETESCRIPT "rules"`); !strings.HasPrefix(ok, "NO (ACTIVE)") {
		t.Errorf("DELETESCRIPT of the active script: %s", ok)
	}
	if _, ok := c.cmd(`DELETESCRIPT "other"`); !strings.HasPrefix(ok, "OK") {
		t.Errorf("DELETESCRIPT: %s", ok)
	}
	if lines, ok := c.cmd("LISTSCRIPTS"); ok != "OK" || !slices.Equal(lines, []string{`"rules" ACTIVE`}) {
		t.Errorf("LISTSCRIPTS: %q %s", lines, ok)
	}
	if lines, ok := c.cmd(`GETSCRIPT "rules"`); ok != "OK" || len(lines) < 2 || lines[0] != fmt.Sprintf("{%d}", len(script)) {
		t.Errorf("GETSCRIPT: %q %s", lines, ok)
	}
	if _, ok := c.cmd(`NOOP "t1"`); ok != `OK (TAG "t1") "Done"` {
		t.Errorf("NOOP: %s", ok)
	}
	c.cmd("LOGOUT")

	in.sendMail(t, "alice@other.test", "demo@example.test", testMessage("[Report] weekly", "figures\r\n"))
	in.WaitFor("the report filed by the uploaded script", 10*time.Second, func() bool {
		n, _ := filepath.Glob(filepath.Join(in.Maildir("demo@example.test"), ".Reports", "*", "*"))
		return len(n) == 1
	})
	ic := tg.login(t)
	defer ic.Close()
	if sel, err := ic.Select("Reports", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("SELECT Reports: %v, %v", sel, err)
	}
	msgs, err := ic.Fetch(imap.SeqSet{{Start: 1, Stop: 1}}, &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagFlagged) {
		t.Errorf("FETCH FLAGS in Reports: %v, %v; want \\Flagged", msgs, err)
	}

	if out := in.Mailctl("", "sieve", "list", "demo@example.test"); out != "rules\tactive\n" {
		t.Errorf("mailctl sieve list: %q", out)
	}
	if out := in.Mailctl("", "sieve", "get", "demo@example.test", "rules"); out != script {
		t.Errorf("mailctl sieve get: %q", out)
	}
	if out, err := in.MailctlErr(broken, "sieve", "put", "demo@example.test", "b"); err == nil || !strings.Contains(out, "line 4:1") {
		t.Errorf("mailctl sieve put of a broken script: %v %q", err, out)
	}
	in.Mailctl("keep;\n", "sieve", "put", "demo@example.test", "plain")
	in.Mailctl("", "sieve", "activate", "demo@example.test", "plain")
	if out := in.Mailctl("", "sieve", "list", "demo@example.test"); out != "plain\tactive\nrules\n" {
		t.Errorf("mailctl sieve list after activate: %q", out)
	}
}
