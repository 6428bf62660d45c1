package test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// MetricsURL is metricsd's endpoint, where init --dev puts it: base+9154, /metrics.
func (in *Instance) MetricsURL() string {
	return "http://" + net.JoinHostPort(in.IP, strconv.Itoa(in.PortBase+9154)) + "/metrics"
}

// scrape fetches the metrics as Prometheus does and returns each sample by its series,
// as written: `name{label="value",...}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scraping %s: %s, Content-Type %q\n%s", url, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsCountTheMailPath sends mail through the real daemons and checks that the
// counters metricsd serves moved: received, delivered (with its latency), a rejected
// recipient by its code, connections, a failed login over SMTP AUTH, IMAP, POP3,
// ManageSieve and the webmail's form (each by its service), queue sizes, and the restart
// of a daemon killed with SIGKILL, whose counts survive it.
func TestMetricsCountTheMailPath(t *testing.T) {
	in := NewInstance(t, "")
	if !strings.Contains(in.Log(), `listener=metrics`) {
		t.Fatalf("metricsd did not log its listener\n%s", tail(in.Log(), 40))
	}

	in.sendMail(t, "someone@other.test", "demo@example.test", testMessage("metrics one", "body"))
	in.WaitMessages("demo@example.test", 1, 20*time.Second)

	c, r := dialSMTP(t, in.SMTPAddr())
	command(t, c, r, "EHLO client.test")
	command(t, c, r, "MAIL FROM:<x@other.test>")
	if got := command(t, c, r, "RCPT TO:<nobody@example.test>"); !strings.HasPrefix(got, "550 5.1.1") {
		t.Fatalf("RCPT to an unknown user: %q", got)
	}
	command(t, c, r, "QUIT")
	c.Close()

	// One failed login by each service that takes a password: four from this client for
	// demo (under authd's account_client_failures, so none is throttled, which would not
	// count), and SMTP AUTH for another name.
	sub, _ := in.dialRaw(t, in.SubmissionsAddr(), true)
	sub.expect(plainAuth("nobody@example.test", "not-the-password"), "535 5.7.8")
	raw := imapTargetOf(t, in).rawDial(t, true)
	raw.Expect("NO", `LOGIN "demo@example.test" "not-the-password"`)
	pop := dialPOP3(t, in)
	pop.ok("USER demo@example.test")
	if l := pop.cmd("PASS not-the-password"); !strings.HasPrefix(l, "-ERR [AUTH]") {
		t.Fatalf("POP3 PASS with a wrong password: %q", l)
	}
	sv, _, _ := dialSieve(t, in)
	sv.startTLS(in)
	bad := base64.StdEncoding.EncodeToString([]byte("\x00demo@example.test\x00not-the-password"))
	if _, ok := sv.cmd(`AUTHENTICATE "PLAIN" "` + bad + `"`); !strings.HasPrefix(ok, "NO") {
		t.Fatalf("ManageSieve AUTHENTICATE with a wrong password: %s", ok)
	}
	if code := in.newWebClient(t).login("demo@example.test", "not-the-password"); code != http.StatusUnauthorized {
		t.Fatalf("web login with a wrong password: %d", code)
	}

	wait := func(what string, want map[string]func(float64) bool) map[string]float64 {
		t.Helper()
		var got map[string]float64
		var missing []string
		deadline := time.Now().Add(30 * time.Second)
		for {
			got = scrape(t, in.MetricsURL())
			missing = missing[:0]
			for series, ok := range want {
				if v, found := got[series]; !found || !ok(v) {
					missing = append(missing, fmt.Sprintf("%s = %v (found %v)", series, v, found))
				}
			}
			if len(missing) == 0 {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: after 30s, these series are not as expected:\n  %s", what, strings.Join(missing, "\n  "))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	is := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	wait("after one message", map[string]func(float64) bool{
		`postern_messages_received_total{origin="smtp"}`:                        is(1),
		`postern_messages_delivered_total{transport="local"}`:                   is(1),
		`postern_delivery_duration_seconds_count{transport="local"}`:            is(1),
		`postern_delivery_duration_seconds_bucket{transport="local",le="+Inf"}`: is(1),
		`postern_smtp_rejected_total{code="5.1.1",command="RCPT"}`:              is(1),
		`postern_connections_total{daemon="smtpd",listener="smtp"}`:             atLeast(2),
		`postern_connections_total{daemon="imapd",listener="imap"}`:             atLeast(1),
		`postern_auth_failures_total{daemon="smtpd",service="smtp"}`:            is(1),
		`postern_auth_failures_total{daemon="imapd",service="imap"}`:            is(1),
		`postern_auth_failures_total{daemon="imapd",service="pop3"}`:            is(1),
		`postern_auth_failures_total{daemon="sieved",service="managesieve"}`:    is(1),
		`postern_auth_failures_total{daemon="httpd",service="web"}`:             is(1),
		`postern_queue_messages{queue="deferred"}`:                              is(0),
		`postern_daemon_up{daemon="qmgr"}`:                                      is(1),
	})

	// qmgr dies; master restarts it; the new qmgr's first delivery adds to what the
	// old one counted.
	pid := in.DaemonPIDs()["qmgr"]
	if pid == 0 {
		t.Fatal("no qmgr")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	in.WaitFor("qmgr restarted", 20*time.Second, func() bool {
		p := in.DaemonPIDs()["qmgr"]
		return p != 0 && p != pid
	})
	in.sendMail(t, "someone@other.test", "demo@example.test", testMessage("metrics two", "body"))
	in.WaitMessages("demo@example.test", 2, 20*time.Second)
	wait("after qmgr's restart", map[string]func(float64) bool{
		`postern_daemon_restarts_total{daemon="qmgr"}`:               is(1),
		`postern_messages_received_total{origin="smtp"}`:             is(2),
		`postern_messages_delivered_total{transport="local"}`:        is(2),
		`postern_delivery_duration_seconds_count{transport="local"}`: is(2),
	})
}
