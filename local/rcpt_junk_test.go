package main

import (
	"path/filepath"
	"testing"

	"postern/pkg/delivery"
)

// TestDeliverRecipientIntoJunk checks a message junk for one recipient only (that
// recipient's own block list): carol's copy goes into her Junk, bob's into his INBOX.
func TestDeliverRecipientIntoJunk(t *testing.T) {
	e := start(t)
	qf := e.queueFile(t, body)
	bob := filepath.Join(e.root, "example.test", "bob")
	carol := filepath.Join(e.root, "example.test", "carol")
	res := e.deliver(t, qf, false,
		delivery.Recipient{Addr: "bob@example.test", Maildir: bob},
		delivery.Recipient{Addr: "carol@example.test", Maildir: carol, Spam: true, Rcpt: 1})
	for i, r := range res {
		if r.Status != delivery.Sent {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if n, m := len(files(t, filepath.Join(bob, "new"))), len(files(t, filepath.Join(bob, ".Junk", "new"))); n != 1 || m != 0 {
		t.Errorf("bob: %d in INBOX, %d in Junk; want 1 and 0", n, m)
	}
	if n, m := len(files(t, filepath.Join(carol, "new"))), len(files(t, filepath.Join(carol, ".Junk", "new"))); n != 0 || m != 1 {
		t.Errorf("carol: %d in INBOX, %d in Junk; want 0 and 1", n, m)
	}
}
