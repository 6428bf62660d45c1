package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSpamdClassifierAfterAlias checks that mail sent to an alias is judged with the
// corpus of the account the alias leads to: only demo@example.test's own corpus is
// trained (the global one is empty, so without it the classifier has no opinion), and a
// spam-like message sent to the alias info@example.test lands in demo's Junk with a
// BAYES_9x score, while a ham-like one stays in the INBOX.
func TestSpamdClassifierAfterAlias(t *testing.T) {
	in := NewInstance(t, "")
	const account, alias = "demo@example.test", "info@example.test"
	in.Mailctl("", "alias", "add", alias, account)
	const n = 60
	spamMbox, hamDir := trainingSets(t, n)
	if out := in.Mailctl("", "spam", "train", "--spam", "--user", account, spamMbox); out != fmt.Sprintf("%d messages learned as spam, 0 known already\n", n) {
		t.Fatalf("spam train --spam --user: %q", out)
	}
	if out := in.Mailctl("", "spam", "train", "--ham", "--user", account, hamDir); out != fmt.Sprintf("%d messages learned as ham, 0 known already\n", n) {
		t.Fatalf("spam train --ham --user: %q", out)
	}
	if out := in.Mailctl("", "spam", "status"); !regexp.MustCompile(`(?m)^global\s+0\s+0\s+0$`).MatchString(out) {
		t.Fatalf("the global corpus is not empty:\n%s", out)
	}

	newSpam := strings.Replace(trainingSpam(1001), "Message-ID: <spam1001@", "Message-ID: <aliasspam@", 1)
	if got := dataReply(t, in, "offers@bestpills.example", alias, newSpam); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("spam-like message: %q", got)
	}
	if got := dataReply(t, in, "alice@partner.example", alias, trainingHam(1001)); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("ham-like message: %q", got)
	}
	in.WaitFor("the spam-like message in demo's Junk", 10*time.Second, func() bool { return len(junk(in, account)) == 1 })
	if j := string(junk(in, account)[0]); !strings.Contains(j, "Message-ID: <aliasspam@") || !regexp.MustCompile(`X-Spam-Status: Yes.*BAYES_9\d=`).MatchString(unfold(j)) {
		t.Errorf("Junk holds:\n%s", j)
	}
	inbox := in.WaitMessages(account, 1, 10*time.Second)
	if len(inbox) != 1 || !regexp.MustCompile(`X-Spam-Status: No.*BAYES_0\d=-`).MatchString(unfold(string(inbox[0]))) {
		t.Errorf("INBOX holds %d messages:\n%s", len(inbox), inbox)
	}
}
