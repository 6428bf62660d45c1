package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"postern/pkg/control"
	"postern/pkg/junk"
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
	code, out, errOut := fi.run("", "spam", "train", "--passes", "1", "--spam", filepath.Join(dir, "mbox"), md, filepath.Join(dir, "single.eml"))
	if code != 0 || out != "5 messages learned as spam, 0 known already\n" {
		t.Fatalf("spam train: exit %d, %q %q", code, out, errOut)
	}
	calls := fi.take()
	var got []string
	for _, c := range calls {
		if c.op != control.SpamLearn || !strings.Contains(c.body, `"spam":true`) {
			t.Errorf("call %+v", c)
		}
		got = append(got, c.file)
	}
	// The empty line before the next "From " line separates the mbox's messages and
	// belongs to neither (RFC 4155 §2). (TestSpamTrainPasses checks the order.)
	want := []string{m1, m2, m3, m4, m1}
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("spamd received\n%q\nwant\n%q", got, want)
	}

	if code, _, errOut := fi.run("", "spam", "train", "--ham", dir); code == 0 || !strings.Contains(errOut, "not a Maildir") {
		t.Errorf("train on a plain directory: exit %d %s", code, errOut)
	}
	code, _, _ = fi.run("", "spam", "train", "--passes", "1", "--ham", "--user", "Bob@Example.test", filepath.Join(dir, "single.eml"))
	if c := fi.last(); code != 0 || c.body != `{"spam":false,"user":"bob@example.test","offset":0,"size":`+strconv.Itoa(len(m1))+`}` {
		t.Errorf("train --user: exit %d, sent %s", code, c.body)
	}
	// Without --passes, junk.DefaultPasses steps for each message.
	if code, _, _ = fi.run("", "spam", "train", "--spam", filepath.Join(dir, "single.eml")); code != 0 || fi.count() != junk.DefaultPasses {
		t.Errorf("train without --passes: exit %d, %d calls, want %d", code, fi.count(), junk.DefaultPasses)
	}
	fi.last()
	fi.reply(control.SpamLearn, control.SpamLearnResult{Changed: false})
	code, out, _ = fi.run("", "spam", "train", "--spam", "--on-error", filepath.Join(dir, "single.eml"))
	if c := fi.last(); code != 0 || c.body != `{"spam":true,"offset":0,"size":`+strconv.Itoa(len(m1))+`,"on_error":true}` ||
		out != "pass 1: 0 messages learned as spam, 1 classified right\nstopped after pass 1: it learned nothing\n" {
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

// trainFixture writes four spam (two in an mbox, two in a Maildir folder) and three
// ham (two in a Maildir folder, one file) and returns the spam train arguments that
// name them, with --passes among the PATHs; the messages' keys in the order the
// command lists them; and their contents by key.
func trainFixture(t *testing.T) (args, keys []string, content map[string]string) {
	t.Helper()
	dir := t.TempDir()
	content = map[string]string{}
	mboxPath := filepath.Join(dir, "spam.mbox")
	var mbox strings.Builder
	for i := 1; i <= 2; i++ {
		mbox.WriteString("From x@spam.test Mon Dec  7 10:00:00 2026\n")
		m := fmt.Sprintf("Subject: spam %d\n\nbuy %d\n", i, i)
		k := mboxPath + "#" + strconv.Itoa(mbox.Len())
		keys = append(keys, k)
		content[k] = m
		mbox.WriteString(m + "\n")
	}
	if err := os.WriteFile(mboxPath, []byte(mbox.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	maildir := func(name, class string, files ...string) string {
		md := filepath.Join(dir, name)
		for _, d := range []string{"cur", "new", "tmp"} {
			os.MkdirAll(filepath.Join(md, d), 0o700)
		}
		for i, f := range files {
			p := filepath.Join(md, f)
			m := fmt.Sprintf("Subject: %s %s\n\n%s body %d\n", class, f, class, i)
			if err := os.WriteFile(p, []byte(m), 0o600); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, p)
			content[p] = m
		}
		return md
	}
	spamMD := maildir("Junk", "spam", "cur/1.h:2,S", "new/2.h")
	hamMD := maildir("Inbox", "ham", "cur/3.h:2,S", "cur/4.h:2,S")
	hamFile := filepath.Join(dir, "ham.eml")
	content[hamFile] = "Subject: ham file\n\nhello\n"
	keys = append(keys, hamFile)
	if err := os.WriteFile(hamFile, []byte(content[hamFile]), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--spam", mboxPath, spamMD, "--passes", "3", "--ham", hamMD, hamFile}, keys, content
}

// TestSpamTrainPasses checks that spam train --spam PATH... --ham PATH... sends each
// message with its own class, --passes times, each pass in junk.TrainingOrder's order
// of all the messages, spam and ham mixed; and that it counts the messages new to the
// corpus from the first pass.
func TestSpamTrainPasses(t *testing.T) {
	fi := newFakeInstance(t, "spamd")
	args, keys, content := trainFixture(t)
	isSpam := func(k string) bool { return strings.HasPrefix(content[k], "Subject: spam") }
	// spamd's corpus: a message is new to it once, or when it moves to the other class.
	corpus := map[string]bool{}
	fi.reply(control.SpamLearn, func(c call) any {
		spam := strings.Contains(c.body, `"spam":true`)
		was, known := corpus[c.file]
		corpus[c.file] = spam
		return control.SpamLearnResult{Changed: !known || was != spam}
	})
	code, out, errOut := fi.run("", append([]string{"spam", "train"}, args...)...)
	if code != 0 || out != "4 messages learned as spam, 0 known already\n3 messages learned as ham, 0 known already\n" {
		t.Fatalf("spam train: exit %d, %q %q", code, out, errOut)
	}
	calls := fi.take()
	const passes = 3
	if len(calls) != passes*len(keys) {
		t.Fatalf("%d calls for %d messages in %d passes", len(calls), len(keys), passes)
	}
	mixed := false
	for p := range passes {
		var got, want []string
		changes, last := 0, false
		for i, j := range junk.TrainingOrder(keys, p) {
			c := calls[p*len(keys)+i]
			got = append(got, c.file)
			want = append(want, content[keys[j]])
			spam := strings.Contains(c.body, `"spam":true`)
			if spam != isSpam(keys[j]) {
				t.Errorf("pass %d: %q sent with spam %v", p, c.file, spam)
			}
			if i > 0 && spam != last {
				changes++
			}
			last = spam
		}
		if !slices.Equal(got, want) {
			t.Errorf("pass %d sent\n%q\nwant\n%q", p, got, want)
		}
		// Not all the spam, then all the ham (or the reverse).
		mixed = mixed || changes > 1
	}
	if !mixed {
		t.Errorf("no pass mixes spam and ham")
	}

	// Again: every message is known already, and still sent in each pass.
	code, out, _ = fi.run("", append([]string{"spam", "train"}, args...)...)
	if code != 0 || out != "0 messages learned as spam, 4 known already\n0 messages learned as ham, 3 known already\n" || fi.count() != passes*len(keys) {
		t.Errorf("spam train again: exit %d, %q, %d calls", code, out, fi.count())
	}
	fi.last()

	// On error: the first pass learns the spam, the second nothing, and there the
	// command stops.
	n := 0
	fi.reply(control.SpamLearn, func(c call) any {
		n++
		return control.SpamLearnResult{Changed: n <= len(keys) && strings.Contains(c.body, `"spam":true`) && strings.Contains(c.body, `"on_error":true`)}
	})
	code, out, _ = fi.run("", append([]string{"spam", "train", "--on-error"}, args...)...)
	want := "pass 1: 4 messages learned as spam, 0 classified right\npass 1: 0 messages learned as ham, 3 classified right\n" +
		"pass 2: 0 messages learned as spam, 4 classified right\npass 2: 0 messages learned as ham, 3 classified right\n" +
		"stopped after pass 2: it learned nothing\n"
	if code != 0 || out != want || n != 2*len(keys) {
		t.Errorf("spam train --on-error: exit %d, %d calls, printed\n%s", code, n, out)
	}
}

// TestSpamTrainArgs checks the command lines spam train refuses, before it sends anything.
func TestSpamTrainArgs(t *testing.T) {
	fi := newFakeInstance(t, "spamd")
	f := filepath.Join(t.TempDir(), "m.eml")
	if err := os.WriteFile(f, []byte("Subject: x\n\nx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{f}, f + " comes before --spam or --ham"},
		{[]string{"--on-error", f, "--spam", f}, f + " comes before --spam or --ham"},
		{[]string{"--spam", "--ham", f}, "--spam is followed by no PATH"},
		{[]string{"--spam", f, "--ham"}, "--ham is followed by no PATH"},
		{[]string{"--spam", f, "--ham", f}, "both as spam and as ham"},
		{[]string{"--spam=true", f}, "--spam takes no value"},
		{[]string{"--passes", "0", "--spam", f}, "--passes is 0: give 1 to 100"},
		{[]string{"--spam", f, "--passes", "101"}, "--passes is 101: give 1 to 100"},
		{[]string{"--passes", "many", "--spam", f}, "-passes"},
	} {
		code, _, errOut := fi.run("", append([]string{"spam", "train"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("spam train %q: exit %d, %q, want %q", tc.args, code, errOut, tc.want)
		}
		if n := fi.count(); n != 0 {
			t.Errorf("spam train %q: %d messages sent", tc.args, n)
		}
	}
	// The same file twice with the same class is one message; after "--", "--ham" is a
	// PATH.
	code, out, errOut := fi.run("", "spam", "train", "--passes", "1", "-spam", f, f)
	if code != 0 || out != "0 messages learned as spam, 1 known already\n" || fi.count() != 1 {
		t.Errorf("spam train f f: exit %d, %q %q", code, out, errOut)
	}
	fi.last()
	t.Chdir(filepath.Dir(f))
	if err := os.WriteFile("--ham", []byte("Subject: y\n\ny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = fi.run("", "spam", "train", "--passes", "1", "--spam", "--", "--ham")
	if c := fi.last(); code != 0 || out != "0 messages learned as spam, 1 known already\n" || !strings.HasPrefix(c.body, `{"spam":true`) {
		t.Errorf("spam train --spam -- --ham: exit %d, %q %q, sent %s", code, out, errOut, c.body)
	}
}

// TestSpamTrainGone checks that a message deleted during a run (a Maildir message that an
// IMAP client moved from new/ to cur/) is skipped with a warning, the rest learned.
func TestSpamTrainGone(t *testing.T) {
	fi := newFakeInstance(t, "spamd")
	md := filepath.Join(t.TempDir(), "Junk")
	for _, d := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, d), 0o700)
	}
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(md, "new", strconv.Itoa(i)), []byte("Subject: x\n\nx\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// At the first message, the other two go away.
	fi.reply(control.SpamLearn, func(c call) any {
		ents, _ := os.ReadDir(filepath.Join(md, "new"))
		for _, e := range ents {
			os.Remove(filepath.Join(md, "new", e.Name()))
		}
		return control.SpamLearnResult{Changed: true}
	})
	code, out, errOut := fi.run("", "spam", "train", "--passes", "2", "--spam", md)
	if code != 0 || out != "1 messages learned as spam, 0 known already\n" || strings.Count(errOut, "skipped") != 2 || fi.count() != 2 {
		t.Errorf("exit %d, %q, %q, %d calls", code, out, errOut, fi.count())
	}
}

// TestOpenFiles checks that a training run keeps at most max files open, reuses the
// ones it has, and closes the one used least recently.
func TestOpenFiles(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 3 {
		p := filepath.Join(dir, strconv.Itoa(i))
		os.WriteFile(p, []byte("x"), 0o600)
		paths = append(paths, p)
	}
	of := &openFiles{max: 2}
	defer of.closeAll()
	a, _ := of.open(paths[0])
	b, _ := of.open(paths[1])
	if again, _ := of.open(paths[0]); again != a {
		t.Errorf("a file open already was opened again")
	}
	if _, err := of.open(paths[2]); err != nil || len(of.files) != 2 {
		t.Fatalf("%v, %d files open", err, len(of.files))
	}
	if _, err := b.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the file used least recently is still open: %v", err)
	}
	if _, err := a.Stat(); err != nil {
		t.Errorf("the file used last was closed: %v", err)
	}
}
