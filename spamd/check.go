package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	msgdkim "github.com/emersion/go-msgauth/dkim"

	"postern/pkg/config"
	"postern/pkg/dmarc"
	"postern/pkg/spamcheck"
)

// Classifier is a learning filter (pkg/junk's, issue 10.4): the
// probability p, from 0 to 1, that a message to user ("" when there is no single local
// recipient) is spam, and ok false when it has no opinion yet; id is the queue ID, for the log. spamd adds classifier_spam
// times (2p-1) to the score, so that a message the classifier finds hammy lowers it.
type Classifier interface {
	SpamProbability(ctx context.Context, id, user string, msg io.ReaderAt, size int64) (p float64, ok bool, err error)
}

// LocalDomains says whether a domain is one of ours (authd knows).
type LocalDomains interface {
	IsLocal(ctx context.Context, domain string) (bool, error)
}

// Checker computes verdicts.
type Checker struct {
	Policy     config.Spamd
	AuthservID string
	DNS        netDNS
	Local      LocalDomains
	// Classifier is nil until one is configured: the other signals decide.
	Classifier Classifier
	Trusted    []*net.IPNet
	// Record receives each DMARC evaluation, for aggregate reports; nil records none.
	Record func(dmarcRecord)
	Log    *slog.Logger
	// DNSLists are the DNS block and allow lists asked about the client (dnsbl.go).
	DNSLists []dnsList
	// Lists are the administrator's and the users' block and allow lists (lists.go);
	// nil has none.
	Lists *senderLists
}

// gtube is SpamAssassin's Generic Test for Unsolicited Bulk Email: a message holding it
// is spam for certain, so that an administrator can test the set-up.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// maxHeader bounds the header section spamd parses for From:.
const maxHeader = 256 << 10

// maxSignatures bounds the DKIM signatures verified per message.
const maxSignatures = 10

// score is a verdict being built.
type score struct {
	total   float64
	reasons []string
	results []string // resinfo of Authentication-Results (RFC 8601 §2.2)
}

func (s *score) add(name string, w float64) {
	if w == 0 {
		return
	}
	s.total += w
	s.reasons = append(s.reasons, fmt.Sprintf("%s=%g", name, w))
}

// Check returns the verdict on the message msg of req.
func (c *Checker) Check(ctx context.Context, req *spamcheck.Request, msg io.ReaderAt) *spamcheck.Verdict {
	ip := net.ParseIP(req.ClientAddr)
	var s score
	v := &spamcheck.Verdict{Action: spamcheck.Accept}
	// allowed says that the administrator's allow list vouches for the sender: the
	// score decides nothing. userJunk and userInbox are the recipients whose own lists
	// block or allow the sender.
	var allowed bool
	var userJunk, userInbox []string
	var evaluated *dmarcRecord // recorded with the final disposition
	finish := func() *spamcheck.Verdict {
		defer func() {
			if evaluated != nil && c.Record != nil {
				evaluated.Disposition = v.Action
				c.Record(*evaluated)
			}
		}()
		v.Score, v.Reasons = s.total, s.reasons
		v.AuthResults = c.AuthservID + ";"
		if len(s.results) == 0 {
			v.AuthResults += " none" // RFC 8601 §2.2: no method was applied
		} else {
			v.AuthResults += "\r\n\t" + strings.Join(s.results, ";\r\n\t")
		}
		policyJunk := v.Action == spamcheck.Junk
		switch {
		case v.Action != spamcheck.Accept || allowed:
		case s.total >= c.Policy.RejectScore && len(userInbox) > 0:
			// Spam by its score, but wanted by a recipient who allowed the sender:
			// delivered, into Junk for the others.
			v.Action = spamcheck.Junk
		case s.total >= c.Policy.RejectScore:
			v.Action, v.Code, v.Text = spamcheck.Reject, "5.7.1", "Message refused as spam"
		case s.total >= c.Policy.JunkScore:
			v.Action = spamcheck.Junk
		}
		switch {
		case v.Action == spamcheck.Junk && !policyJunk:
			// A user's allow list overrides the score, never a DMARC quarantine.
			v.Inbox = userInbox
		case v.Action == spamcheck.Accept:
			v.Junk = userJunk
		}
		return v
	}
	for _, n := range c.Trusted {
		if n.Contains(ip) {
			s.reasons = append(s.reasons, "TRUSTED_RELAY")
			return finish()
		}
	}
	size := req.Size
	fromAddrs := fromAddresses(io.NewSectionReader(msg, req.Offset, min(size, maxHeader)))
	ids := senderIdentities(ip, req.From, fromAddrs)

	// The lists, read once: the administrator's and the recipients' own.
	var lists messageLists
	if c.Lists != nil {
		lists = c.Lists.read(ids, req.Recipients)
	}
	// The administrator's block list refuses the message whatever else it is.
	if m := lists.block; len(m) > 0 {
		v.Action, v.Code, v.Text = spamcheck.Reject, "5.7.1", m[0].blockedText()
		s.reasons = append(s.reasons, m[0].reason("BLOCKLIST"))
		return finish()
	}
	// The DNS lists are asked while SPF, DKIM and DMARC are checked; not about a client
	// the administrator allowed.
	var dnsListings chan []dnsListing
	if len(c.DNSLists) > 0 && !lists.allowsClient() {
		dnsListings = make(chan []dnsListing, 1)
		go func() { dnsListings <- queryDNSLists(ctx, c.DNS.R, c.DNSLists, ip) }()
	}

	// SPF of MAIL FROM (or of HELO for the null sender, RFC 7208 §2.4) and of HELO.
	sender, heloDomain := req.From, strings.TrimSuffix(req.Helo, ".")
	spfDomain, spfScope := domainOf(sender), "mfrom"
	if sender == "" {
		spfDomain, sender, spfScope = heloDomain, "postmaster@"+heloDomain, "helo"
	}
	spfRes := spf.None
	if spfDomain != "" {
		spfRes, _ = spf.CheckHostWithSender(ip, heloDomain, sender, spf.WithResolver(c.DNS), spf.WithContext(ctx))
		s.results = append(s.results, fmt.Sprintf("spf=%s smtp.mailfrom=%s", spfRes, resValue(sender)))
	}
	if req.From != "" && strings.Contains(heloDomain, ".") && net.ParseIP(strings.Trim(heloDomain, "[]")) == nil {
		// RFC 7208 §2.3: the HELO identity is checked too; a fail weighs as a
		// softfail of MAIL FROM, and only results other than none are reported.
		heloRes, _ := spf.CheckHostWithSender(ip, heloDomain, "postmaster@"+heloDomain, spf.WithResolver(c.DNS), spf.WithContext(ctx))
		if heloRes != spf.None {
			s.results = append(s.results, fmt.Sprintf("spf=%s smtp.helo=%s", heloRes, resValue(heloDomain)))
		}
		if heloRes == spf.Fail {
			s.add("SPF_HELO_FAIL", c.Policy.SPFSoftfail)
		}
	}
	switch spfRes {
	case spf.Fail:
		if c.Policy.RejectSPFFail && req.From != "" {
			// RFC 7208 §8.4: a fail may be rejected; RFC 7372 §3.2 gives it 5.7.23.
			v.Action, v.Code, v.Text = spamcheck.Reject, "5.7.23", fmt.Sprintf("SPF validation failed for %s", spfDomain)
		}
		s.add("SPF_FAIL", c.Policy.SPFFail)
	case spf.SoftFail:
		s.add("SPF_SOFTFAIL", c.Policy.SPFSoftfail)
	case spf.Pass:
		s.add("SPF_PASS", c.Policy.SPFPass)
	}

	// DKIM: every signature, up to maxSignatures (RFC 6376 §6.1).
	lookup := func(name string) ([]string, error) { return c.DNS.LookupTXT(ctx, name) }
	verifs, err := msgdkim.VerifyWithOptions(io.NewSectionReader(msg, req.Offset, size), &msgdkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: maxSignatures})
	var dkimPass []string
	var dkimResults []dmarc.DKIMAuthResult
	dkimFailed := false
	for _, vf := range verifs {
		res := "pass"
		switch {
		case vf.Err == nil:
			dkimPass = append(dkimPass, vf.Domain)
		case msgdkim.IsTempFail(vf.Err):
			res = "temperror"
		case msgdkim.IsPermFail(vf.Err) && strings.Contains(vf.Err.Error(), "no key"):
			res = "permerror"
			dkimFailed = true
		default:
			res = "fail"
			dkimFailed = true
		}
		s.results = append(s.results, fmt.Sprintf("dkim=%s header.d=%s", res, resValue(vf.Domain)))
		dkimResults = append(dkimResults, dmarc.DKIMAuthResult{Domain: resValue(vf.Domain), Result: res})
	}
	if err != nil && len(verifs) == 0 && err != msgdkim.ErrTooManySignatures {
		c.Log.Debug("DKIM verification failed", "id", req.QueueID, "err", err)
	}
	if len(dkimPass) > 0 {
		s.add("DKIM_PASS", c.Policy.DKIMPass)
	} else if dkimFailed {
		s.add("DKIM_FAIL", c.Policy.DKIMFail)
	}

	// DMARC on the domain of From: (RFC 7489 §6.6).
	from := fromDomain(fromAddrs)
	dmarcResult := dmarc.NoPolicy
	if from != "" {
		local := false
		if c.Local != nil {
			var err error
			if local, err = c.Local.IsLocal(ctx, from); err != nil && v.Action == spamcheck.Accept {
				// Unknown whether the message claims one of our domains: the client
				// tries again rather than mail in our name slip through.
				c.Log.Warn("cannot tell whether the From: domain is ours", "id", req.QueueID, "domain", from, "err", err)
				v.Action, v.Code, v.Text = spamcheck.Tempfail, "4.7.1", "Cannot check the sender now, try again later"
			}
		}
		in := dmarc.Input{From: from, SPFDomain: spfDomain, SPFPass: spfRes == spf.Pass, DKIMDomains: dkimPass}
		if local {
			in.Override = c.Policy.LocalPolicy
		}
		ev := dmarc.Evaluate(ctx, c.DNS, in)
		dmarcResult = ev.Result
		if local && ev.Result == dmarc.Fail && stricter(c.Policy.LocalPolicy, ev.Policy) {
			// Mail in the name of one of our own domains that neither SPF nor DKIM
			// vouches for: our own policy, whatever the domain publishes.
			ev.Policy = c.Policy.LocalPolicy
		}
		if ev.Result != dmarc.NoPolicy {
			s.results = append(s.results, fmt.Sprintf("dmarc=%s header.from=%s", ev.Result, resValue(from)))
		}
		switch ev.Result {
		case dmarc.Pass:
			s.add("DMARC_PASS", c.Policy.DMARCPass)
		case dmarc.Fail:
			s.add("DMARC_FAIL", c.Policy.DMARCFail)
			switch {
			case ev.Policy == dmarc.Reject && c.Policy.DMARCReject == "reject" && v.Action == spamcheck.Accept:
				v.Action, v.Code = spamcheck.Reject, "5.7.1"
				v.Text = fmt.Sprintf("DMARC policy of %s refuses this message", from)
				if local {
					v.Text = fmt.Sprintf("Mail from %s must come authenticated, or from a host SPF or DKIM vouch for", from)
				}
			case ev.Policy == dmarc.Reject || ev.Policy == dmarc.Quarantine:
				if v.Action == spamcheck.Accept {
					v.Action = spamcheck.Junk
				}
			}
		}
		if c.Record != nil && ev.Record != nil {
			evaluated = &dmarcRecord{
				At: time.Now().UTC(), QueueID: req.QueueID, SourceIP: req.ClientAddr, HeaderFrom: from,
				RecordDomain: ev.RecordDomain, Published: ev.Published, Applied: ev.Policy, Result: ev.Result,
				SPFDomain: spfDomain, SPF: string(spfRes), SPFAligned: ev.SPFAligned,
				DKIMDomains: dkimPass, DKIMAligned: ev.DKIMAligned,
				Policy: publishedPolicy(ev), SPFScope: spfScope, DKIM: dkimResults,
			}
		}
	}

	// The allow lists, now that SPF, DKIM and DMARC say which identities are genuine.
	auth := authFacts{spfPass: spfRes == spf.Pass && req.From != "", spfDomain: spfDomain, dkimPass: dkimPass, dmarcFail: dmarcResult == dmarc.Fail}
	for _, m := range auth.authenticated(lists.allow) {
		allowed = true
		s.reasons = append(s.reasons, m.reason("ALLOWLIST"))
	}
	if dnsListings != nil && !allowed {
		applyDNSListings(<-dnsListings, req.ClientAddr, &s, v)
	}

	if containsGTUBE(io.NewSectionReader(msg, req.Offset, size)) {
		s.add("GTUBE", c.Policy.GTUBE)
	}
	userJunk, userInbox = userLists(&lists, auth, &s)
	if c.Classifier != nil && !allowed {
		user := c.classifierUser(ctx, req)
		p, ok, err := c.Classifier.SpamProbability(ctx, req.QueueID, user, io.NewSectionReader(msg, req.Offset, size), size)
		switch {
		case err != nil:
			c.Log.Warn("classifier failed", "id", req.QueueID, "err", err)
		case ok:
			// Named as SpamAssassin names its Bayes rules: BAYES_99 is p >= 0.99.
			s.add(fmt.Sprintf("BAYES_%02d", min(int(p*100), 99)), c.Policy.ClassifierSpam*(2*p-1))
		}
	}
	return finish()
}

// classifierUser returns the corpus the classifier adds to the global one: the
// recipient's own when the message has exactly one, at a local domain; "" otherwise.
func (c *Checker) classifierUser(ctx context.Context, req *spamcheck.Request) string {
	if len(req.Recipients) != 1 || c.Local == nil {
		return ""
	}
	rcpt := strings.ToLower(req.Recipients[0])
	d := domainOf(rcpt)
	if d == "" {
		return ""
	}
	if local, err := c.Local.IsLocal(ctx, d); err != nil || !local {
		return ""
	}
	return rcpt
}

// policyRank orders the DMARC policies from the mildest.
var policyRank = map[string]int{dmarc.None: 0, dmarc.Quarantine: 1, dmarc.Reject: 2}

// stricter reports whether policy a is stricter than b.
func stricter(a, b string) bool { return policyRank[a] > policyRank[b] }

// domainOf returns the lower-case domain of an address, "" if it has none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// resValue keeps a value of Authentication-Results to what RFC 8601 §2.2 allows
// unquoted: no whitespace, parentheses, semicolons or quotes.
func resValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || strings.ContainsRune(`();"\`, r) {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "unknown"
	}
	return s
}

// fromAddresses returns the addresses of the From: field, lower-cased; none when the
// header section or the field does not parse.
func fromAddresses(r io.Reader) []string {
	m, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return nil
	}
	list, err := mail.ParseAddressList(m.Header.Get("From"))
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range list {
		out = append(out, strings.ToLower(a.Address))
	}
	return out
}

// fromDomain returns the domain of the From: addresses, "" when there are none or
// several of different domains (RFC 7489 §6.6.1 leaves those to local policy; they are
// scored by the other signals).
func fromDomain(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	d := domainOf(addrs[0])
	for _, a := range addrs[1:] {
		if domainOf(a) != d {
			return ""
		}
	}
	return d
}

// containsGTUBE reads the message in chunks for the GTUBE string.
func containsGTUBE(r io.Reader) bool {
	buf := make([]byte, 64<<10)
	keep := len(gtube) - 1
	n := 0
	for {
		m, err := io.ReadFull(r, buf[n:])
		n += m
		if bytes.Contains(buf[:n], []byte(gtube)) {
			return true
		}
		if err != nil {
			return false
		}
		copy(buf, buf[n-keep:n])
		n = keep
	}
}
