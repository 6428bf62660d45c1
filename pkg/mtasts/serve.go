package mtasts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// The receiving side: the policy Postern publishes for its domains, and its server.

// PolicyPath is where a policy is served on the policy host mta-sts.<domain> (RFC 8461
// §3.2).
const PolicyPath = "/.well-known/mta-sts.txt"

// publishedMaxAge is the max_age of the published policy: one week, in seconds.
const publishedMaxAge = "604800"

// Published returns the policy this host publishes for each of its domains, in the mode
// "testing" (senders report failures but still deliver) with mx its own host name, and
// the id of the TXT record _mta-sts.<domain> that announces it. The id changes when the
// policy does (RFC 8461 §3.1). The policy's lines end in CRLF (§3.2); the id is computed
// over the policy with LF line ends, as mailctl dns records always has.
func Published(mx string) (policy, id string) {
	mx = strings.TrimSuffix(strings.ToLower(mx), ".")
	lf := "version: STSv1\nmode: " + Testing + "\nmx: " + mx + "\nmax_age: " + publishedMaxAge + "\n"
	sum := sha256.Sum256([]byte(lf))
	return strings.ReplaceAll(lf, "\n", "\r\n"), hex.EncodeToString(sum[:8])
}

// Handler serves the Published policy of mx at PolicyPath to requests for the host
// mta-sts.<domain>, when known says the domain is one of this host's; anything else is
// 404. It is an http.Handler for httpd to mount.
type Handler struct {
	// MX is this host's name, the MX of every domain.
	MX string
	// Known tells whether domain is one of this host's mail domains.
	Known func(ctx context.Context, domain string) (bool, error)
	// Log records failures of Known; nil means slog.Default().
	Log *slog.Logger
}

// ServeHTTP answers GET and HEAD of PolicyPath on a policy host.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != PolicyPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	domain, ok := strings.CutPrefix(RequestHost(r), "mta-sts.")
	if !ok || domain == "" {
		http.NotFound(w, r)
		return
	}
	known, err := h.Known(r.Context(), domain)
	if err != nil {
		log := h.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("cannot tell whether a domain is ours, for its MTA-STS policy", "domain", domain, "err", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	if !known {
		http.NotFound(w, r)
		return
	}
	policy, _ := Published(h.MX)
	// RFC 8461 §3.2: the policy is served as text/plain, with a 200 (§3.3: senders
	// follow no redirect).
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte(policy))
	}
}

// RequestHost is the host name a request is for, lower case, without port and final
// dot.
func RequestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
