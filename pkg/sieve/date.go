package sieve

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// The date extension (RFC 5260 §4, §5): the date test on a header field's date and
// the currentdate test on the time of delivery, compared by date-part.

// dateArgs are the arguments of date and currentdate.
type dateArgs struct {
	header   string // date only
	part     string
	zone     string // :zone's argument
	hasZone  bool
	original bool // :originalzone
}

// dateParts are the date-parts of RFC 5260 §4.2.
var dateParts = map[string]bool{
	"year": true, "month": true, "day": true, "date": true, "julian": true,
	"hour": true, "minute": true, "second": true, "time": true,
	"iso8601": true, "std11": true, "zone": true, "weekday": true,
}

// validateDate checks
//
//	date [<":zone" <time-zone: string>> / ":originalzone"] [COMPARATOR] [MATCH-TYPE]
//	     <header-name: string> <date-part: string> <key-list: string-list>
//	currentdate [":zone" <time-zone: string>] [COMPARATOR] [MATCH-TYPE]
//	     <date-part: string> <key-list: string-list>
func (s *Script) validateDate(t *Test) error {
	if err := s.need(t.Pos, "date", t.Name); err != nil {
		return err
	}
	tags := map[string]ArgKind{":zone": ArgString}
	for k, v := range matchValueTags {
		tags[k] = v
	}
	a, err := splitArgs(t.Args, tags)
	if err != nil {
		return err
	}
	d := &dateArgs{}
	if x, ok := a.tags[":zone"]; ok {
		d.zone, d.hasZone = x.Strs[0], true
		if _, ok := parseZone(d.zone); !ok && !s.hasVariables(d.zone) {
			return errAt(x.Pos, "%q is not a time zone (+hhmm or -hhmm)", d.zone)
		}
		delete(a.tags, ":zone")
	}
	if x, ok := a.tags[":originalzone"]; ok {
		if t.Name == "currentdate" {
			return errAt(x.Pos, "currentdate takes no :originalzone")
		}
		if d.hasZone {
			// RFC 5260 §4.1: :zone and :originalzone exclude each other.
			return errAt(x.Pos, ":zone and :originalzone cannot be used together")
		}
		d.original = true
		delete(a.tags, ":originalzone")
	}
	if err := s.matchArgs(t, a, false); err != nil {
		return err
	}
	n := 3
	if t.Name == "currentdate" {
		n = 2
	}
	if err := wantStrings(t.Pos, a.pos, n, t.Name); err != nil {
		return err
	}
	if n == 3 {
		if err := oneString(a.pos[0], "the header name of date"); err != nil {
			return err
		}
		d.header = a.pos[0].Strs[0]
		a.pos = a.pos[1:]
	}
	if err := oneString(a.pos[0], "the date-part"); err != nil {
		return err
	}
	d.part = a.pos[0].Strs[0]
	if !dateParts[strings.ToLower(d.part)] && !s.hasVariables(d.part) {
		// RFC 5260 §4.2: an unknown date-part is an error.
		return errAt(a.pos[0].Pos, "unknown date-part %q", d.part)
	}
	t.keys, t.date = a.pos[1].Strs, d
	return nil
}

// parseZone reads a time zone of the form +hhmm or -hhmm (RFC 5260 §4.1).
func parseZone(z string) (*time.Location, bool) {
	if len(z) != 5 || z[0] != '+' && z[0] != '-' || !isNumber(z[1:]) {
		return nil, false
	}
	h, m := int(z[1]-'0')*10+int(z[2]-'0'), int(z[3]-'0')*10+int(z[4]-'0')
	if h > 23 || m > 59 {
		return nil, false
	}
	off := (h*60 + m) * 60
	if z[0] == '-' {
		off = -off
	}
	return time.FixedZone(z, off), true
}

// dateTest runs date and currentdate. A header field that is absent or holds no date
// the test can read gives no value (RFC 5260 §4: the test fails, and :count counts
// only the dates read).
func (r *runner) dateTest(t *Test) bool {
	d := t.date
	part := strings.ToLower(r.expand(d.part))
	if !dateParts[part] {
		return false
	}
	loc := r.now.Location()
	if d.hasZone {
		l, ok := parseZone(r.expand(d.zone))
		if !ok {
			return false
		}
		loc = l
	}
	var vals []string
	if t.Name == "currentdate" {
		vals = append(vals, datePart(r.now.In(loc), part))
	} else {
		for _, v := range pickIndex(r.msg.Header.Values(r.expand(d.header)), t.index, t.last) {
			tm, ok := headerDate(v)
			if !ok {
				continue
			}
			if !d.original {
				tm = tm.In(loc)
			}
			vals = append(vals, datePart(tm, part))
		}
	}
	return r.compare(t, vals)
}

// headerDate reads the date of a header field: the whole value (Date:, Resent-Date:),
// or what follows the last ";" (Received:, RFC 5322 §3.6.7), as RFC 5322 §3.3 writes
// it, obsolete forms included.
func headerDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if i := strings.LastIndexByte(v, ';'); i >= 0 {
		v = strings.TrimSpace(v[i+1:])
	}
	// A trailing comment, such as "(UTC)", which net/mail does not take.
	if i := strings.IndexByte(v, '('); i > 0 {
		v = strings.TrimSpace(v[:i])
	}
	tm, err := mail.ParseDate(v)
	return tm, err == nil
}

// datePart formats one date-part of tm (RFC 5260 §4.2).
func datePart(tm time.Time, part string) string {
	switch part {
	case "year":
		return fmt.Sprintf("%04d", tm.Year())
	case "month":
		return fmt.Sprintf("%02d", int(tm.Month()))
	case "day":
		return fmt.Sprintf("%02d", tm.Day())
	case "date":
		return tm.Format("2006-01-02")
	case "julian":
		// The Modified Julian Day: days since 1858-11-17, of the date in its zone.
		day := time.Date(tm.Year(), tm.Month(), tm.Day(), 0, 0, 0, 0, time.UTC)
		return fmt.Sprint(day.Unix()/86400 + 40587)
	case "hour":
		return fmt.Sprintf("%02d", tm.Hour())
	case "minute":
		return fmt.Sprintf("%02d", tm.Minute())
	case "second":
		return fmt.Sprintf("%02d", tm.Second())
	case "time":
		return tm.Format("15:04:05")
	case "iso8601":
		return tm.Format("2006-01-02T15:04:05-07:00")
	case "std11":
		return tm.Format("Mon, 02 Jan 2006 15:04:05 -0700")
	case "zone":
		return tm.Format("-0700")
	case "weekday":
		return fmt.Sprint(int(tm.Weekday()))
	}
	return ""
}
