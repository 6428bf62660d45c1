package control

import "time"

// Operations on control/spamd: DMARC aggregate reports (RFC 7489 §7.2).
const (
	// SpamReportsList shows the DMARC evaluations waiting for the next report.
	SpamReportsList = "spam.reports.list"
	// SpamReportsSend sends the reports of everything recorded so far, now.
	SpamReportsSend = "spam.reports.send"
)

// SpamReportsListResult answers spam.reports.list.
type SpamReportsListResult struct {
	// Enabled is [spamd] dmarc_reports; Interval the period of a report, Next when the
	// next run is due.
	Enabled  bool               `json:"enabled"`
	Interval string             `json:"interval"`
	Next     time.Time          `json:"next"`
	Domains  []SpamReportDomain `json:"domains,omitempty"`
}

// SpamReportDomain is what waits to be reported to one domain: Messages evaluated from
// Sources client addresses between Begin and End.
type SpamReportDomain struct {
	Domain   string    `json:"domain"`
	Messages int       `json:"messages"`
	Sources  int       `json:"sources"`
	Begin    time.Time `json:"begin"`
	End      time.Time `json:"end"`
}

// SpamReportsSendResult answers spam.reports.send: one entry per domain.
type SpamReportsSendResult struct {
	Reports []SpamReportSent `json:"reports,omitempty"`
}

// SpamReportSent is the report of one domain: queued as QueueID to To, or not (Error);
// Skipped lists the rua= addresses left out and why; Kept says that the evaluations
// stay for the next run (the DNS or the queue failed).
type SpamReportSent struct {
	Domain   string   `json:"domain"`
	ReportID string   `json:"report_id"`
	Messages int      `json:"messages"`
	QueueID  string   `json:"queue_id,omitempty"`
	To       []string `json:"to,omitempty"`
	Skipped  []string `json:"skipped,omitempty"`
	Kept     bool     `json:"kept,omitempty"`
	Error    string   `json:"error,omitempty"`
}
