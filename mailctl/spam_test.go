package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"postern/pkg/control"
)

// TestSpamTrain checks that spam train sends spamd each message of a file, an mbox and a
// Maildir folder as a descriptor with its offset and size, and that spam status prints
// the counts and whether the classifier gives an opinion.
func TestSpamTrain(t *testing.T) {
	fi := newFakeInstance(t, "spamd")
	dir := t.TempDir()
	m1 := "From: a@x.test\nSubject: one\n\nbody one\n"
	m2 := "From: b@x.test\nSubject: two\n\nbody two\n\n>From the start\n"
	m3 := "Subject: three\r\n\r\nbody three\r\n"
	m4 := "Subject: four\r\n\r\nbody four\r\n"
	mbox := "From a@x.test Mon Dec  7 10:00:00 2026\n" + m1 + "\nFrom b@x.test Mon Dec  7 11:00:00 2026\n" + m2
	md := filepath.Join(dir, "Maildir", ".Junk")
	for _, d := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, d), 0o700)
	}
	files := map[string]string{"mbox": mbox, "Maildir/.Junk/cur/1.host:2,S": m3, "Maildir/.Junk/new/2.host": m4,
		"Maildir/.Junk/tmp/3.host": "not delivered yet", "single.eml": m1}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fi.reply(control.SpamLearn, control.SpamLearnResult{Changed: true})
	code, out, errOut := fi.run("", "spam", "train", "--spam", filepath.Join(dir, "mbox"), md, filepath.Join(dir, "single.eml"))
	if code != 0 || out != "5 messages learned as spam, 0 known already\n" {
		t.Fatalf("spam train: exit %d, %q %q", code, out, errOut)
	}
	fi.mu.Lock()
	calls := fi.calls
	fi.calls = nil
	fi.mu.Unlock()
	var got []string
	for _, c := range calls {
		if c.op != control.SpamLearn || !strings.Contains(c.body, `"spam":true`) {
			t.Errorf("call %+v", c)
		}
		got = append(got, c.file)
	}
	// The empty line before the next "From " line separates the mbox's messages and
	// belongs to neither (RFC 4155 §2).
	want := []string{m1, m2, m3, m4, m1}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("spamd received\n%q\nwant\n%q", got, want)
	}

	if code, _, errOut := fi.run("", "spam", "train", filepath.Join(dir, "mbox")); code != exitUsage || !strings.Contains(errOut, "--spam and --ham") {
		t.Errorf("train without --spam or --ham: exit %d %s", code, errOut)
	}
	if code, _, errOut := fi.run("", "spam", "train", "--ham", dir); code == 0 || !strings.Contains(errOut, "not a Maildir") {
		t.Errorf("train on a plain directory: exit %d %s", code, errOut)
	}
	code, _, _ = fi.run("", "spam", "train", "--ham", "--user", "Bob@Example.test", filepath.Join(dir, "single.eml"))
	if c := fi.last(); code != 0 || c.body != `{"spam":false,"user":"bob@example.test","offset":0,"size":`+strconv.Itoa(len(m1))+`}` {
		t.Errorf("train --user: exit %d, sent %s", code, c.body)
	}
	fi.reply(control.SpamLearn, control.SpamLearnResult{Changed: false})
	code, out, _ = fi.run("", "spam", "train", "--spam", "--on-error", filepath.Join(dir, "single.eml"))
	if c := fi.last(); code != 0 || c.body != `{"spam":true,"offset":0,"size":`+strconv.Itoa(len(m1))+`,"on_error":true}` ||
		out != "0 messages learned as spam, 1 known already or classified right\n" {
		t.Errorf("train --on-error: exit %d, sent %s, printed %q", code, c.body, out)
	}

	fi.reply(control.SpamStatus, control.SpamStatusResult{Global: control.SpamCorpus{Spam: 60, Ham: 12, Tokens: 900},
		Users: []control.SpamCorpus{{User: "bob@example.test", Ham: 40, Tokens: 300}}, MinSpam: 50, MinHam: 50})
	code, out, _ = fi.run("", "spam", "status")
	for _, w := range []string{"global            60    12   900", "bob@example.test  0     40   300", "no opinion yet"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("spam status: exit %d, no %q in\n%s", code, w, out)
		}
	}
}
