package test

import (
	"regexp"
	"testing"
)

// TestSpamdTrainMixed trains spamd's real classifier with one mailctl spam train command
// that gives both classes (--spam PATH --ham PATH) over two passes: each class reaches
// spamd's corpus with its own messages, counted once, and the same command again finds
// every message known already.
func TestSpamdTrainMixed(t *testing.T) {
	in := NewInstance(t, "")
	spamMbox, hamDir := trainingSets(t, 20)
	args := []string{"spam", "train", "--passes", "2", "--spam", spamMbox, "--ham", hamDir}
	if out := in.Mailctl("", args...); out != "20 messages learned as spam, 0 known already\n20 messages learned as ham, 0 known already\n" {
		t.Errorf("spam train --spam --ham: %q", out)
	}
	if out := in.Mailctl("", "spam", "status"); !regexp.MustCompile(`(?m)^global\s+20\s+20\s+[1-9]\d*$`).MatchString(out) {
		t.Errorf("spam status after training:\n%s", out)
	}
	if out := in.Mailctl("", args...); out != "0 messages learned as spam, 20 known already\n0 messages learned as ham, 20 known already\n" {
		t.Errorf("spam train --spam --ham again: %q", out)
	}
}
