package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestIMAPIdleSeesDelivery: a session in IDLE sees a message that smtpd received and local
// delivered, within seconds (imapd promises about one; the test allows ten).
func TestIMAPIdleSeesDelivery(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	exists := make(chan uint32, 10)
	c := tg.loginAs(t, tg.user, tg.pass, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case exists <- *d.NumMessages:
				default:
				}
			}
		},
	}})
	sel := selectBox(t, c, "INBOX", nil)
	if sel.NumMessages != 0 {
		t.Fatalf("INBOX has %d messages at start", sel.NumMessages)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	start := time.Now()
	in.sendMail(t, "carol@other.test", "demo@example.test", testMessage("Pushed by IDLE", "arrived\r\n"))
	select {
	case n := <-exists:
		t.Logf("IDLE saw * %d EXISTS %v after the end of SMTP DATA", n, time.Since(start).Round(time.Millisecond))
		if n != 1 {
			t.Errorf("IDLE: * %d EXISTS, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("IDLE saw no EXISTS within 10s of the delivery\n%s", tail(in.Log(), 30))
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, c, imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if m.Envelope == nil || m.Envelope.Subject != "Pushed by IDLE" {
		t.Errorf("the delivered message: %+v", m.Envelope)
	}
	// The message as IMAP serves it is the file local wrote: trace headers, then the
	// message as sent.
	body := m.FindBodySection(&imap.FetchItemBodySection{})
	if !bytes.HasSuffix(body, []byte(testMessage("Pushed by IDLE", "arrived\r\n"))) {
		t.Errorf("BODY[] of the delivered message does not end with the message sent:\n%q", body)
	}
	if !bytes.Equal(body, in.Messages("demo@example.test")[0]) {
		t.Errorf("BODY[] differs from the Maildir file")
	}
}

// TestIMAPPythonImaplib runs a session of Python's imaplib (test/testdata/imaplib_session.py)
// against the instance; the script asserts and exits non-zero on the first difference.
func TestIMAPPythonImaplib(t *testing.T) {
	py := need(t, "python3", "python3")
	tg := newIMAPTarget(t)
	host, port, _ := net.SplitHostPort(tg.tlsAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/imaplib_session.py", host, port, tg.user, tg.pass)
	if tg.in != nil {
		cmd.Env = append(os.Environ(), "POSTERN_CA="+tg.in.Cfg.TLS.Cert)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib_session.py: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "imaplib session ok") {
		t.Errorf("imaplib_session.py did not finish:\n%s", out)
	}
}

// maildirFlags maps the Maildir info letters to IMAP flags (the Maildir specification;
// isync uses the same letters).
var maildirFlags = map[rune]imap.Flag{'D': imap.FlagDraft, 'F': imap.FlagFlagged, 'R': imap.FlagAnswered,
	'S': imap.FlagSeen, 'T': imap.FlagDeleted}

// localBox reads a Maildir folder as Message-ID → sorted flags.
func localBox(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("reading the local Maildir: %v", err)
		}
		for _, e := range entries {
			id := fileMessageID(t, filepath.Join(dir, sub, e.Name()))
			var flags []string
			if _, info, ok := strings.Cut(e.Name(), ":2,"); ok {
				for _, r := range info {
					if f, ok := maildirFlags[r]; ok {
						flags = append(flags, string(f))
					}
				}
			}
			sort.Strings(flags)
			if _, dup := out[id]; dup {
				t.Errorf("local %s holds %s twice", dir, id)
			}
			out[id] = strings.Join(flags, " ")
		}
	}
	return out
}

func fileMessageID(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if l == "" {
			break
		}
		if v, ok := strings.CutPrefix(strings.ToLower(l), "message-id:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Errorf("%s has no Message-ID", path)
	return filepath.Base(path)
}

// remoteBox reads a mailbox over IMAP as Message-ID → sorted flags (without \Recent).
func remoteBox(t *testing.T, c *imapclient.Client, name string) map[string]string {
	t.Helper()
	sel := selectBox(t, c, name, &imap.SelectOptions{ReadOnly: true})
	out := map[string]string{}
	if sel.NumMessages == 0 {
		return out
	}
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{hdr}}).Collect()
	if err != nil {
		t.Fatalf("FETCH in %s: %v", name, err)
	}
	for _, m := range msgs {
		h := strings.TrimSpace(string(m.FindBodySection(hdr)))
		_, id, _ := strings.Cut(h, ":")
		id = strings.ToLower(strings.TrimSpace(id))
		if _, dup := out[id]; dup {
			t.Errorf("server %s holds %s twice", name, id)
		}
		out[id] = flagString(m.Flags)
	}
	return out
}

func compareBoxes(t *testing.T, name string, local, remote map[string]string) {
	t.Helper()
	if len(local) != len(remote) {
		t.Errorf("%s: %d messages in the local Maildir, %d on the server", name, len(local), len(remote))
	}
	n := 0
	for id, lf := range local {
		rf, ok := remote[id]
		switch {
		case !ok:
			t.Errorf("%s: %s is local only", name, id)
		case lf != rf:
			t.Errorf("%s: %s has flags %q locally, %q on the server", name, id, lf, rf)
		default:
			continue
		}
		if n++; n > 10 {
			t.Errorf("%s: ... (more differences left out)", name)
			return
		}
	}
	for id := range remote {
		if _, ok := local[id]; !ok {
			t.Errorf("%s: %s is on the server only", name, id)
			if n++; n > 10 {
				return
			}
		}
	}
}

// TestIMAPMbsync synchronizes a 1000-message mailbox both ways with isync (mbsync): new
// mail, flag changes and deletions on either side, a new folder on either side; mbsync
// must report no error and both sides must end up the same.
func TestIMAPMbsync(t *testing.T) {
	mbsync := need(t, "mbsync", "isync")
	tg := newIMAPTarget(t)
	c := tg.login(t)
	const n = 1000
	for i := 1; i <= n; i++ {
		var opts *imap.AppendOptions
		if i%100 == 0 {
			opts = &imap.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged}}
		} else if i%3 == 0 {
			opts = &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}}
		}
		body := fmt.Sprintf("message %d of the sync test\r\n%s", i, strings.Repeat("some text to give it a size\r\n", i%50))
		appendMsg(t, c, "INBOX", testMessage(fmt.Sprintf("Sync %04d", i), body), opts)
	}

	dir := t.TempDir()
	local := filepath.Join(dir, "mail")
	os.MkdirAll(local, 0o700)
	host, port, _ := net.SplitHostPort(tg.tlsAddr)
	if host == "127.0.0.1" {
		host = "localhost" // isync matches the certificate's DNS names only
	}
	cert := ""
	if tg.in != nil {
		cert = tg.in.Cfg.TLS.Cert
	} else {
		cert = filepath.Join(dir, "cert.pem") // a reference server: trust what it presents
		if out, err := exec.Command("sh", "-c", "openssl s_client -connect "+tg.tlsAddr+" </dev/null 2>/dev/null | openssl x509").Output(); err == nil {
			os.WriteFile(cert, out, 0o600)
		}
	}
	passFile := filepath.Join(dir, "pass")
	os.WriteFile(passFile, []byte(tg.pass), 0o600)
	rc := filepath.Join(dir, "mbsyncrc")
	os.WriteFile(rc, []byte(fmt.Sprintf(`IMAPAccount postern
Host %s
Port %s
User %s
PassCmd "cat %s"
SSLType IMAPS
CertificateFile %s

IMAPStore remote
Account postern

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
CopyArrivalDate yes
`, host, port, tg.user, passFile, cert, local, local)), 0o600)

	run := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, mbsync, "-c", rc, "-a")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		t.Logf("mbsync (%s): %v", what, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("mbsync (%s): %v\n%s", what, err, tail(out.String(), 40))
		}
		for _, l := range strings.Split(out.String(), "\n") {
			if regexp.MustCompile(`(?i)error|warning|unexpected|bad|fail`).MatchString(l) {
				t.Errorf("mbsync (%s) says: %s", what, l)
			}
		}
	}
	compare := func(when string) {
		t.Helper()
		verify := tg.login(t)
		defer func() { verify.Logout().Wait() }()
		list := listNames(t, verify, "", "*", nil)
		for name, attrs := range list {
			if slices.Contains(attrs, imap.MailboxAttrNoSelect) {
				continue
			}
			ldir := filepath.Join(local, name)
			if name == "INBOX" {
				ldir = filepath.Join(local, "INBOX")
			}
			if _, err := os.Stat(filepath.Join(ldir, "cur")); err != nil {
				t.Errorf("%s: the server's %q has no local Maildir", when, name)
				continue
			}
			compareBoxes(t, when+" "+name, localBox(t, ldir), remoteBox(t, verify, name))
		}
		entries, _ := os.ReadDir(local)
		for _, e := range entries {
			if _, ok := list[e.Name()]; !ok && e.IsDir() {
				t.Errorf("%s: local folder %q is not on the server", when, e.Name())
			}
		}
	}

	run("first, 1000 messages down")
	inbox := filepath.Join(local, "INBOX")
	first := localBox(t, inbox)
	if len(first) != n {
		t.Fatalf("after the first sync the local INBOX has %d messages, want %d", len(first), n)
	}
	compare("first sync")

	// Changes on the server: new mail (SMTP and APPEND), flags, deletions, a new folder.
	if tg.in != nil {
		for i := 1; i <= 3; i++ {
			tg.in.sendMail(t, "smtp@other.test", tg.user, testMessage(fmt.Sprintf("By SMTP %d", i), "delivered\r\n"))
		}
		tg.in.WaitMessages(tg.user, n+3, 20*time.Second)
	}
	appendMsg(t, c, "INBOX", testMessage("Server new 1", "x\r\n"), nil)
	appendMsg(t, c, "INBOX", testMessage("Server new 2", "x\r\n"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagAnswered}})
	selectBox(t, c, "INBOX", nil)
	c.Store(imap.SeqSet{{Start: 1, Stop: 10}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
	c.Store(imap.SeqSetNum(20), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close()
	c.Store(imap.SeqSetNum(100), &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close()
	c.Store(imap.SeqSet{{Start: 30, Stop: 39}}, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Server Folder", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, c, "Server Folder", testMessage("In server folder 1", "x\r\n"), nil)
	appendMsg(t, c, "Server Folder", testMessage("In server folder 2", "x\r\n"), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})

	// Changes on the local side: new mail, flags, deletions, a new folder.
	writeLocal := func(folder, name, msg string) {
		for _, sub := range []string{"cur", "new", "tmp"} {
			os.MkdirAll(filepath.Join(folder, sub), 0o700)
		}
		if err := os.WriteFile(filepath.Join(folder, "new", name), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeLocal(inbox, fmt.Sprintf("%d.local1.test", time.Now().Unix()), testMessage("Local new 1", "x\r\n"))
	writeLocal(inbox, fmt.Sprintf("%d.local2.test", time.Now().Unix()), testMessage("Local new 2", "x\r\n"))
	writeLocal(filepath.Join(local, "Local Folder"), fmt.Sprintf("%d.local3.test", time.Now().Unix()), testMessage("In local folder", "x\r\n"))
	// mbsync keeps unseen messages in new/ and the others in cur/; a flag change moves
	// the file to cur/ with its new info, as a mail reader does.
	var files []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(inbox, sub))
		for _, e := range entries {
			files = append(files, filepath.Join(sub, e.Name()))
		}
	}
	sort.Strings(files)
	changedFlags, deleted := 0, 0
	for _, f := range files {
		id := fileMessageID(t, filepath.Join(inbox, f))
		var num int
		if _, err := fmt.Sscanf(id, "<sync-%d@other.test>", &num); err != nil {
			continue
		}
		switch {
		case num >= 500 && num < 505: // deleted locally
			os.Remove(filepath.Join(inbox, f))
			deleted++
		case num >= 600 && num < 606: // flagged and answered locally (info letters sorted)
			base, info, _ := strings.Cut(filepath.Base(f), ":2,")
			letters := []rune(info + "FR")
			slices.Sort(letters)
			letters = slices.Compact(letters)
			os.Rename(filepath.Join(inbox, f), filepath.Join(inbox, "cur", base+":2,"+string(letters)))
			changedFlags++
		case num == 903: // \Seen removed locally (903 is a multiple of 3: it was \Seen)
			base, info, _ := strings.Cut(filepath.Base(f), ":2,")
			os.Rename(filepath.Join(inbox, f), filepath.Join(inbox, "cur", base+":2,"+strings.ReplaceAll(info, "S", "")))
			changedFlags++
		}
	}
	if deleted != 5 || changedFlags != 7 {
		t.Fatalf("the test changed %d flags and deleted %d local files, want 7 and 5", changedFlags, deleted)
	}

	run("both ways")
	want := n + 3 + 2 - 10 + 2 - 5
	if tg.in == nil {
		want -= 3
	}
	if got := len(localBox(t, inbox)); got != want {
		t.Errorf("after the second sync the local INBOX has %d messages, want %d", got, want)
	}
	compare("second sync")
	// What was changed locally is on the server.
	remote := remoteBox(t, c, "INBOX")
	for _, id := range []string{"<sync-0600@other.test>", "<sync-0605@other.test>"} {
		if remote[id] != `\Answered \Flagged` && remote[id] != `\Answered \Flagged \Seen` {
			t.Errorf("server flags of %s after a local change: %q, want \\Answered \\Flagged", id, remote[id])
		}
	}
	if strings.Contains(remote["<sync-0903@other.test>"], `\Seen`) {
		t.Errorf("server flags of <sync-0903@other.test>: %q, want \\Seen removed", remote["<sync-0903@other.test>"])
	}
	for _, id := range []string{"<sync-0500@other.test>", "<sync-0504@other.test>"} {
		if _, ok := remote[id]; ok {
			t.Errorf("%s deleted locally is still on the server", id)
		}
	}
	for _, id := range []string{"<local-new-1@other.test>", "<local-new-2@other.test>"} {
		if _, ok := remote[id]; !ok {
			t.Errorf("%s created locally is not on the server", id)
		}
	}
	if st := tg.statusOf(t, "Local Folder", &imap.StatusOptions{NumMessages: true}); st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("the local folder on the server: %+v, want 1 message", st)
	}

	// A third run changes nothing.
	run("no changes")
	compare("third sync")
}
