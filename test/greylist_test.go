package test

import (
	"strings"
	"testing"
	"time"
)

// TestGreylisting turns greylisting on with a delay of 8 seconds: the first attempt of a
// new (client, sender, recipient) is refused at RCPT with 451 4.7.1, a retry before the
// delay too, and one after it is accepted and delivered; the same triplet then passes
// at once; a client on the administrator's allow list is not greylisted. (The delay is long enough that the first two attempts, a few milliseconds
// apart, cannot straddle it on a loaded machine.)
func TestGreylisting(t *testing.T) {
	in := NewInstance(t, "")
	in.SetConfig("spamd", "greylist", "true")
	in.SetConfig("spamd", "greylist_delay", `"8s"`)
	in.Stop()
	in.Start()
	const rcpt = "demo@example.test"
	msg := "From: <x@grey-sender.test>\r\nTo: <demo@example.test>\r\nSubject: greylisted\r\n\r\nhello\r\n"
	if got := dataReply(t, in, "x@grey-sender.test", rcpt, msg); !strings.HasPrefix(got, "451 4.7.1 ") || !strings.Contains(got, "Greylisted") {
		t.Fatalf("first attempt: %q", got)
	}
	if got := dataReply(t, in, "x@grey-sender.test", rcpt, msg); !strings.HasPrefix(got, "451 4.7.1 ") {
		t.Fatalf("retry before the delay: %q", got)
	}
	time.Sleep(9 * time.Second) // past the delay, counted from the first attempt
	if got := dataReply(t, in, "x@grey-sender.test", rcpt, msg); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("retry after the delay: %q", got)
	}
	in.WaitMessages(rcpt, 1, 10*time.Second)
	if got := dataReply(t, in, "x@grey-sender.test", rcpt, strings.Replace(msg, "greylisted", "again", 1)); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("the passed triplet again: %q", got)
	}
	in.WaitMessages(rcpt, 2, 10*time.Second)
	if log := in.Log(); !strings.Contains(log, "msg=greylisted daemon=spamd") {
		t.Errorf("no greylisted line in the log:\n%s", tail(log, 20))
	}

	// A client on the administrator's allow list is not greylisted: a new sender is
	// held back, then, once the client's network is allowed, another new one passes.
	other := strings.Replace(msg, "x@grey-sender.test", "y@other-sender.test", 1)
	if got := dataReply(t, in, "y@other-sender.test", rcpt, other); !strings.HasPrefix(got, "451 4.7.1 ") {
		t.Fatalf("a new sender: %q", got)
	}
	in.Mailctl("", "spam", "allow", "127.0.0.0/8")
	third := strings.Replace(msg, "x@grey-sender.test", "z@third-sender.test", 1)
	if got := dataReply(t, in, "z@third-sender.test", rcpt, third); !strings.HasPrefix(got, "250 ") {
		t.Errorf("a new sender from an allowed client: %q", got)
	}
}
