package sieve

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"postern/pkg/mime"
)

// Message is what a script sees of a message.
type Message struct {
	Header *mime.Header
	Size   int64
	// From and To are the envelope sender ("" for <>) and the recipient.
	From, To string
	// MIME is the parsed message, for the body test (RFC 5173); nil tests an empty body.
	// Its file must stay open while the script runs.
	MIME *mime.Message
	// Now is the time of delivery, for currentdate and the date test's default zone,
	// which is Now's location (RFC 5260 §4.1: the local time zone); zero means now.
	Now time.Time
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
	// variables (RFC 5229): on when the script requires it; vars by lower-case name,
	// matched the match variables ${0}, ${1} ... of the last successful :matches.
	variables bool
	vars      map[string]string
	matched   []string
	body      map[string][]string // what the body tests read, by transform and types
	limits    Limits
	now       time.Time // Message.Now, or the time the run started
}

// Run runs the script on m and returns the actions, the implicit keep (RFC 5228
// §2.10.2) included as a Keep action with the current flags when no action cancelled it.
// Fileinto the same folder twice, or keep and fileinto INBOX, store one copy (§2.10.3).
func (s *Script) Run(m *Message) ([]Action, error) {
	r := &runner{msg: m, keep: true, variables: s.Requires["variables"], limits: s.limits, now: m.Now}
	if r.now.IsZero() {
		r.now = time.Now()
	}
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
	if len(r.acts) >= r.limits.Actions {
		return fmt.Errorf("%w: more than %d actions", ErrRun, r.limits.Actions)
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
			if err := r.store(Action{Kind: FileInto, Arg: r.expand(c.str), Flags: r.flagsOf(c)}); err != nil {
				return err
			}
		case "redirect":
			if !c.copy {
				r.keep = false
			}
			r.redirect++
			if r.redirect > r.limits.Redirects {
				return fmt.Errorf("%w: more than %d redirects", ErrRun, r.limits.Redirects)
			}
			to := r.expand(c.str)
			if !strings.Contains(to, "@") {
				// RFC 5228 §4.2: only an address; a variable may have made another.
				return fmt.Errorf("%w: redirect to %q, not an address", ErrRun, to)
			}
			if err := r.add(Action{Kind: Redirect, Arg: to}); err != nil {
				return err
			}
		case "reject", "ereject":
			r.keep = false
			if err := r.add(Action{Kind: c.Name, Arg: r.expand(c.str)}); err != nil {
				return err
			}
		case "vacation":
			if err := r.runVacation(c); err != nil {
				return err
			}
		case "setflag":
			r.setFlags(c.flagVar, addFlags(nil, r.flagArgs(c.strs)))
		case "addflag":
			r.setFlags(c.flagVar, addFlags(r.flagsIn(c.flagVar), r.flagArgs(c.strs)))
		case "removeflag":
			rm := r.flagArgs(c.strs)
			var kept []string
			for _, f := range r.flagsIn(c.flagVar) {
				if !containsFold(rm, f) {
					kept = append(kept, f)
				}
			}
			r.setFlags(c.flagVar, kept)
		case "set":
			r.set(c)
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
		return addFlags(nil, r.flagArgs(c.flags))
	}
	return append([]string(nil), r.flags...)
}

// flagArgs expands a list of flags and splits it at spaces (RFC 5232 §3).
func (r *runner) flagArgs(list []string) []string { return splitFlags(r.expandList(list)) }

// flagsIn returns the flags of the variable name, or of the internal variable for "".
func (r *runner) flagsIn(name string) []string {
	if name == "" {
		return r.flags
	}
	return splitFlags([]string{r.vars[name]})
}

// setFlags sets the flags of the variable name, or of the internal variable for "":
// a variable holds them separated by spaces (RFC 5232 §3).
func (r *runner) setFlags(name string, flags []string) {
	if name == "" {
		r.flags = flags
		return
	}
	r.setVar(name, strings.Join(flags, " "))
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
		for _, h := range r.expandList(t.headers) {
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
		var vals []string
		for _, h := range r.expandList(t.headers) {
			for _, v := range pickIndex(r.msg.Header.Values(h), t.index, t.last) {
				// RFC 5228 §5.7: encoded words are decoded before comparing.
				vals = append(vals, mime.DecodeHeader(v))
			}
		}
		return r.compare(t, vals)
	case "address":
		var vals []string
		for _, h := range r.expandList(t.headers) {
			for _, v := range pickIndex(r.msg.Header.Values(h), t.index, t.last) {
				for _, a := range mime.ParseAddressList(v) {
					if a.Group {
						continue
					}
					addr := a.Mailbox
					if a.Host != "" {
						addr += "@" + a.Host
					}
					if p, ok := t.addressPart(addr); ok {
						vals = append(vals, p)
					}
				}
			}
		}
		return r.compare(t, vals)
	case "envelope":
		var vals []string
		for _, h := range r.expandList(t.headers) {
			var v string
			switch strings.ToLower(h) {
			case "from":
				v = r.msg.From
			case "to":
				v = r.msg.To
			default:
				continue // a part a variable named that the envelope does not have
			}
			// RFC 5228 §5.4: the null reverse-path is "" and matches only :all.
			if v == "" && t.part != ":all" {
				continue
			}
			if p, ok := t.addressPart(v); ok {
				vals = append(vals, p)
			}
		}
		return r.compare(t, vals)
	case "hasflag":
		if t.vars == nil {
			return r.compare(t, r.flags)
		}
		var flags []string
		for _, v := range t.vars {
			flags = addFlags(flags, r.flagsIn(v))
		}
		return r.compare(t, flags)
	case "string":
		return r.stringTest(t)
	case "body":
		return r.bodyTest(t)
	case "date", "currentdate":
		return r.dateTest(t)
	}
	return false
}

// compare tells whether the values pass the test's match against its keys: with
// :count, their number (RFC 5231 §4.2); else any value against any key. A successful
// :matches sets the match variables (RFC 5229 §3.2).
func (r *runner) compare(t *Test, vals []string) bool {
	keys := r.expandList(t.keys)
	if t.match == ":count" {
		n := strconv.Itoa(len(vals))
		for _, k := range keys {
			if relate(t.comparator, t.rel, n, k) {
				return true
			}
		}
		return false
	}
	for _, v := range vals {
		for _, k := range keys {
			if r.match(t, v, k) {
				return true
			}
		}
	}
	return false
}

// match compares one value with one key.
func (r *runner) match(t *Test, v, k string) bool {
	switch t.match {
	case ":value":
		return relate(t.comparator, t.rel, v, k)
	case ":matches":
		if !r.variables {
			return match(t.comparator, t.match, v, k)
		}
		caps, ok := globCapture(v, k, t.comparator == "i;ascii-casemap")
		if ok {
			r.matched = caps
		}
		return ok
	}
	return match(t.comparator, t.match, v, k)
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

// match compares value with key by the comparator and match type (RFC 5228 §2.7.1).
func match(comparator, mt, value, key string) bool {
	if comparator == "i;ascii-numeric" {
		// Only :is (validate refuses the others): equal as numbers (RFC 4790 §9.1.1).
		return numericCompare(value, key) == 0
	}
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
// (RFC 5228 §2.7.1).
func glob(v, pat string) bool {
	_, ok := globMatch(v, pat, false, false)
	return ok
}

// globCapture is glob for :matches with variables: fold compares ASCII letters
// without regard to case (i;ascii-casemap), and on a match it returns the match
// variables (RFC 5229 §3.2): ${0} the whole value, then what each wildcard matched, in
// the order of the pattern, each "*" taking as little as it can.
func globCapture(v, pat string, fold bool) ([]string, bool) {
	return globMatch(v, pat, fold, true)
}

// globMatch is the classic wildcard matcher that backtracks only to the last star, in
// time linear in len(v)*len(pat). at records where each element of the pattern matched
// on the path that succeeds, from which the captures are cut.
func globMatch(v, pat string, fold, capture bool) ([]string, bool) {
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
	eq := func(a, b rune) bool {
		if fold {
			if a >= 'A' && a <= 'Z' {
				a += 32
			}
			if b >= 'A' && b <= 'Z' {
				b += 32
			}
		}
		return a == b
	}
	var at []int
	if capture {
		at = make([]int, len(p)+1)
	}
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi].wild && p[pi].r == '*':
			if capture {
				at[pi] = si
			}
			star, mark = pi, si
			pi++
		case pi < len(p) && (p[pi].wild && p[pi].r == '?' || !p[pi].wild && eq(p[pi].r, s[si])):
			if capture {
				at[pi] = si
			}
			si++
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return nil, false
		}
	}
	for pi < len(p) && p[pi].wild && p[pi].r == '*' {
		if capture {
			at[pi] = si
		}
		pi++
	}
	if pi != len(p) {
		return nil, false
	}
	if !capture {
		return nil, true
	}
	at[len(p)] = len(s)
	caps := []string{v}
	for i, e := range p {
		if e.wild {
			caps = append(caps, string(s[at[i]:at[i+1]]))
		}
	}
	return caps, true
}
