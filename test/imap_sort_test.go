package test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// sortTestMessages are APPENDed in this order: a thread of three (2 starts it, 1 and 4
// answer), and 3 alone; dates, senders and subjects all sort differently.
var sortTestMessages = []string{
	"From: Zed <zed@other.test>\r\nTo: bob@example.test\r\nSubject: Re: Lunch\r\nDate: Tue, 03 Jan 2006 10:00:00 +0000\r\n" +
		"Message-ID: <s2@other.test>\r\nIn-Reply-To: <s1@other.test>\r\n\r\nyes\r\n",
	"From: Ada <ada@other.test>\r\nTo: carl@example.test\r\nSubject: Lunch\r\nDate: Tue, 03 Jan 2006 08:00:00 +0200\r\n" +
		"Message-ID: <s1@other.test>\r\n\r\nlunch at noon?\r\n",
	"From: bob@other.test\r\nTo: alice@example.test\r\nSubject: [list] Agenda\r\nDate: Thu, 05 Jan 2006 09:00:00 +0000\r\n" +
		"Message-ID: <s3@other.test>\r\n\r\nthe agenda, which is the longest message of the four\r\n",
	"From: carl@other.test\r\nTo: ada@example.test\r\nSubject: Fwd: Re: LUNCH\r\nDate: Wed, 04 Jan 2006 09:00:00 +0000\r\n" +
		"Message-ID: <s4@other.test>\r\nReferences: <s1@other.test> <s2@other.test>\r\n\r\nfwd\r\n",
}

// TestIMAPSort covers SORT (RFC 5256 §3) through the go-imap client, and ESORT (RFC 5267)
// and SORT=DISPLAY (RFC 5957) on a raw connection.
func TestIMAPSort(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	if !c.Caps().Has("SORT") {
		if tg.in != nil {
			t.Fatal("imapd does not advertise SORT")
		}
		t.Skip("the reference server has no SORT")
	}
	for _, m := range sortTestMessages {
		appendMsg(t, c, "INBOX", m, nil)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		crit []imapclient.SortCriterion
		want []uint32
	}{
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeyDate}}, []uint32{2, 1, 4, 3}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeyDate, Reverse: true}}, []uint32{3, 4, 1, 2}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeySubject}, {Key: imapclient.SortKeyDate, Reverse: true}}, []uint32{3, 4, 1, 2}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeyFrom}}, []uint32{2, 3, 4, 1}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeyTo}}, []uint32{4, 3, 1, 2}},
		{[]imapclient.SortCriterion{{Key: imapclient.SortKeySize, Reverse: true}}, []uint32{3, 4, 1, 2}}, // 194, 190, 175, 153 octets
	} {
		got, err := c.Sort(&imapclient.SortOptions{SearchCriteria: &imap.SearchCriteria{}, SortCriteria: tt.crit}).Wait()
		if err != nil {
			t.Fatalf("SORT %+v: %v", tt.crit, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SORT %+v = %v, want %v", tt.crit, got, tt.want)
		}
	}
	got, err := c.UIDSort(&imapclient.SortOptions{
		SearchCriteria: &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "lunch"}}},
		SortCriteria:   []imapclient.SortCriterion{{Key: imapclient.SortKeyDate}},
	}).Wait()
	if err != nil || len(got) != 3 {
		t.Errorf("UID SORT (DATE) SUBJECT lunch = %v, %v; want three UIDs", got, err)
	}

	r := tg.rawLogin(t)
	r.OK("SELECT INBOX")
	if u := r.OK("SORT (DISPLAYFROM) UTF-8 ALL"); !hasLine(u, `^\* SORT 2 3 4 1$`) {
		t.Errorf("SORT (DISPLAYFROM): %q", u)
	}
	if u := r.OK("SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL"); !hasLine(u, `^\* ESEARCH \(TAG "[^"]+"\) MIN 2 MAX 3 ALL 2,1,4,3 COUNT 4$`) {
		t.Errorf("SORT RETURN (MIN MAX COUNT ALL): %q", u)
	}
	if u, st := r.Cmd("SORT (DATE) ALL"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("SORT without a charset: %s %q, want BAD", st, u)
	}
}

// TestIMAPThread covers THREAD (RFC 5256 §4), both algorithms, through the go-imap
// client.
func TestIMAPThread(t *testing.T) {
	tg := newIMAPTarget(t)
	c := tg.login(t)
	if algs := c.Caps().ThreadAlgorithms(); len(algs) < 2 {
		if tg.in != nil {
			t.Fatalf("imapd advertises THREAD algorithms %v", algs)
		}
		t.Skip("the reference server lacks a THREAD algorithm")
	}
	for _, m := range sortTestMessages {
		appendMsg(t, c, "INBOX", m, nil)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		alg  imap.ThreadAlgorithm
		want []imapclient.ThreadData
	}{
		// "(2 1 4)(3)": 4 answers 1, which answers 2.
		{imap.ThreadReferences, []imapclient.ThreadData{{Chain: []uint32{2, 1, 4}}, {Chain: []uint32{3}}}},
		// "(2 (1)(4))(3)": by base subject, under the earliest.
		{imap.ThreadOrderedSubject, []imapclient.ThreadData{
			{Chain: []uint32{2}, SubThreads: []imapclient.ThreadData{{Chain: []uint32{1}}, {Chain: []uint32{4}}}},
			{Chain: []uint32{3}}}},
	} {
		got, err := c.Thread(&imapclient.ThreadOptions{Algorithm: tt.alg, SearchCriteria: &imap.SearchCriteria{}}).Wait()
		if err != nil {
			t.Fatalf("THREAD %s: %v", tt.alg, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("THREAD %s = %+v, want %+v", tt.alg, got, tt.want)
		}
	}
}
