package sieve

import (
	"strings"
	"testing"
	"time"
)

const dateMsg = "Received: from a.example by b.example; Sat, 06 Aug 2005 09:00:00 +0000\n" +
	"Received: from c.example by a.example; Fri, 05 Aug 2005 23:59:00 -0700 (PDT)\n" +
	"From: boss@example.com\n" +
	"Date: Mon, 08 Aug 2005 17:45:00 -0700\n" +
	"Subject: when\n" +
	"\n" +
	"body\n"

// TestDate runs the examples of RFC 5260 §4.3, §5 and §7 and every date-part.
func TestDate(t *testing.T) {
	const req = `require ["date", "index", "relational", "fileinto", "variables"];` + "\n"
	yes := []Action{into("yes")}
	no := []Action{keep()}
	// Delivered on Tuesday 2005-08-09 at 02:30 in +0200 (Monday 17:30 in -0700).
	now := time.Date(2005, 8, 9, 2, 30, 15, 0, time.FixedZone("", 2*3600))
	checkCases(t, req, crlf(dateMsg), now, []extCase{
		// §4.3: office hours in the sender's zone.
		{`if allof(header :is "from" "boss@example.com",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "18") { fileinto "yes"; }`, yes},
		{`if date :value "lt" :originalzone "date" "hour" "17" { fileinto "yes"; }`, no},
		// Without a zone the date is in the local one (Now's): Tuesday 02:45.
		{`if date :is "date" "date" "2005-08-09" { fileinto "yes"; }`, yes},
		{`if date :is "date" "hour" "02" { fileinto "yes"; }`, yes},
		{`if date :is :zone "+0000" "date" "time" "00:45:00" { fileinto "yes"; }`, yes},
		{`if date :is :zone "-0700" "date" "weekday" "1" { fileinto "yes"; }`, yes},
		// §4.3: weekend mail, by the first Received (Saturday 11:00 in +0200).
		{`if anyof(date :is "received" "weekday" "0", date :is "received" "weekday" "6") { fileinto "yes"; }`, yes},
		// §7 (index): the second Received is Friday in its zone, Saturday in ours.
		{`if date :is :index 2 :originalzone "received" "weekday" "5" { fileinto "yes"; }`, yes},
		{`if date :is :index 2 "received" "date" "2005-08-06" { fileinto "yes"; }`, yes},
		{`if date :is :index 1 :last "received" "zone" "-0700" { fileinto "yes"; }`, no}, // converted to +0200
		{`if date :is :index 1 :last :originalzone "received" "zone" "-0700" { fileinto "yes"; }`, yes},
		{`if date :is :index 3 "received" "year" "2005" { fileinto "yes"; }`, no},
		// Every date-part of the Date field in its own zone.
		{`if allof(
  date :is :originalzone "date" "year" "2005",
  date :is :originalzone "date" "month" "08",
  date :is :originalzone "date" "day" "08",
  date :is :originalzone "date" "date" "2005-08-08",
  date :is :originalzone "date" "julian" "53590",
  date :is :originalzone "date" "hour" "17",
  date :is :originalzone "date" "minute" "45",
  date :is :originalzone "date" "second" "00",
  date :is :originalzone "date" "time" "17:45:00",
  date :is :originalzone "date" "iso8601" "2005-08-08T17:45:00-07:00",
  date :is :originalzone "date" "std11" "Mon, 08 Aug 2005 17:45:00 -0700",
  date :is :originalzone "date" "zone" "-0700",
  date :is :originalzone "date" "weekday" "1") { fileinto "yes"; }`, yes},
		// currentdate (§5), in the local zone or another.
		{`if currentdate :is "date" "2005-08-09" { fileinto "yes"; }`, yes},
		{`if currentdate :zone "-0700" :is "date" "2005-08-08" { fileinto "yes"; }`, yes},
		{`if currentdate :value "ge" "iso8601" "2005-08-09T00:00:00+02:00" { fileinto "yes"; }`, yes},
		{`if currentdate :matches "time" "*:*:*" { fileinto "${1}h${2}m${3}s"; }`, []Action{into("02h30m15s")}},
		{`if currentdate :is "julian" "53591" { fileinto "yes"; }`, yes},
		// A missing field or one without a date fails the test.
		{`if date :is "x-none" "year" "2005" { fileinto "yes"; }`, no},
		{`if date :is "subject" "year" "2005" { fileinto "yes"; }`, no},
		// :index on header and address (RFC 5260 §6).
		{`if header :index 2 :contains "received" "from c.example" { fileinto "yes"; }`, yes},
		{`if header :index 1 :contains "received" "from c.example" { fileinto "yes"; }`, no},
		{`if header :index 1 :last :contains "received" "from c.example" { fileinto "yes"; }`, yes},
		{`if address :index 1 :is "from" "boss@example.com" { fileinto "yes"; }`, yes},
		{`if address :index 2 :is "from" "boss@example.com" { fileinto "yes"; }`, no},
		// A variable's zone and date-part, checked when run.
		{`set "z" "+0000"; set "p" "hour"; if date :is :zone "${z}" "date" "${p}" "00" { fileinto "yes"; }`, yes},
		{`set "p" "fortnight"; if date :is "date" "${p}" "" { fileinto "yes"; }`, no},
	})
}

func TestDateParseErrors(t *testing.T) {
	for _, c := range []struct{ script, want string }{
		{`if date "date" "year" "2005" {}`, `needs require "date"`},
		{`require "date"; if date "date" "fortnight" "2" {}`, `unknown date-part "fortnight"`},
		{`require "date"; if date :zone "UTC" "date" "year" "2" {}`, "not a time zone"},
		{`require "date"; if date :zone "+2400" "date" "year" "2" {}`, "not a time zone"},
		{`require "date"; if date :zone "+0000" :originalzone "date" "year" "2" {}`, "cannot be used together"},
		{`require "date"; if currentdate :originalzone "year" "2" {}`, "currentdate takes no :originalzone"},
		{`require "date"; if currentdate "date" "year" "2" {}`, "currentdate takes 2 string"},
		{`require "date"; if date "year" "2" {}`, "date takes 3 string"},
		{`require "date"; if date :index 1 "date" "year" "2" {}`, `needs require "index"`},
		{`require "index"; if header :last "a" "b" {}`, ":last needs :index"},
		{`require "index"; if header :index 0 "a" "b" {}`, ":index counts from 1"},
		{`require ["index", "envelope"]; if envelope :index 1 "from" "b" {}`, "envelope takes no :index"},
		{`require ["index", "date"]; if currentdate :index 1 "year" "b" {}`, "currentdate takes no :index"},
	} {
		_, err := Parse([]byte(c.script))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want %q", c.script, err, c.want)
		}
	}
}
