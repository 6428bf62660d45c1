package dmarc

import (
	"context"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
)

func TestParseReportURI(t *testing.T) {
	for in, want := range map[string]ReportURI{
		"mailto:dmarc@Example.ORG":            {Address: "dmarc@example.org"},
		" mailto:d@example.org!10m ":          {Address: "d@example.org", MaxSize: 10 << 20},
		"MAILTO:d@example.org!500":            {Address: "d@example.org", MaxSize: 500},
		"mailto:d@example.org!2K":             {Address: "d@example.org", MaxSize: 2 << 10},
		"mailto:d%2Bx@example.org?subject=hi": {Address: "d+x@example.org"},
		"mailto:d@example.org!1t":             {Address: "d@example.org", MaxSize: 1 << 40},
	} {
		got, err := ParseReportURI(in)
		if err != nil || got != want {
			t.Errorf("ParseReportURI(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "https://example.org/dmarc", "mailto:", "mailto:nobody", "mailto:a@", "mailto:d@example.org!",
		"mailto:d@example.org!m", "mailto:d@example.org!-5", "mailto:d@example.org!+5", "mailto:d@example.org!10x", "mailto:a@b.org%2Cc@d.org",
		"mailto:Name <a@b.org>", "mailto:%zz@b.org", "mailto:d@example.org!99999999999999999999t"} {
		if u, err := ParseReportURI(bad); err == nil {
			t.Errorf("ParseReportURI(%q) = %+v", bad, u)
		}
	}
}

func FuzzParseReportURI(f *testing.F) {
	for _, s := range []string{"mailto:dmarc@example.org", "mailto:d@example.org!10m", "mailto:d%40x@example.org?x=y!5k", "http://x!1", "mailto:!!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseReportURI(s)
		if err != nil {
			return
		}
		if u.MaxSize < 0 || !strings.Contains(u.Address, "@") || u.Domain() == "" || strings.ContainsAny(u.Address, "\r\n,") {
			t.Fatalf("ParseReportURI(%q) = %+v", s, u)
		}
	})
}

// TestVerifyDestination follows RFC 7489 §7.1: a destination in the policy domain's own
// organizational domain needs no record; another must publish v=DMARC1 at
// <domain>._report._dmarc.<destination>.
func TestVerifyDestination(t *testing.T) {
	dns := &fakeDNS{txt: map[string][]string{
		"example.org._report._dmarc.reports.example": {"v=DMARC1"},
		"other.org._report._dmarc.reports.example":   {"v=spf1 -all"},
	}}
	ctx := context.Background()
	u := func(a string) ReportURI { return ReportURI{Address: a} }
	if err := VerifyDestination(ctx, dns, "mail.example.org", u("dmarc@reports.example.org")); err != nil {
		t.Errorf("same organizational domain: %v", err)
	}
	if err := VerifyDestination(ctx, dns, "Example.ORG.", u("d@reports.example")); err != nil {
		t.Errorf("authorized destination: %v", err)
	}
	for _, d := range []string{"other.org", "third.org"} {
		if err := VerifyDestination(ctx, dns, d, u("d@reports.example")); !errors.Is(err, ErrNotAuthorized) {
			t.Errorf("%s: %v, want ErrNotAuthorized", d, err)
		}
	}
	dns.temp = true
	if err := VerifyDestination(ctx, dns, "example.org", u("d@reports.example")); err == nil || errors.Is(err, ErrNotAuthorized) {
		t.Errorf("DNS failure: %v", err)
	}
}

func TestFeedbackMarshal(t *testing.T) {
	f := &Feedback{
		Version:         "1.0",
		ReportMetadata:  ReportMetadata{OrgName: "Receiver & Co", Email: "dmarc@receiver.example", ReportID: "r1", DateRange: DateRange{1, 2}},
		PolicyPublished: PolicyPublished{Domain: "example.org", ADKIM: "r", ASPF: "s", P: Reject, SP: Reject, Pct: 100, FO: "0"},
		Records: []ReportRecord{{
			Row:         Row{SourceIP: "192.0.2.1", Count: 3, PolicyEvaluated: PolicyEvaluated{Disposition: Reject, DKIM: Fail, SPF: Fail}},
			Identifiers: Identifiers{EnvelopeFrom: "example.org", HeaderFrom: "example.org"},
			AuthResults: AuthResults{SPF: []SPFAuthResult{{Domain: "example.org", Scope: "mfrom", Result: "fail"}}},
		}},
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`<?xml version="1.0" encoding="UTF-8"?>`, "<feedback>", "<org_name>Receiver &amp; Co</org_name>",
		"<source_ip>192.0.2.1</source_ip>", "<count>3</count>", "<disposition>reject</disposition>", "<scope>mfrom</scope>", "<fo>0</fo>"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in\n%s", want, s)
		}
	}
	if strings.Contains(s, "<dkim></dkim>") || strings.Contains(s, "<reason>") {
		t.Errorf("empty elements in\n%s", s)
	}
	var back Feedback
	if err := xml.Unmarshal(b, &back); err != nil || back.Records[0].Row.Count != 3 || back.PolicyPublished.Domain != "example.org" {
		t.Errorf("round trip: %+v %v", back, err)
	}
}
