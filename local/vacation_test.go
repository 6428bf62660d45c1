package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/pkg/auth"
	"postern/pkg/delivery"
	"postern/pkg/enqueue"
)

// outbox records what the agent queues, and fails while fail is set.
type outbox struct {
	mu   sync.Mutex
	sent []sentReply
	fail bool
}

type sentReply struct {
	env *enqueue.Envelope
	msg string
}

func (o *outbox) submit(_ context.Context, env *enqueue.Envelope, msg []byte) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail {
		return "", errors.New("cleanup is down")
	}
	o.sent = append(o.sent, sentReply{env, string(msg)})
	return "REPLY1", nil
}

func (o *outbox) take() []sentReply {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.sent
	o.sent = nil
	return s
}

func startVacation(t *testing.T) (*env, *outbox) {
	t.Helper()
	out := &outbox{}
	e := startWith(t, func(a *Agent, dir string) {
		mem, err := openVacationMemory(filepath.Join(dir, "local", "vacation.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mem.Close() })
		a.Vacations, a.Submit = mem, out.submit
		a.SendAs = func(_ context.Context, user string) (auth.SendAsResult, error) {
			return auth.SendAsResult{Addresses: []string{user, "alias@example.test"}}, nil
		}
	})
	e.setScript(t, `require ["vacation", "fileinto"]; vacation :days 2 :subject "Away" :handle "h" "I am away."; if header :contains "subject" "drop" { discard; }`)
	return e, out
}

const personal = "From: Ann <a@far.test>\r\nTo: bob@example.test\r\nSubject: hi\r\nMessage-ID: <m1@far.test>\r\n\r\nhello\r\n"

func TestVacationOncePerSender(t *testing.T) {
	e, out := startVacation(t)
	bob := delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob")}
	res := e.deliver(t, e.queueFile(t, personal), false, bob)
	if res[0].Status != delivery.Sent {
		t.Fatalf("result %+v", res[0])
	}
	sent := out.take()
	if len(sent) != 1 {
		t.Fatalf("%d replies queued, want 1", len(sent))
	}
	r := sent[0]
	if !r.env.AutoReply || r.env.From != "" || r.env.AuthUser != "bob@example.test" || len(r.env.Recipients) != 1 || r.env.Recipients[0].Addr != "a@far.test" {
		t.Errorf("reply envelope %+v", r.env)
	}
	for _, want := range []string{"From: bob@example.test\r\n", "To: <a@far.test>\r\n", "Subject: Away\r\n", "In-Reply-To: <m1@far.test>\r\n", "Auto-Submitted: auto-replied", "\r\n\r\nI am away.\r\n"} {
		if !strings.Contains(r.msg, want) {
			t.Errorf("reply lacks %q:\n%s", want, r.msg)
		}
	}
	// The same sender again, within :days: delivered, not answered.
	e.deliver(t, e.queueFile(t, personal), false, bob)
	if got := out.take(); len(got) != 0 {
		t.Errorf("a second reply to the same sender: %+v", got)
	}
	if n := len(e.files(t, "")); n != 2 {
		t.Errorf("%d messages in INBOX, want 2", n)
	}
	// Another sender is answered; so is mail to an alias of the account (authd's).
	e.deliver(t, e.queueFileFrom(t, "carol@far.test", strings.Replace(personal, "To: bob@", "To: alias@", 1)), false, bob)
	if got := out.take(); len(got) != 1 || got[0].env.Recipients[0].Addr != "carol@far.test" {
		t.Errorf("replies to another sender: %+v", got)
	}
	// A discarded message is answered all the same (RFC 5230 §4.7).
	e.deliver(t, e.queueFileFrom(t, "dan@far.test", strings.Replace(personal, "Subject: hi", "Subject: drop", 1)), false, bob)
	if got := out.take(); len(got) != 1 {
		t.Errorf("%d replies to a discarded message, want 1", len(got))
	}
	// The period over, the first sender is answered again.
	key := vacationKey("bob@example.test", "a@far.test", "handle:h")
	if err := e.agent.Vacations.remember(key, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, e.queueFile(t, personal), false, bob)
	if got := out.take(); len(got) != 1 {
		t.Errorf("%d replies after the period, want 1", len(got))
	}
	if n, err := e.agent.Vacations.sweep(time.Now().Add(3 * 24 * time.Hour)); err != nil || n != 3 {
		t.Errorf("sweep after the period forgot %d (%v), want 3", n, err)
	}
}

// Mail that must not be answered is delivered and not answered; a reply that cannot be
// queued leaves the delivery alone and is not remembered.
func TestVacationNotAnswered(t *testing.T) {
	e, out := startVacation(t)
	bob := delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob")}
	for name, c := range map[string]struct {
		from, msg string
		spam      bool
	}{
		"null sender":    {"", personal, false},
		"list":           {"a@far.test", "List-Id: <l.far.test>\r\n" + personal, false},
		"auto-submitted": {"a@far.test", "Auto-Submitted: auto-replied\r\n" + personal, false},
		"bulk":           {"a@far.test", "Precedence: bulk\r\n" + personal, false},
		"daemon":         {"MAILER-DAEMON@far.test", personal, false},
		"not personal":   {"a@far.test", strings.Replace(personal, "To: bob@", "To: someone@", 1), false},
		"junk":           {"a@far.test", personal, true},
	} {
		res := e.deliver(t, e.queueFileFrom(t, c.from, c.msg), c.spam, bob)
		if res[0].Status != delivery.Sent {
			t.Errorf("%s: result %+v", name, res[0])
		}
		if got := out.take(); len(got) != 0 {
			t.Errorf("%s: answered: %+v", name, got)
		}
	}
	out.fail = true
	res := e.deliver(t, e.queueFile(t, personal), false, bob)
	if res[0].Status != delivery.Sent {
		t.Fatalf("delivery with cleanup down: %+v", res[0])
	}
	out.fail = false
	e.deliver(t, e.queueFile(t, personal), false, bob)
	if got := out.take(); len(got) != 1 {
		t.Errorf("%d replies once cleanup is back, want 1", len(got))
	}
	if n := len(e.files(t, "")); n != 8 {
		t.Errorf("%d messages in INBOX, want 8", n)
	}
}
