package test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// mailboxState is what a client caches about a mailbox and relies on across sessions.
type mailboxState struct {
	uidValidity uint32
	uidNext     imap.UID
	modSeq      uint64
	flags       map[imap.UID]string
}

func readState(t *testing.T, tg *imapTarget, name string) mailboxState {
	t.Helper()
	c := tg.login(t)
	defer func() { c.Logout().Wait() }()
	sel, err := c.Select(name, &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", name, err)
	}
	st := mailboxState{uidValidity: sel.UIDValidity, uidNext: sel.UIDNext, modSeq: sel.HighestModSeq, flags: map[imap.UID]string{}}
	if sel.NumMessages == 0 {
		return st
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		st.flags[m.UID] = flagString(m.Flags)
	}
	return st
}

// TestIMAPStateSurvivesRestart: UIDVALIDITY, UIDs, flags, keywords and mod-sequences stay
// the same when Postern restarts, and after a crash (SIGKILL of every process) no UID is
// given twice (RFC 9051 §2.3.1.1: a UID must never be reused while UIDVALIDITY holds).
func TestIMAPStateSurvivesRestart(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	c := tg.login(t)
	if err := c.Create("Kept", nil).Wait(); err != nil {
		t.Fatalf("CREATE Kept: %v", err)
	}
	for i := 1; i <= 5; i++ {
		appendMsg(t, c, "INBOX", testMessage(fmt.Sprintf("Durable %d", i), "x\r\n"), &imap.AppendOptions{Flags: []imap.Flag{"$Label" + imap.Flag(fmt.Sprint(i))}})
	}
	for i := 1; i <= 2; i++ {
		in.sendMail(t, "x@other.test", "demo@example.test", testMessage(fmt.Sprintf("Delivered %d", i), "x\r\n"))
	}
	in.WaitMessages("demo@example.test", 7, 10*time.Second)
	selectBox(t, c, "INBOX", nil)
	in.WaitFor("the session to see 7 messages", 10*time.Second, func() bool {
		c.Noop().Wait()
		return c.Mailbox().NumMessages >= 7
	})
	for seq, flags := range map[uint32][]imap.Flag{2: {imap.FlagSeen, imap.FlagFlagged}, 6: {imap.FlagAnswered, "$Forwarded"}, 3: {imap.FlagDeleted}} {
		if err := c.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close(); err != nil {
			t.Fatalf("STORE %d +FLAGS %v: %v", seq, flags, err)
		}
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(imap.SeqSet{{Start: 1, Stop: 2}}, "Kept").Wait(); err != nil {
		t.Fatalf("COPY 1:2 Kept: %v", err)
	}
	c.Logout().Wait()
	before := readState(t, tg, "INBOX")
	beforeKept := readState(t, tg, "Kept")

	in.Stop()
	in.Start()
	tg = imapTargetOf(t, in)
	after := readState(t, tg, "INBOX")
	afterKept := readState(t, tg, "Kept")
	for _, p := range []struct {
		name string
		a, b mailboxState
	}{{"INBOX", before, after}, {"Kept", beforeKept, afterKept}} {
		if p.a.uidValidity != p.b.uidValidity {
			t.Errorf("%s: UIDVALIDITY %d before the restart, %d after", p.name, p.a.uidValidity, p.b.uidValidity)
		}
		if p.a.uidNext != p.b.uidNext {
			t.Errorf("%s: UIDNEXT %d before the restart, %d after", p.name, p.a.uidNext, p.b.uidNext)
		}
		if p.b.modSeq < p.a.modSeq {
			t.Errorf("%s: HIGHESTMODSEQ went back from %d to %d", p.name, p.a.modSeq, p.b.modSeq)
		}
		if fmt.Sprint(p.a.flags) != fmt.Sprint(p.b.flags) {
			t.Errorf("%s: UIDs and flags before the restart %v, after %v", p.name, p.a.flags, p.b.flags)
		}
	}

	// A crash right after APPENDs: the UIDs given out are not given again.
	c = tg.login(t)
	var given []imap.UID
	for i := 1; i <= 3; i++ {
		given = append(given, appendMsg(t, c, "INBOX", testMessage(fmt.Sprintf("Before crash %d", i), "x\r\n"), nil))
	}
	in.Kill9()
	in.Start()
	tg = imapTargetOf(t, in)
	crashed := readState(t, tg, "INBOX")
	// Whatever UIDVALIDITY says, no message answered OK before the crash is lost.
	if len(crashed.flags) != len(before.flags)+len(given) {
		t.Errorf("INBOX holds %d messages after the crash, want %d: %d before and %d APPENDed", len(crashed.flags), len(before.flags)+len(given), len(before.flags), len(given))
	}
	if crashed.uidValidity != before.uidValidity {
		t.Logf("UIDVALIDITY changed after the crash (%d → %d): allowed, but clients resync everything", before.uidValidity, crashed.uidValidity)
	} else {
		for _, u := range given {
			if _, ok := crashed.flags[u]; !ok {
				t.Errorf("message with UID %d, APPENDed (and answered OK) before the crash, is gone", u)
			}
		}
		c = tg.login(t)
		next := appendMsg(t, c, "INBOX", testMessage("After crash", "x\r\n"), nil)
		if next <= slices.Max(given) {
			t.Errorf("APPEND after the crash got UID %d, not above %d given before it", next, slices.Max(given))
		}
	}
}

// TestIMAPConcurrentSessions: eight sessions APPEND to one mailbox at once while mail is
// delivered and a ninth session IDLEs; every message ends up there once, with distinct
// UIDs, and the IDLE session's count matches.
func TestIMAPConcurrentSessions(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	var mu sync.Mutex
	var lastExists uint32
	idler := tg.loginAs(t, tg.user, tg.pass, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				mu.Lock()
				lastExists = *d.NumMessages
				mu.Unlock()
			}
		},
	}})
	selectBox(t, idler, "INBOX", nil)
	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}
	const conns, each, smtpN = 8, 40, 30
	var wg sync.WaitGroup
	uids := make(chan imap.UID, conns*each)
	clients := make([]*imapclient.Client, conns)
	for i := range clients {
		clients[i] = tg.login(t)
	}
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				msg := testMessage(fmt.Sprintf("Concurrent %d-%d", i, j), "x\r\n")
				uid, err := tryAppend(c, "INBOX", msg, nil)
				if err != nil {
					t.Errorf("APPEND %d-%d: %v", i, j, err)
					return
				}
				uids <- uid
			}
		}()
	}
	// Deliveries meanwhile, from the test's goroutine (sendMail may call t.Fatal).
	for k := 0; k < smtpN; k++ {
		in.sendMail(t, "x@other.test", "demo@example.test", testMessage(fmt.Sprintf("Concurrent smtp %d", k), "x\r\n"))
	}
	wg.Wait()
	close(uids)
	seen := map[imap.UID]bool{}
	for u := range uids {
		if seen[u] {
			t.Errorf("APPENDUID %d given twice", u)
		}
		seen[u] = true
	}
	total := uint32(conns*each + smtpN)
	in.WaitMessages("demo@example.test", int(total), 30*time.Second)
	in.WaitFor(fmt.Sprintf("the IDLE session to count %d messages", total), 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return lastExists == total
	})
	idle.Close()
	idle.Wait()
	st := readState(t, tg, "INBOX")
	if len(st.flags) != int(total) {
		t.Errorf("INBOX has %d messages (distinct UIDs), want %d", len(st.flags), total)
	}
	for u := range seen {
		if _, ok := st.flags[u]; !ok {
			t.Errorf("APPENDUID %d is not in the mailbox", u)
		}
	}
	// Every Message-ID once.
	c := tg.login(t)
	selectBox(t, c, "INBOX", nil)
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{hdr}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range msgs {
		ids[strings.TrimSpace(string(m.FindBodySection(hdr)))]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s is %d times in INBOX", id, n)
		}
	}
	if len(ids) != int(total) {
		t.Errorf("%d distinct messages, want %d", len(ids), total)
	}
}

// TestIMAPTimeouts: an unauthenticated connection is closed after imapd.login_timeout,
// while logged-in sessions, in IDLE or not, outlive it (RFC 9051 §5.4: the autologout
// timer of an authenticated session is at least 30 minutes).
func TestIMAPTimeouts(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "")
	in.Stop()
	in.SetConfig("imapd", "login_timeout", `"2s"`)
	in.Start()
	tg := imapTargetOf(t, in)

	anon := tg.rawDial(t, false)
	idler := tg.rawLogin(t)
	idler.OK("SELECT INBOX")
	tag := idler.Tag()
	idler.Send(tag + " IDLE\r\n")
	if l, err := idler.Response(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q %v", l, err)
	}
	quiet := tg.rawLogin(t)

	// imapd closes it (perhaps after a BYE): the read ends with EOF, not with the test's
	// own deadline, far beyond the 2 seconds.
	anon.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, err := anon.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("an unauthenticated connection is still open 15s after it opened, with login_timeout = 2s")
			}
			break
		}
	}
	time.Sleep(3 * time.Second)
	quiet.Alive()
	in.sendMail(t, "x@other.test", "demo@example.test", testMessage("After the login timeout", "x\r\n"))
	idler.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := idler.Response()
	if err != nil || l != "* 1 EXISTS" {
		t.Fatalf("a session in IDLE past login_timeout: %q %v, want * 1 EXISTS", l, err)
	}
	idler.Send("DONE\r\n")
	if _, st := idler.ReadTo(tag); !strings.HasPrefix(st, "OK") {
		t.Errorf("IDLE ended with DONE: %q", st)
	}
}

// TestIMAPQuota: the account's quota (mailctl user add --quota) holds for mail added over
// IMAP too: an APPEND that would pass it is refused with NO [OVERQUOTA] (RFC 9208 §4.3,
// RFC 5530 §3), and what IMAP added counts when local delivers (the Maildir++ maildirsize
// file both keep).
func TestIMAPQuota(t *testing.T) {
	needPostern(t)
	in := NewInstance(t, "")
	pass := "quota-Pw-93kq"
	in.Mailctl(pass+"\n", "user", "add", "small@example.test", "--quota", "1M", "--password-stdin")
	tg := imapTargetOf(t, in)
	tg.user, tg.pass = "small@example.test", pass
	c := tg.login(t)
	big := testMessage("Big", strings.Repeat(strings.Repeat("q", 998)+"\r\n", 400)) // 400 KB
	appendMsg(t, c, "INBOX", big, nil)
	appendMsg(t, c, "INBOX", strings.Replace(big, "Subject: Big", "Subject: Big 2", 1), nil)
	// local sees the 800 KB IMAP stored: a 300 KB message does not fit, and smtpd,
	// which asks authd (and authd local) how full the mailbox is, refuses it at the end
	// of the data with 452 4.2.2 instead of accepting it and bouncing it later.
	c25, r25 := dialSMTP(t, in.SMTPAddr())
	defer c25.Close()
	command(t, c25, r25, "EHLO client.test")
	command(t, c25, r25, "MAIL FROM:<x@other.test>")
	if got := command(t, c25, r25, "RCPT TO:<small@example.test>"); !strings.HasPrefix(got, "250") {
		t.Fatalf("RCPT: %q", got)
	}
	command(t, c25, r25, "DATA")
	if got := command(t, c25, r25, testMessage("Via SMTP", strings.Repeat(strings.Repeat("s", 998)+"\r\n", 300))+"."); !strings.HasPrefix(got, "452 4.2.2") {
		t.Errorf("a message past the quota: %q, want 452 4.2.2 at the end of data", got)
	}
	if n := len(in.Messages("small@example.test")); n != 2 {
		t.Errorf("small@example.test holds %d messages, want the 2 IMAP appended", n)
	}
	_, err := tryAppend(c, "INBOX", big, nil)
	if imapType(err) != imap.StatusResponseTypeNo || imapCode(err) != imap.ResponseCode("OVERQUOTA") {
		t.Errorf("APPEND past the 1 MB quota (2 × 400 KB stored): %v, want NO [OVERQUOTA]", err)
	}
	// COPY adds the same bytes again: past the quota as well.
	selectBox(t, c, "INBOX", nil)
	if _, err := c.Copy(imap.SeqSet{{Start: 1, Stop: 2}}, "Archive").Wait(); imapType(err) != imap.StatusResponseTypeNo || imapCode(err) != imap.ResponseCode("OVERQUOTA") {
		t.Errorf("COPY of 800 KB into a 1 MB quota already holding them: %v, want NO [OVERQUOTA]", err)
	}
}

// fileFlags returns the flag part (after ":2,") of every file in a Maildir's new/ and
// cur/, by base name, and fails on a message that has two files.
func fileFlags(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			base, info, _ := strings.Cut(e.Name(), ":")
			if _, dup := files[base]; dup {
				t.Errorf("two files of %s on disk", base)
			}
			files[base] = strings.TrimPrefix(info, "2,")
		}
	}
	return files
}

// TestIMAPExpungeManyAcrossKill: a STORE and an EXPUNGE of 10,000 messages at once, with
// imapd killed (SIGKILL) right after STORE's answer, while it renames the files to show
// the new flags. Every message keeps its flags in a new session and in its file name,
// and after EXPUNGE none is left, in a new session, on disk, and after a restart of
// the whole tree. (Before, all but 256 expunged messages came back with new UIDs.)
func TestIMAPExpungeManyAcrossKill(t *testing.T) {
	needPostern(t)
	n := 10000
	if testing.Short() {
		n = 1000
	}
	in := NewInstance(t, "")
	tg := imapTargetOf(t, in)
	c := tg.rawLogin(t) // creates the account's Maildir
	dir := in.Maildir(tg.user)
	for i := range n {
		body := testMessage(fmt.Sprint("Many ", i), "x\r\n")
		name := fmt.Sprintf("%d.M%dP1.e2e,S=%d", 1700000000+i, i, len(body))
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in.WaitFor("imapd to take the messages", 60*time.Second, func() bool {
		u := c.OK("STATUS INBOX (MESSAGES)")
		return hasLine(u, fmt.Sprintf(`MESSAGES %d\)`, n))
	})
	c.OK("SELECT INBOX")
	c.OK(`STORE 1:* +FLAGS.SILENT (\Seen \Deleted)`)
	imapd := in.DaemonPIDs()["imapd"]
	syscall.Kill(imapd, syscall.SIGKILL)

	// master starts a new imapd; a new session sees every flag, and the folder's load
	// gave every file the name the index wants.
	var r *rawIMAP
	in.WaitFor("a new imapd", 30*time.Second, func() bool {
		pid := in.DaemonPIDs()["imapd"]
		return pid != 0 && pid != imapd && imapGreets(tg.tlsAddr, tg.tlsConfig) == nil
	})
	r = tg.rawLogin(t)
	r.OK("SELECT INBOX")
	flagged := 0
	for _, l := range r.OK("FETCH 1:* FLAGS") {
		if strings.Contains(l, `\Seen`) && strings.Contains(l, `\Deleted`) {
			flagged++
		}
	}
	if flagged != n {
		t.Fatalf("after the kill, %d of %d messages show \\Seen \\Deleted", flagged, n)
	}
	files := fileFlags(t, dir)
	wrong := 0
	for _, f := range files {
		if f != "ST" {
			wrong++
		}
	}
	if len(files) != n || wrong != 0 {
		t.Fatalf("on disk after the kill: %d files (want %d), %d without flags ST in their names", len(files), n, wrong)
	}

	u := r.OK("EXPUNGE")
	if len(u) != n {
		t.Errorf("EXPUNGE: %d untagged responses, want %d", len(u), n)
	}
	r.OK("LOGOUT")
	if files := fileFlags(t, dir); len(files) != 0 {
		t.Fatalf("%d files on disk after EXPUNGE", len(files))
	}
	if st := readState(t, tg, "INBOX"); len(st.flags) != 0 {
		t.Fatalf("a new session sees %d messages after EXPUNGE", len(st.flags))
	}
	in.Kill9()
	in.Start()
	if st := readState(t, tg, "INBOX"); len(st.flags) != 0 {
		t.Fatalf("after a restart, %d messages are back", len(st.flags))
	}
	if files := fileFlags(t, dir); len(files) != 0 {
		t.Fatalf("%d files on disk after a restart", len(files))
	}
}
