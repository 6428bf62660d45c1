package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/delivery"
	"postern/pkg/maildir"
	"postern/pkg/mime"
	"postern/pkg/sieve"
)

// setScript installs script as the active Sieve script of the mailbox example.test/bob,
// as sieved stores it.
func (e *env) setScript(t *testing.T, script string) {
	t.Helper()
	dir := filepath.Join(e.dir, "sieve", "example.test", "bob")
	os.MkdirAll(dir, 0o700)
	os.Remove(filepath.Join(dir, "active"))
	if err := os.WriteFile(filepath.Join(dir, "main.sieve"), []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("main.sieve", filepath.Join(dir, "active")); err != nil {
		t.Fatal(err)
	}
}

// files lists the message file names in the new/ of a folder ("" = INBOX).
func (e *env) files(t *testing.T, folder string) []string {
	t.Helper()
	d := filepath.Join(e.root, "example.test", "bob", folder, "new")
	ents, _ := os.ReadDir(d)
	var n []string
	for _, x := range ents {
		if !strings.HasPrefix(x.Name(), ".") {
			n = append(n, x.Name())
		}
	}
	return n
}

// Keywords a script sets travel in the message's keywords file, which imapd reads as
// it takes the message (its test is imapd's TestDeliveryKeywords); system flags in the
// name; what IMAP cannot store is dropped.
func TestSieveKeywords(t *testing.T) {
	e := start(t)
	e.setScript(t, `require ["imap4flags", "fileinto"]; addflag ["$Work \\Flagged", "no(atom", "\\Recent"]; fileinto :flags ["$Label1", "\\Seen"] "Lists"; keep;`)
	qf := e.queueFile(t, body)
	res := e.deliver(t, qf, false, delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob")})
	if res[0].Status != delivery.Sent {
		t.Fatalf("result %+v", res[0])
	}
	for folder, want := range map[string]struct{ info, kws string }{
		"":       {":2,F", "$Work\n"},
		".Lists": {":2,S", "$Label1\n"},
	} {
		got := e.files(t, folder)
		if len(got) != 1 || !strings.HasSuffix(got[0], want.info) {
			t.Fatalf("folder %q: %v, want one file ending %s", folder, got, want.info)
		}
		dir := filepath.Join(e.root, "example.test", "bob", folder)
		b, err := os.ReadFile(maildir.KeywordsPath(dir, got[0]))
		if err != nil || string(b) != want.kws {
			t.Errorf("folder %q: keywords file %q, %v; want %q", folder, b, err, want.kws)
		}
	}
}

func TestSieveDelivery(t *testing.T) {
	for _, c := range []struct {
		name, script string
		spam         bool
		status, code string
		folders      map[string]string // folder → info suffix of the one file expected ("-": none)
	}{
		{"fileinto with flags", `require ["fileinto", "imap4flags"]; if header :contains "subject" "hi" { addflag ["\\Seen", "\\Flagged", "$label"]; fileinto "Lists/Work"; }`, false, delivery.Sent, "2.0.0",
			map[string]string{".Lists.Work": ":2,FS", "": "-"}},
		{"keep with flag", `require "imap4flags"; keep :flags "\\Answered";`, false, delivery.Sent, "2.0.0", map[string]string{"": ":2,R"}},
		{"copy", `require ["fileinto", "copy"]; fileinto :copy "Archive";`, false, delivery.Sent, "2.0.0", map[string]string{"": "", ".Archive": ""}},
		{"discard", `discard;`, false, delivery.Sent, "2.0.0", map[string]string{"": "-"}},
		{"reject", `require "reject"; reject "not here";`, false, delivery.Bounced, "5.7.1", map[string]string{"": "-"}},
		{"ereject", `require "ereject"; ereject "no";`, false, delivery.Bounced, "5.7.1", map[string]string{"": "-"}},
		{"spam kept goes to Junk", `keep;`, true, delivery.Sent, "2.0.0", map[string]string{".Junk": "", "": "-"}},
		{"spam filed elsewhere", `require "fileinto"; fileinto "Lists";`, true, delivery.Sent, "2.0.0", map[string]string{".Lists": "", ".Junk": "-"}},
		{"broken script", `if true { fileinto "x" }`, false, delivery.Sent, "2.0.0", map[string]string{"": ""}},
		{"run-time error", `require "reject"; reject "x"; keep;`, false, delivery.Sent, "2.0.0", map[string]string{"": ""}},
		{"bad folder", `require "fileinto"; fileinto "a/../b";`, false, delivery.Sent, "2.0.0", map[string]string{"": ""}},
		{"redirect stores nothing", `redirect "x@example.org";`, false, delivery.Sent, "2.0.0", map[string]string{"": "-"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := start(t)
			e.setScript(t, c.script)
			qf := e.queueFile(t, body)
			res := e.deliver(t, qf, c.spam, delivery.Recipient{Addr: "bob@example.test", Maildir: filepath.Join(e.root, "example.test", "bob")})
			if res[0].Status != c.status || res[0].Code != c.code {
				t.Fatalf("result %+v, want %s %s", res[0], c.status, c.code)
			}
			for folder, info := range c.folders {
				got := e.files(t, folder)
				if info == "-" {
					if len(got) != 0 {
						t.Errorf("folder %q has %v, want nothing", folder, got)
					}
					continue
				}
				if len(got) != 1 {
					t.Fatalf("folder %q has %v, want one file", folder, got)
				}
				if i := strings.IndexByte(got[0], ':'); info == "" && i >= 0 || info != "" && !strings.HasSuffix(got[0], info) {
					t.Errorf("folder %q: file %s, want info %q", folder, got[0], info)
				}
			}
		})
	}
}

// TestLoadScriptCache: the active script is parsed once while its file stays the same,
// and again when sieved replaces it (a new file renamed over the old).
func TestLoadScriptCache(t *testing.T) {
	a := &Agent{}
	dir := t.TempDir()
	path := filepath.Join(dir, "active")
	write := func(src string) {
		tmp := filepath.Join(dir, "tmp")
		if err := os.WriteFile(tmp, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("keep;\n")
	first, err := a.loadScript(path, sieve.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.loadScript(path, sieve.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Error("an unchanged script was parsed again")
	}
	write("discard;\n")
	changed, err := a.loadScript(path, sieve.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if changed == first {
		t.Fatal("a replaced script was served from the cache")
	}
	acts, err := changed.Run(&sieve.Message{Header: &mime.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 0 {
		t.Errorf("replaced script (discard) gave %v", acts)
	}
	write("not sieve")
	if _, err := a.loadScript(path, sieve.DefaultLimits()); err == nil {
		t.Error("a script that does not parse was accepted")
	}
}
