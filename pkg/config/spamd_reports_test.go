package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMyDomain(t *testing.T) {
	for host, want := range map[string]string{
		"mx.example.test":    "example.test",
		"mail.example.co.uk": "example.co.uk",
		"example.test":       "example.test",
		"localhost":          "localhost",
		"MX.Example.Test.":   "example.test",
	} {
		c := &Config{Hostname: host}
		if got := c.MyDomain(); got != want {
			t.Errorf("MyDomain of %q = %q, want %q", host, got, want)
		}
	}
}

// TestReportsAndGreylistKeys checks the defaults of the DMARC report and greylisting
// keys, that the file sets them, and that bad values name their key.
func TestReportsAndGreylistKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postern.toml")
	c, err := Parse(path, []byte("hostname = \"mx.example.org\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Spamd
	if s.Reports || s.ReportInterval.D() != 24*time.Hour || s.Greylist.Greylist || s.GreylistDelay.D() != 5*time.Minute ||
		s.GreylistWindow.D() != 4*time.Hour || s.GreylistAutoAllow != 5 || s.GreylistMaxAge.D() != 35*24*time.Hour {
		t.Errorf("defaults: %+v %+v", s.DMARCReports, s.Greylist)
	}
	if c.DMARCReportFrom() != "postmaster@example.org" || c.DMARCReportOrg() != "mx.example.org" {
		t.Errorf("report from %q org %q", c.DMARCReportFrom(), c.DMARCReportOrg())
	}
	c, err = Parse(path, []byte(`[spamd]
dmarc_reports = true
dmarc_report_interval = "1h"
dmarc_report_from = "dmarc@example.org"
dmarc_report_org = "Example Org"
greylist = true
greylist_delay = "1s"
greylist_window = "1m"
greylist_auto_allow = 0
greylist_exempt = ["192.0.2.0/24", "friend@partner.example", "partner.example"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Spamd.Reports || c.Spamd.ReportInterval.D() != time.Hour || c.DMARCReportFrom() != "dmarc@example.org" ||
		c.DMARCReportOrg() != "Example Org" || !c.Spamd.Greylist.Greylist || c.Spamd.GreylistDelay.D() != time.Second ||
		len(c.Spamd.GreylistExempt) != 3 {
		t.Errorf("set: %+v %+v", c.Spamd.DMARCReports, c.Spamd.Greylist)
	}
	for _, bad := range []struct{ text, key string }{
		{`dmarc_report_interval = "10s"`, "spamd.dmarc_report_interval"},
		{`dmarc_report_from = "Someone <x@example.org>"`, "spamd.dmarc_report_from"},
		{`dmarc_report_from = "nobody"`, "spamd.dmarc_report_from"},
		{`greylist_delay = "500ms"`, "spamd.greylist_delay"},
		{`greylist_window = "1m"`, "spamd.greylist_window"},
		{`greylist_max_age = "1h"`, "spamd.greylist_max_age"},
		{`greylist_auto_allow = -1`, "spamd.greylist_auto_allow"},
		{`greylist_exempt = ["a b"]`, "spamd.greylist_exempt"},
	} {
		_, err := Parse(path, []byte("[spamd]\n"+bad.text+"\n"))
		if err == nil || !strings.Contains(err.Error(), bad.key) {
			t.Errorf("%s: %v", bad.text, err)
		}
	}
	os.Remove(path)
}
