// Package metrics counts what Postern's daemons do and brings the figures to one place.
//
// Each daemon keeps its counters, gauges and histograms in memory (Inc, Add, Set,
// Observe on the process's Default set) and a reporter (Report) sends a snapshot of them
// over <spool>/private/metrics to metricsd, one way, whenever they changed. metricsd
// merges the snapshots in a Store, keeping counters monotonic across a daemon's restarts,
// and serves them in the Prometheus text exposition format (Write) on the listener that
// [services.metricsd] names. Every metric Postern has is listed in Defs, in this file:
// the daemons, the store and the exposition agree on names, types and buckets through it.
package metrics

// Type is a metric's kind in the Prometheus data model.
type Type string

// The kinds of metric.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Def describes one metric.
type Def struct {
	Name string
	Type Type
	Help string
	// Buckets are the upper bounds of a histogram's buckets, ascending (+Inf implied).
	Buckets []float64
}

// The metric names.
const (
	// Received counts messages written into the queue by cleanup; label origin is
	// "smtp" (from port 25), "submission" (an authenticated user) or "local" (sendmail,
	// bounces).
	Received = "postern_messages_received_total"
	// Delivered, Deferred and Bounced count delivery attempts per recipient by their
	// outcome; label transport is "local" or "remote".
	Delivered = "postern_messages_delivered_total"
	Deferred  = "postern_messages_deferred_total"
	Bounced   = "postern_messages_bounced_total"
	// Rejected counts smtpd's negative replies (4xx, 5xx) to a command; labels command
	// (MAIL, RCPT, DATA ...) and code, the enhanced status code (RFC 3463), which
	// classifies the reason: 5.1.1 unknown user, 5.7.1 policy, 4.7.0 throttled ...
	Rejected = "postern_smtp_rejected_total"
	// Junk counts messages local delivered into a Junk folder by spamd's verdict.
	Junk = "postern_messages_junk_total"
	// Queue is the number of messages per queue directory (label queue).
	Queue = "postern_queue_messages"
	// Connections counts accepted connections per daemon and listener; Sessions is the
	// number open now.
	Connections = "postern_connections_total"
	Sessions    = "postern_sessions"
	// AuthFailures counts failed logins (credentials refused, not logins throttled or
	// left unanswered) by daemon and service: smtpd "smtp" (AUTH), imapd "imap"
	// (LOGIN, AUTHENTICATE) and "pop3" (PASS, AUTH), sieved "managesieve"
	// (AUTHENTICATE), httpd "web" (the login form).
	AuthFailures = "postern_auth_failures_total"
	// DeliveryDuration is the time from arrival in the queue to a successful delivery,
	// per transport.
	DeliveryDuration = "postern_delivery_duration_seconds"
	// Restarts counts the times master restarted a daemon after it died; Up is 1 for
	// a daemon that runs, 0 for one that does not.
	Restarts = "postern_daemon_restarts_total"
	Up       = "postern_daemon_up"
)

// Defs lists every metric.
var Defs = []Def{
	{Name: Received, Type: Counter, Help: "Messages written into the queue, by origin."},
	{Name: Delivered, Type: Counter, Help: "Recipients delivered, by transport."},
	{Name: Deferred, Type: Counter, Help: "Delivery attempts deferred (temporary failures), by transport."},
	{Name: Bounced, Type: Counter, Help: "Recipients failed for good (bounced), by transport."},
	{Name: Rejected, Type: Counter, Help: "Negative SMTP replies, by command and enhanced status code (the reason)."},
	{Name: Junk, Type: Counter, Help: "Messages delivered into a Junk folder."},
	{Name: Queue, Type: Gauge, Help: "Messages in each queue directory."},
	{Name: Connections, Type: Counter, Help: "Connections accepted, by daemon and listener."},
	{Name: Sessions, Type: Gauge, Help: "Sessions open now, by daemon."},
	{Name: AuthFailures, Type: Counter, Help: "Failed logins, by daemon and service (smtp, imap, pop3, managesieve, web)."},
	{Name: DeliveryDuration, Type: Histogram, Help: "Seconds from arrival to successful delivery, by transport.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400}},
	{Name: Restarts, Type: Counter, Help: "Restarts of a daemon by master after it died."},
	{Name: Up, Type: Gauge, Help: "1 when master runs the daemon, else 0."},
}

// Lookup returns the definition of the named metric.
func Lookup(name string) (Def, bool) {
	for _, d := range Defs {
		if d.Name == name {
			return d, true
		}
	}
	return Def{}, false
}
