package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/control"
	"postern/pkg/dmarc"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/spamcheck"
)

// DMARC aggregate reports (RFC 7489 §7.2). With [spamd] dmarc_reports on, the Checker
// records each DMARC evaluation (recorder, spamd.go) in the dmarc bucket of spamd.db.
// Once per dmarc_report_interval, at its multiples since the epoch (§7.2: reports on
// hour boundaries), the reporter groups the records by the domain whose policy was
// applied, looks the policy up again for its current rua= addresses, checks each
// destination outside the domain (§7.1), builds the XML of Appendix C, gzips it, and
// hands one mail per domain to cleanup as a report (local submission from the null
// sender, signed with the DKIM key of the reporter address's domain): the queue makes
// it durable and retries it. The records of a domain are deleted once its report is
// queued, or when there is nothing to send them to; those that could not be handled
// (DNS or queue down) wait for the next run, up to maxRecordAge. `mailctl spam reports
// send` forces a run now, `mailctl spam reports list` shows what is pending.

// maxRecordAge bounds how long an evaluation waits for a report that cannot be sent.
const maxRecordAge = 7 * 24 * time.Hour

// reporter sends the aggregate reports.
type reporter struct {
	db  *bolt.DB
	dns dmarc.Resolver
	// submit hands a report to the queue and returns its queue ID (queueReport).
	submit func(ctx context.Context, to []string, msg []byte) (string, error)
	// enabled is [spamd] dmarc_reports; off, the reporter only prunes old records.
	enabled   bool
	interval  time.Duration
	org       string // org_name
	from      string // the From: and <email> of the reports
	submitter string // the host name: Submitter: and the file names' receiver
	log       *slog.Logger
	now       func() time.Time

	mu   sync.Mutex // one run at a time
	next time.Time
}

// publishedPolicy is the policy_published of a report for an evaluation.
func publishedPolicy(ev dmarc.Evaluation) dmarc.PolicyPublished {
	rec := ev.Record
	p := dmarc.PolicyPublished{Domain: ev.RecordDomain, ADKIM: "r", ASPF: "r", P: rec.Policy, SP: rec.SubdomainPolicy, Pct: rec.Pct, FO: rec.FO}
	if rec.StrictDKIM {
		p.ADKIM = "s"
	}
	if rec.StrictSPF {
		p.ASPF = "s"
	}
	if p.FO == "" {
		p.FO = "0"
	}
	return p
}

// disposition maps a verdict's action to the disposition of a report: what was done
// to the message.
func disposition(action string) string {
	switch action {
	case spamcheck.Reject:
		return dmarc.Reject
	case spamcheck.Junk:
		return dmarc.Quarantine
	}
	return dmarc.None
}

// rowKey groups the evaluations into the rows of a report: the same source, results,
// identifiers and disposition count as one row.
type rowKey struct {
	ip, disposition, reason, dkim, spf    string
	headerFrom, envelopeFrom              string
	spfDomain, spfScope, spfResult, dkims string
}

// pending is what the records hold for one policy domain.
type pending struct {
	domain      string
	policy      dmarc.PolicyPublished
	begin, last time.Time
	messages    int
	rows        map[rowKey]int
	order       []rowKey
	dkim        map[rowKey][]dmarc.DKIMAuthResult
}

// collect reads the records made before end, grouped by policy domain, and returns the
// highest key read.
func (r *reporter) collect(end time.Time) (map[string]*pending, uint64, error) {
	out := map[string]*pending{}
	var maxSeq uint64
	err := r.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(dmarcBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec dmarcRecord
			if len(k) != 8 || json.Unmarshal(v, &rec) != nil || !rec.At.Before(end) || rec.RecordDomain == "" {
				return nil
			}
			maxSeq = max(maxSeq, binary.BigEndian.Uint64(k))
			if rec.Disposition == spamcheck.Tempfail {
				return nil // the message was not taken; its retry is recorded
			}
			p := out[rec.RecordDomain]
			if p == nil {
				p = &pending{domain: rec.RecordDomain, begin: rec.At, rows: map[rowKey]int{}, dkim: map[rowKey][]dmarc.DKIMAuthResult{}}
				out[rec.RecordDomain] = p
			}
			p.policy = rec.Policy
			if p.policy.Domain == "" {
				p.policy = dmarc.PolicyPublished{Domain: rec.RecordDomain, P: rec.Published, SP: rec.Published, Pct: 100, FO: "0"}
			}
			if rec.At.Before(p.begin) {
				p.begin = rec.At
			}
			if rec.At.After(p.last) {
				p.last = rec.At
			}
			p.messages++
			key := rowOf(&rec)
			if _, ok := p.rows[key]; !ok {
				p.order = append(p.order, key)
				p.dkim[key] = rec.DKIM
			}
			p.rows[key]++
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reading the DMARC evaluations: %w", err)
	}
	return out, maxSeq, nil
}

// rowOf returns the row an evaluation counts in.
func rowOf(rec *dmarcRecord) rowKey {
	k := rowKey{ip: rec.SourceIP, disposition: disposition(rec.Disposition), dkim: dmarc.Fail, spf: dmarc.Fail,
		headerFrom: rec.HeaderFrom, envelopeFrom: rec.SPFDomain, spfDomain: rec.SPFDomain, spfScope: rec.SPFScope, spfResult: rec.SPF}
	if rec.DKIMAligned {
		k.dkim = dmarc.Pass
	}
	if rec.SPFAligned {
		k.spf = dmarc.Pass
	}
	if k.spfResult == "" {
		k.spfResult = "none"
	}
	if k.envelopeFrom == "" {
		k.envelopeFrom = rec.HeaderFrom // the schema wants one; SPF had none to check
	}
	// The disposition differs from the policy: a local policy decided (spamd's score,
	// or dmarc_reject = "junk"), or pct sampled the message out (§6.6.4).
	switch {
	case rec.Result == dmarc.Fail && k.disposition != rec.Applied:
		k.reason = dmarc.ReasonLocalPolicy
	case rec.Result == dmarc.Fail && rec.Applied != rec.Published:
		k.reason = dmarc.ReasonSampledOut
	case rec.Result != dmarc.Fail && k.disposition != dmarc.None:
		k.reason = dmarc.ReasonLocalPolicy
	}
	var ds []string
	for _, d := range rec.DKIM {
		ds = append(ds, d.Domain+"="+d.Result)
	}
	k.dkims = strings.Join(ds, ",")
	return k
}

// feedback builds the report of p for the period up to end.
func (r *reporter) feedback(p *pending, end time.Time) *dmarc.Feedback {
	begin := p.begin.Unix()
	f := &dmarc.Feedback{
		Version: "1.0",
		ReportMetadata: dmarc.ReportMetadata{
			OrgName: r.org, Email: r.from,
			ReportID:  reportID(p.domain, begin, end.Unix()),
			DateRange: dmarc.DateRange{Begin: begin, End: end.Unix()},
		},
		PolicyPublished: p.policy,
	}
	for _, k := range p.order {
		rec := dmarc.ReportRecord{
			Row: dmarc.Row{SourceIP: k.ip, Count: p.rows[k], PolicyEvaluated: dmarc.PolicyEvaluated{
				Disposition: k.disposition, DKIM: k.dkim, SPF: k.spf}},
			Identifiers: dmarc.Identifiers{EnvelopeFrom: k.envelopeFrom, HeaderFrom: k.headerFrom},
			AuthResults: dmarc.AuthResults{DKIM: p.dkim[k]},
		}
		if k.reason != "" {
			rec.Row.PolicyEvaluated.Reasons = []dmarc.PolicyOverrideReason{{Type: k.reason}}
		}
		if k.spfDomain != "" {
			rec.AuthResults.SPF = []dmarc.SPFAuthResult{{Domain: k.spfDomain, Scope: k.spfScope, Result: k.spfResult}}
		} else {
			rec.AuthResults.SPF = []dmarc.SPFAuthResult{{Domain: k.headerFrom, Scope: "mfrom", Result: "none"}}
		}
		f.Records = append(f.Records, rec)
	}
	return f
}

// reportID names a report: the same records over the same period give the same ID, so
// that a report sent twice (spamd killed between queueing it and deleting its records)
// is known for a duplicate (§7.2.1.1: Report-ID lets the owner ignore duplicates).
func reportID(domain string, begin, end int64) string {
	return fmt.Sprintf("%s.%d.%d", domain, begin, end)
}

// Pending lists what the next run would report.
func (r *reporter) Pending() (control.SpamReportsListResult, error) {
	res := control.SpamReportsListResult{Enabled: r.enabled, Interval: r.interval.String()}
	r.mu.Lock()
	res.Next = r.next
	r.mu.Unlock()
	ps, _, err := r.collect(r.now().Add(time.Hour))
	if err != nil {
		return res, err
	}
	for _, p := range ps {
		sources := map[string]bool{}
		for k := range p.rows {
			sources[k.ip] = true
		}
		res.Domains = append(res.Domains, control.SpamReportDomain{Domain: p.domain, Messages: p.messages, Sources: len(sources), Begin: p.begin, End: p.last})
	}
	slices.SortFunc(res.Domains, func(a, b control.SpamReportDomain) int { return strings.Compare(a.Domain, b.Domain) })
	return res, nil
}

// Send reports the evaluations made before end, one report per domain, and deletes the
// records it is done with.
func (r *reporter) Send(ctx context.Context, end time.Time) ([]control.SpamReportSent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ps, maxSeq, err := r.collect(end)
	if err != nil {
		return nil, err
	}
	domains := make([]string, 0, len(ps))
	for d := range ps {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	var out []control.SpamReportSent
	done := map[string]bool{}
	for _, d := range domains {
		res := r.sendDomain(ctx, ps[d], end)
		if !res.Kept {
			done[d] = true
		}
		out = append(out, res)
	}
	if err := r.prune(done, maxSeq, end); err != nil {
		return out, err
	}
	return out, nil
}

// sendDomain reports the evaluations of p; Kept in the answer says that its records
// stay for the next run.
func (r *reporter) sendDomain(ctx context.Context, p *pending, end time.Time) control.SpamReportSent {
	f := r.feedback(p, end)
	res := control.SpamReportSent{Domain: p.domain, ReportID: f.ReportMetadata.ReportID, Messages: p.messages}
	log := r.log.With("domain", p.domain, "report_id", res.ReportID)
	rec, _, err := dmarc.Lookup(ctx, r.dns, p.domain)
	switch {
	case errors.Is(err, dmarc.ErrNoRecord):
		res.Error = "the domain publishes no DMARC record now"
		log.Info("DMARC report not sent", "reason", res.Error)
		return res
	case err != nil:
		res.Error, res.Kept = err.Error(), true
		log.Warn("DMARC report not sent, kept for the next run", "err", err)
		return res
	case len(rec.RUA) == 0:
		res.Error = "the domain asks for no aggregate reports (no rua=)"
		return res
	}
	var uris []dmarc.ReportURI
	temporary := false
	for _, s := range rec.RUA {
		u, err := dmarc.ParseReportURI(s)
		if err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %v", s, err))
			continue
		}
		if err := dmarc.VerifyDestination(ctx, r.dns, p.domain, u); err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %v", s, err))
			temporary = temporary || !errors.Is(err, dmarc.ErrNotAuthorized)
			continue
		}
		uris = append(uris, u)
	}
	if len(uris) == 0 {
		res.Error, res.Kept = "no destination to send the report to", temporary
		log.Info("DMARC report not sent", "reason", res.Error, "skipped", res.Skipped)
		return res
	}
	xmlDoc, err := f.Marshal()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	var to, tooSmall []string
	var msg []byte
	// The size limit of a URI ("!" suffix, §6.2) is held against the whole message,
	// which is a little larger than the report it carries.
	msg, err = r.composeReport(f, xmlDoc, nil)
	if err == nil {
		for _, u := range uris {
			switch {
			case slices.Contains(to, u.Address) || slices.Contains(tooSmall, u.Address):
			case u.MaxSize > 0 && int64(len(msg)) > u.MaxSize:
				tooSmall = append(tooSmall, u.Address)
				res.Skipped = append(res.Skipped, fmt.Sprintf("mailto:%s: the report (%d octets) is over its limit of %d", u.Address, len(msg), u.MaxSize))
			default:
				to = append(to, u.Address)
			}
		}
		if len(to) > 0 {
			msg, err = r.composeReport(f, xmlDoc, to)
		} else {
			// No destination takes a report this large: each hears of it in a short
			// error report instead (§7.2.2).
			to = tooSmall
			msg, err = r.composeErrorReport(f, len(msg), to)
			res.Error = "the report is over every destination's size limit; an error report was sent instead"
		}
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	id, err := r.submit(ctx, to, msg)
	if err != nil {
		res.Error, res.Kept = err.Error(), true
		log.Warn("DMARC report not queued, kept for the next run", "err", err)
		return res
	}
	res.To, res.QueueID = to, id
	log.Info("DMARC report queued", "id", id, "to", strings.Join(to, ","), "messages", p.messages, "rows", len(f.Records))
	return res
}

// queueReport returns the submit function of a reporter: a report goes to cleanup as
// a local submission (enqueue.Envelope.Report), from the null sender.
func queueReport(cl *enqueue.Client) func(ctx context.Context, to []string, msg []byte) (string, error) {
	return func(ctx context.Context, to []string, msg []byte) (string, error) {
		env := &enqueue.Envelope{Report: true}
		for _, a := range to {
			env.Recipients = append(env.Recipients, enqueue.Recipient{Addr: a})
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		tx, err := cl.Begin(ctx, env)
		if err != nil {
			return "", err
		}
		if _, err := tx.Write(msg); err != nil {
			tx.Abort()
			return "", err
		}
		res, err := tx.Commit()
		if err != nil {
			return "", err
		}
		return res.QueueID, nil
	}
}

// headers writes the header section common to reports and error reports (§7.2.1.1).
func (r *reporter) headers(b *bytes.Buffer, f *dmarc.Feedback, to []string, boundary string) {
	id := "<" + f.ReportMetadata.ReportID + "@" + r.submitter + ">"
	fmt.Fprintf(b, "From: %s\r\n", (&mail.Address{Name: r.org, Address: r.from}).String())
	var tos []string
	for _, a := range to {
		tos = append(tos, "<"+a+">")
	}
	if len(tos) == 0 {
		tos = []string{"undisclosed-recipients:;"}
	}
	fmt.Fprintf(b, "To: %s\r\n", strings.Join(tos, ",\r\n\t"))
	fmt.Fprintf(b, "Date: %s\r\n", r.now().Format(time.RFC1123Z))
	// §7.2.1.1: "Report Domain: <domain> Submitter: <receiver> Report-ID: <msg-id>".
	fmt.Fprintf(b, "Subject: Report Domain: %s\r\n\tSubmitter: %s\r\n\tReport-ID: %s\r\n", f.PolicyPublished.Domain, r.submitter, id)
	fmt.Fprintf(b, "Message-ID: %s\r\n", id)
	// RFC 3834 §5: made by a machine, not to be answered by one.
	b.WriteString("Auto-Submitted: auto-generated\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a multi-part message in MIME format.\r\n")
}

// fileName is the name of the report's attachment (§7.2.1.1):
// receiver!policy-domain!begin!end.xml.gz.
func (r *reporter) fileName(f *dmarc.Feedback) string {
	return fmt.Sprintf("%s!%s!%d!%d.xml.gz", r.submitter, f.PolicyPublished.Domain, f.ReportMetadata.DateRange.Begin, f.ReportMetadata.DateRange.End)
}

// composeReport makes the mail of a report: a few words, and the XML gzipped as an
// application/gzip attachment (§7.2.1.1).
func (r *reporter) composeReport(f *dmarc.Feedback, xmlDoc []byte, to []string) ([]byte, error) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(xmlDoc); err != nil {
		return nil, fmt.Errorf("compressing a report: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing a report: %w", err)
	}
	boundary := "dmarc-" + f.ReportMetadata.ReportID
	var b bytes.Buffer
	r.headers(&b, f, to, boundary)
	total := 0
	for _, rec := range f.Records {
		total += rec.Row.Count
	}
	md := f.ReportMetadata
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is a DMARC aggregate report (RFC 7489) for %s from %s:\r\n%d messages from %d sources between %s and %s.\r\n",
		f.PolicyPublished.Domain, r.submitter, total, len(f.Records),
		time.Unix(md.DateRange.Begin, 0).UTC().Format(time.RFC3339), time.Unix(md.DateRange.End, 0).UTC().Format(time.RFC3339))
	name := r.fileName(f)
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/gzip; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		boundary, name, name)
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	for len(enc) > 76 { // RFC 2045 §6.8: lines of at most 76 characters
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes(), nil
}

// composeErrorReport makes the short error report of §7.2.2, sent instead of a report
// no destination takes for its size.
func (r *reporter) composeErrorReport(f *dmarc.Feedback, size int, to []string) ([]byte, error) {
	boundary := "dmarc-error-" + f.ReportMetadata.ReportID
	var b bytes.Buffer
	r.headers(&b, f, to, boundary)
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Report-Date: %s\r\nReport-Domain: %s\r\nReport-ID: %s\r\nReport-Size: %d\r\nSubmitter: %s\r\n",
		r.now().Format(time.RFC1123Z), f.PolicyPublished.Domain, f.ReportMetadata.ReportID, size, r.submitter)
	for _, a := range to {
		fmt.Fprintf(&b, "Submitting-URI: mailto:%s\r\n", a)
	}
	b.WriteString("\r\nThe aggregate report is larger than the size limit of every rua= address.\r\n")
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes(), nil
}

// prune deletes the records of the domains done (up to maxSeq, made before end), and
// every record older than maxRecordAge.
func (r *reporter) prune(done map[string]bool, maxSeq uint64, end time.Time) error {
	old := r.now().Add(-maxRecordAge)
	n := 0
	err := r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(dmarcBucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; {
			var rec dmarcRecord
			del := json.Unmarshal(v, &rec) != nil || rec.At.Before(old)
			if !del && len(k) == 8 && binary.BigEndian.Uint64(k) <= maxSeq && rec.At.Before(end) && done[rec.RecordDomain] {
				del = true
			}
			if !del {
				k, v = c.Next()
				continue
			}
			key := slices.Clone(k)
			if err := c.Delete(); err != nil {
				return err
			}
			n++
			// After Delete, Next would skip an item: Seek to the one after key.
			k, v = c.Seek(key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deleting reported DMARC evaluations: %w", err)
	}
	if n > 0 {
		r.log.Info("DMARC evaluations deleted", "n", n)
	}
	return nil
}

// nextRun is the next multiple of interval since the epoch after t.
func nextRun(t time.Time, interval time.Duration) time.Time {
	return t.Truncate(interval).Add(interval)
}

// run sends the reports at each multiple of the interval until ctx ends; disabled, it
// prunes old records once a day.
func (r *reporter) run(ctx context.Context) {
	for {
		var next time.Time
		if r.enabled {
			next = nextRun(r.now(), r.interval)
		} else {
			next = r.now().Add(24 * time.Hour)
		}
		r.mu.Lock()
		r.next = next
		r.mu.Unlock()
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !r.enabled {
			r.mu.Lock()
			err := r.prune(nil, 0, time.Time{})
			r.mu.Unlock()
			if err != nil {
				r.log.Error("pruning DMARC evaluations", "err", err)
			}
			continue
		}
		if _, err := r.Send(ctx, next); err != nil {
			r.log.Error("DMARC reports", "err", err)
		}
	}
}

// ControlServer hooks: mailctl spam reports list and send, on control/spamd.

func (r *reporter) serveList(context.Context, ipc.Cred, json.RawMessage, []*os.File) (any, error) {
	return r.Pending()
}

func (r *reporter) serveSend(ctx context.Context, _ ipc.Cred, _ json.RawMessage, _ []*os.File) (any, error) {
	if !r.enabled {
		return nil, ipc.Errorf("invalid", "DMARC reports are off: set dmarc_reports = true in [spamd]")
	}
	sent, err := r.Send(ctx, r.now())
	if err != nil {
		return nil, err
	}
	return control.SpamReportsSendResult{Reports: sent}, nil
}
