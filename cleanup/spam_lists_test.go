package main

import (
	"testing"

	"postern/pkg/queue"
	"postern/pkg/spamcheck"
)

// TestMarkJunk checks where cleanup records each recipient's copy to go, by the verdict
// and the recipients' own lists.
func TestMarkJunk(t *testing.T) {
	mk := func() *queue.Envelope {
		return &queue.Envelope{Recipients: []queue.Recipient{{Addr: "a@x.test"}, {Addr: "B@x.test"}, {Addr: "c@x.test"}}}
	}
	marks := func(e *queue.Envelope) string {
		s := ""
		for _, r := range e.Recipients {
			if r.Spam {
				s += "J"
			} else {
				s += "-"
			}
		}
		if e.Spam {
			s += " all"
		}
		return s
	}
	for _, tc := range []struct {
		v       spamcheck.Verdict
		want    string
		changed bool
	}{
		{spamcheck.Verdict{Action: spamcheck.Accept}, "---", false},
		{spamcheck.Verdict{Action: spamcheck.Junk}, "--- all", true},
		{spamcheck.Verdict{Action: spamcheck.Accept, Junk: []string{"b@x.test"}}, "-J-", true},
		{spamcheck.Verdict{Action: spamcheck.Junk, Inbox: []string{"c@x.test"}}, "JJ-", true},
		{spamcheck.Verdict{Action: spamcheck.Accept, Junk: []string{"a@x.test", "b@x.test", "c@x.test"}}, "JJJ all", true},
	} {
		e := mk()
		if changed := markJunk(e, &tc.v); marks(e) != tc.want || changed != tc.changed {
			t.Errorf("%+v: %q (changed %v), want %q (%v)", tc.v, marks(e), changed, tc.want, tc.changed)
		}
	}
}
