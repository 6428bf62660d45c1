package sieve

import (
	"errors"
	"fmt"
	"strings"

	"postern/pkg/mime"
)

// Message is what a script sees of a message.
type Message struct {
	Header *mime.Header
	Size   int64
	// From and To are the envelope sender ("" for <>) and the recipient.
	From, To string
}

// Action kinds.
const (
	Keep     = "keep"
	FileInto = "fileinto"
	Redirect = "redirect"
	Reject   = "reject"
	EReject  = "ereject"
	Discard  = "discard"
)

// Action is one thing to do with the message.
type Action struct {
	Kind  string
	Arg   string   // the folder (fileinto), address (redirect) or reason (reject)
	Flags []string // IMAP flags of the stored copy (keep, fileinto)
	// Vacation is the reply a vacation action asks for.
	Vacation *Vacation
}

// ErrRun wraps the faults a script meets as it runs (too many actions, reject with
// keep): the caller delivers to INBOX (RFC 5228 §2.10.6).
var ErrRun = errors.New("sieve: run-time error")

type runner struct {
	msg      *Message
	flags    []string
	acts     []Action
	keep     bool // the implicit keep is still due
	stopped  bool
	redirect int
}

// Run runs the script on m and returns the actions, the implicit keep (RFC 5228
// §2.10.2) included as a Keep action with the current flags when no action cancelled it.
// Fileinto the same folder twice, or keep and fileinto INBOX, store one copy (§2.10.3).
func (s *Script) Run(m *Message) ([]Action, error) {
	r := &runner{msg: m, keep: true}
	if err := r.block(s.Commands); err != nil {
		return nil, err
	}
	if r.keep {
		r.store(Action{Kind: Keep, Flags: r.flags})
	}
	var rej, other bool
	for _, a := range r.acts {
		switch a.Kind {
		case Reject, EReject:
			rej = true
		case Keep, FileInto, Redirect:
			other = true
		}
	}
	if rej && other {
		// RFC 5429 §2.2: reject is incompatible with keep, fileinto and redirect.
		return nil, fmt.Errorf("%w: reject together with keep, fileinto or redirect", ErrRun)
	}
	return r.acts, nil
}

func (r *runner) add(a Action) error {
	if len(r.acts) >= MaxActions {
		return fmt.Errorf("%w: more than %d actions", ErrRun, MaxActions)
	}
	r.acts = append(r.acts, a)
	return nil
}

// store adds a keep or fileinto unless the same folder has one already; the flags of
// the later one win.
func (r *runner) store(a Action) error {
	folder := a.Arg
	if a.Kind == Keep || strings.EqualFold(folder, "INBOX") {
		folder = "INBOX"
	}
	for i, x := range r.acts {
		xf := x.Arg
		if x.Kind == Keep || strings.EqualFold(xf, "INBOX") {
			xf = "INBOX"
		}
		if (x.Kind == Keep || x.Kind == FileInto) && xf == folder {
			r.acts[i].Flags = a.Flags
			return nil
		}
	}
	return r.add(a)
}

func (r *runner) block(cmds []*Command) error {
	matched := false
	for _, c := range cmds {
		if r.stopped {
			return nil
		}
		switch c.Name {
		case "require":
		case "if":
			matched = r.test(c.Tests[0])
			if matched {
				if err := r.block(c.Block); err != nil {
					return err
				}
			}
		case "elsif":
			if !matched {
				matched = r.test(c.Tests[0])
				if matched {
					if err := r.block(c.Block); err != nil {
						return err
					}
				}
			}
		case "else":
			if !matched {
				if err := r.block(c.Block); err != nil {
					return err
				}
			}
		case "stop":
			r.stopped = true
		case "keep":
			r.keep = false
			if err := r.store(Action{Kind: Keep, Flags: r.flagsOf(c)}); err != nil {
				return err
			}
		case "discard":
			r.keep = false
		case "fileinto":
			if !c.copy {
				r.keep = false
			}
			if err := r.store(Action{Kind: FileInto, Arg: c.str, Flags: r.flagsOf(c)}); err != nil {
				return err
			}
		case "redirect":
			if !c.copy {
				r.keep = false
			}
			r.redirect++
			if r.redirect > MaxRedirects {
				return fmt.Errorf("%w: more than %d redirects", ErrRun, MaxRedirects)
			}
			if err := r.add(Action{Kind: Redirect, Arg: c.str}); err != nil {
				return err
			}
		case "reject", "ereject":
			r.keep = false
			if err := r.add(Action{Kind: c.Name, Arg: c.str}); err != nil {
				return err
			}
		case "vacation":
			if err := r.runVacation(c); err != nil {
				return err
			}
		case "setflag":
			r.flags = addFlags(nil, c.strs)
		case "addflag":
			r.flags = addFlags(r.flags, c.strs)
		case "removeflag":
			var kept []string
			for _, f := range r.flags {
				if !containsFold(c.strs, f) {
					kept = append(kept, f)
				}
			}
			r.flags = kept
		}
		if c.Name != "if" && c.Name != "elsif" && c.Name != "else" {
			matched = false
		}
	}
	return nil
}

// flagsOf gives the flags of a keep or fileinto: its :flags, else the internal
// variable (RFC 5232 §5).
func (r *runner) flagsOf(c *Command) []string {
	if c.has {
		return addFlags(nil, c.flags)
	}
	return append([]string(nil), r.flags...)
}

// addFlags adds flags not there yet; flags compare without regard to case (RFC 5232 §3).
func addFlags(list, add []string) []string {
	for _, f := range add {
		if !containsFold(list, f) {
			list = append(list, f)
		}
	}
	return list
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (r *runner) test(t *Test) bool {
	switch t.Name {
	case "true":
		return true
	case "false":
		return false
	case "not":
		return !r.test(t.Tests[0])
	case "allof":
		for _, x := range t.Tests {
			if !r.test(x) {
				return false
			}
		}
		return true
	case "anyof":
		for _, x := range t.Tests {
			if r.test(x) {
				return true
			}
		}
		return false
	case "exists":
		for _, h := range t.headers {
			if _, ok := r.msg.Header.Get(h); !ok {
				return false
			}
		}
		return true
	case "size":
		if t.over {
			return r.msg.Size > t.num
		}
		return r.msg.Size < t.num
	case "header":
		for _, h := range t.headers {
			for _, v := range r.msg.Header.Values(h) {
				// RFC 5228 §5.7: encoded words are decoded before comparing.
				if t.matchAny(mime.DecodeHeader(v)) {
					return true
				}
			}
		}
		return false
	case "address":
		for _, h := range t.headers {
			for _, v := range r.msg.Header.Values(h) {
				for _, a := range mime.ParseAddressList(v) {
					if a.Group {
						continue
					}
					addr := a.Mailbox
					if a.Host != "" {
						addr += "@" + a.Host
					}
					if p, ok := t.addressPart(addr); ok && t.matchAny(p) {
						return true
					}
				}
			}
		}
		return false
	case "envelope":
		for _, h := range t.headers {
			v := r.msg.To
			if strings.EqualFold(h, "from") {
				v = r.msg.From
			}
			// RFC 5228 §5.4: the null reverse-path is "" and matches only :all.
			if v == "" && t.part != ":all" {
				continue
			}
			if p, ok := t.addressPart(v); ok && t.matchAny(p) {
				return true
			}
		}
		return false
	case "hasflag":
		for _, f := range r.flags {
			if t.matchAny(f) {
				return true
			}
		}
		return false
	}
	return false
}

// addressPart picks the part of addr the test compares (RFC 5228 §2.7.4, RFC 5233 §4).
func (t *Test) addressPart(addr string) (string, bool) {
	local, domain := addr, ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		local, domain = addr[:at], addr[at+1:]
	}
	switch t.part {
	case ":localpart":
		return local, true
	case ":domain":
		return domain, true
	case ":user":
		if i := strings.IndexByte(local, '+'); i >= 0 {
			return local[:i], true
		}
		return local, true
	case ":detail":
		// RFC 5233 §4: without a separator the test fails.
		if i := strings.IndexByte(local, '+'); i >= 0 {
			return local[i+1:], true
		}
		return "", false
	}
	return addr, true
}

func (t *Test) matchAny(v string) bool {
	for _, k := range t.keys {
		if match(t.comparator, t.match, v, k) {
			return true
		}
	}
	return false
}

// match compares value with key by the comparator and match type (RFC 5228 §2.7.1).
func match(comparator, mt, value, key string) bool {
	fold := comparator == "i;ascii-casemap"
	if fold {
		value, key = asciiLower(value), asciiLower(key)
	}
	switch mt {
	case ":contains":
		return strings.Contains(value, key)
	case ":matches":
		return glob(value, key)
	}
	return value == key
}

// asciiLower folds ASCII letters only (RFC 4790 §9.2).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// glob matches "*" (any sequence) and "?" (one character), with "\" quoting
// (RFC 5228 §2.7.1), in time linear in len(v)*len(pat): the classic wildcard matcher
// that backtracks only to the last star.
func glob(v, pat string) bool {
	// Turn the pattern into runes marked as wildcards or literals.
	type pr struct {
		r    rune
		wild bool
	}
	var p []pr
	pr0 := []rune(pat)
	for i := 0; i < len(pr0); i++ {
		c := pr0[i]
		if c == '\\' && i+1 < len(pr0) {
			i++
			p = append(p, pr{pr0[i], false})
			continue
		}
		p = append(p, pr{c, c == '*' || c == '?'})
	}
	s := []rune(v)
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi].wild && p[pi].r == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi].wild && p[pi].r == '?' || !p[pi].wild && p[pi].r == s[si]):
			si++
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi].wild && p[pi].r == '*' {
		pi++
	}
	return pi == len(p)
}
