package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"postern/pkg/delivery"
	"postern/pkg/imap"
	"postern/pkg/maildir"
	"postern/pkg/mime"
	"postern/pkg/sieve"
)

// target is one copy of a message to write: a folder of the mailbox (IMAP name, ""
// for INBOX), the Maildir flag letters of the file's info part and the IMAP keywords,
// which travel in the message's keywords file (maildir.DeliverNamedKeywords).
type target struct {
	folder   string
	flags    string
	keywords []string
}

// plan is what the recipient's Sieve script decided: the copies to store and the
// addresses to redirect to (redirect.go), or a rejection (reason set), or nothing
// (discard); and a vacation reply to send once the message is delivered, with the
// header of the message it answers (vacation.go).
type plan struct {
	targets   []target
	redirects []string
	reject    string
	vacation  *sieve.Vacation
	header    *mime.Header
}

// keep adds a copy in folder, where a redirect that is not carried out leaves the
// message, unless the plan stores one there already (RFC 5228 §2.10.3: one copy per
// folder).
func (p *plan) keep(folder string) {
	if !slices.ContainsFunc(p.targets, func(t target) bool { return t.folder == folder }) {
		p.targets = append(p.targets, target{folder: folder})
	}
}

// defaultFolder is where mail goes that no script files elsewhere: INBOX, or Junk when
// spamd's verdict is spam.
func defaultFolder(req *delivery.Request, r delivery.Recipient) string {
	if req.Spam || r.Spam {
		return "Junk"
	}
	return ""
}

// filter runs the recipient's active Sieve script, if there is one, on the message. A
// script that cannot be read, parsed or run leaves the message to the default folder,
// and the log says why (mail is never lost to a filter). The script lives beside the
// Maildir's path in the mail root: <sieve>/<domain>/<localpart>/active, written by
// sieved, read here only.
func (a *Agent) filter(f *os.File, req *delivery.Request, r delivery.Recipient, root string, log *slog.Logger) plan {
	def := plan{targets: []target{{folder: defaultFolder(req, r)}}}
	if a.SieveRoot == "" {
		return def
	}
	rel, err := filepath.Rel(filepath.Clean(a.MailRoot), root)
	if err != nil || !filepath.IsLocal(rel) {
		return def
	}
	path := filepath.Join(a.SieveRoot, rel, "active")
	limits := a.SieveLimits
	if limits == (sieve.Limits{}) {
		limits = sieve.DefaultLimits()
	}
	script, err := a.loadScript(path, limits)
	if errors.Is(err, fs.ErrNotExist) {
		return def
	}
	if errors.Is(err, errScriptSyntax) {
		log.Error("sieve: the active script does not parse; delivering without it", "script", path, "err", err)
		return def
	}
	if err != nil {
		log.Error("sieve: cannot read the active script; delivering without it", "script", path, "err", err)
		return def
	}
	msg, err := mime.Parse(io.NewSectionReader(f, req.Offset, req.Size), req.Size)
	if err != nil {
		log.Error("sieve: cannot read the message's header; delivering without the script", "err", err)
		return def
	}
	actions, err := script.Run(&sieve.Message{Header: &msg.Root.Header, MIME: msg, Size: req.Size, From: req.From, To: r.Addr})
	if err != nil {
		// RFC 5228 §2.10.6: a run-time error keeps the message.
		log.Error("sieve: the script failed; delivering to the default folder", "script", path, "err", err)
		return def
	}
	loop := deliveredTo(&msg.Root.Header, r.Addr)
	p := plan{header: &msg.Root.Header}
	for _, act := range actions {
		switch act.Kind {
		case sieve.Keep:
			letters, kws := flagLetters(act.Flags, log)
			p.targets = append(p.targets, target{folder: defaultFolder(req, r), flags: letters, keywords: kws})
		case sieve.FileInto:
			// Sieve names folders in UTF-8; Maildir++ stores IMAP's modified UTF-7
			// (RFC 3501 §5.1.3), as imapd names them.
			name := imap.EncodeUTF7(act.Arg)
			if _, err := maildir.FolderPath(root, name); err != nil {
				log.Error("sieve: fileinto a folder that cannot exist; delivering to the default folder", "folder", act.Arg, "err", err)
				return def
			}
			letters, kws := flagLetters(act.Flags, log)
			p.targets = append(p.targets, target{folder: name, flags: letters, keywords: kws})
		case sieve.Reject, sieve.EReject:
			p.reject = act.Arg
		case sieve.VacationAction:
			p.vacation = act.Vacation
		case sieve.Redirect:
			switch {
			case req.Spam || r.Spam:
				// Mail judged junk is not sent on to another host in our name (the SRS
				// sender is ours): it stays in Junk, where the user can still find it.
				log.Info("sieve: the message is junk; keeping it instead of redirecting it", "redirect", act.Arg)
				p.keep(defaultFolder(req, r))
			case loop:
				// RFC 5228 §4.2: implementations take measures against loops. The
				// message went through this recipient's redirect once already (it
				// carries the Delivered-To local puts on what it redirects): it is
				// kept instead of going round again.
				log.Warn("sieve: redirect refused, the message was redirected by this recipient before (a forwarding loop); keeping it instead", "redirect", act.Arg)
				p.keep(defaultFolder(req, r))
			case !slices.ContainsFunc(p.redirects, func(s string) bool { return strings.EqualFold(s, act.Arg) }):
				// RFC 5228 §2.10.3: the same address twice gets one copy.
				p.redirects = append(p.redirects, act.Arg)
			}
		}
	}
	log.Info("sieve", "script", path, "actions", describe(actions))
	return p
}

// deliveredTo reports whether the header has a Delivered-To field naming addr.
func deliveredTo(h *mime.Header, addr string) bool {
	for _, v := range h.Values("Delivered-To") {
		if strings.EqualFold(strings.TrimSpace(v), addr) {
			return true
		}
	}
	return false
}

// errScriptSyntax is loadScript's error for a script that does not parse.
var errScriptSyntax = errors.New("the script does not parse")

// cachedScript is a parsed script and the file it was read from.
type cachedScript struct {
	fi     os.FileInfo
	script *sieve.Script
}

// loadScript returns the script at path parsed, from a.scripts when the file is the
// one parsed before: the same file (sieved replaces a script by rename, and "active"
// is a symbolic link it repoints), with the same size and modification time. A Script
// is only read by Run, so one parse serves concurrent deliveries.
func (a *Agent) loadScript(path string, limits sieve.Limits) (*sieve.Script, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sieve: reading %s: %w", path, err)
	}
	if v, ok := a.scripts.Load(path); ok {
		c := v.(*cachedScript)
		if os.SameFile(c.fi, fi) && c.fi.Size() == fi.Size() && c.fi.ModTime().Equal(fi.ModTime()) {
			return c.script, nil
		}
	}
	max := int64(limits.ScriptSize)
	src, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("sieve: reading %s: %w", path, err)
	}
	if int64(len(src)) > max {
		return nil, fmt.Errorf("sieve: %s is larger than %d octets", path, max)
	}
	script, err := sieve.ParseLimits(src, limits)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errScriptSyntax, err)
	}
	a.scripts.Store(path, &cachedScript{fi: fi, script: script})
	return script, nil
}

// flagLetters turns IMAP system flags into the letters of a Maildir file's info, in
// ASCII order (https://cr.yp.to/proto/maildir.html), and returns the keywords apart:
// they have no letter local may assign (imapd owns dovecot-keywords), so they go in
// the keywords file that imapd reads as it takes the message (see
// maildir.KeywordsPath). A flag that is neither is dropped, and logged.
func flagLetters(flags []string, log *slog.Logger) (string, []string) {
	letters, rest := maildir.FlagLetters(flags)
	var kws []string
	for _, f := range rest {
		// RFC 5232 §3 leaves invalid flags to the implementation: a keyword must
		// be an IMAP atom (RFC 3501 §9), and \Recent or unknown system flags
		// cannot be set.
		if !imap.ValidKeyword(f) {
			log.Info("sieve: not a flag IMAP can store; dropped", "flag", f)
			continue
		}
		if !slices.ContainsFunc(kws, func(k string) bool { return strings.EqualFold(k, f) }) {
			kws = append(kws, f)
		}
	}
	return letters, kws
}

func describe(actions []sieve.Action) string {
	if len(actions) == 0 {
		return "discard"
	}
	var s []string
	for _, a := range actions {
		x := a.Kind
		if a.Kind == sieve.FileInto || a.Kind == sieve.Redirect {
			x += " " + a.Arg
		}
		s = append(s, x)
	}
	return strings.Join(s, ", ")
}
