package sieve

import "strings"

// validate checks require, the place of every command and the arguments of every
// command and test (RFC 5228 §2.10.5: errors are found before the script runs).
func (s *Script) validate() error {
	seenOther := false
	for _, c := range s.Commands {
		if c.Name == "require" {
			// RFC 5228 §3.2: require comes before every other command.
			if seenOther {
				return errAt(c.Pos, "require must come before other commands")
			}
			if len(c.Args) != 1 || c.Args[0].Kind == ArgTag || c.Args[0].Kind == ArgNum || c.Tests != nil || c.Block != nil {
				return errAt(c.Pos, "require takes one string list")
			}
			for _, e := range c.Args[0].Strs {
				if !supported(e) {
					// RFC 5228 §3.2: an unknown capability fails the script.
					return errAt(c.Args[0].Pos, "unsupported extension %q", e)
				}
				s.Requires[e] = true
			}
			continue
		}
		seenOther = true
	}
	if err := s.block(s.Commands, true); err != nil {
		return err
	}
	if s.Requires["variables"] {
		return s.checkNamespaces()
	}
	return nil
}

func supported(e string) bool {
	for _, x := range Extensions {
		if x == e {
			return true
		}
	}
	return false
}

func (s *Script) need(p Pos, ext, what string) error {
	if !s.Requires[ext] {
		return errAt(p, "%s needs require %q", what, ext)
	}
	return nil
}

func (s *Script) block(cmds []*Command, top bool) error {
	prev := ""
	for _, c := range cmds {
		if err := s.command(c, top, prev); err != nil {
			return err
		}
		prev = c.Name
	}
	return nil
}

// argList splits the arguments into tags (with the argument that follows some of them)
// and positional ones. withValue names the tags that take an argument.
type argSet struct {
	tags map[string]Arg // the tag's value (or the tag itself)
	pos  []Arg
}

func splitArgs(args []Arg, withValue map[string]ArgKind) (argSet, error) {
	a := argSet{tags: map[string]Arg{}}
	for i := 0; i < len(args); i++ {
		x := args[i]
		if x.Kind != ArgTag {
			a.pos = append(a.pos, x)
			continue
		}
		if len(a.pos) > 0 {
			// RFC 5228 §2.6.2: tagged arguments come before positional ones.
			return a, errAt(x.Pos, "tag %s after positional arguments", x.Tag)
		}
		if _, dup := a.tags[x.Tag]; dup {
			return a, errAt(x.Pos, "tag %s given twice", x.Tag)
		}
		if k, ok := withValue[x.Tag]; ok {
			if i+1 >= len(args) || args[i+1].Kind == ArgTag || (k == ArgNum) != (args[i+1].Kind == ArgNum) {
				return a, errAt(x.Pos, "tag %s needs an argument", x.Tag)
			}
			if k == ArgString && len(args[i+1].Strs) != 1 {
				return a, errAt(args[i+1].Pos, "tag %s takes one string", x.Tag)
			}
			a.tags[x.Tag] = args[i+1]
			i++
			continue
		}
		a.tags[x.Tag] = x
	}
	return a, nil
}

func (a argSet) only(allowed ...string) error {
	for t, x := range a.tags {
		ok := false
		for _, w := range allowed {
			ok = ok || w == t
		}
		if !ok {
			return errAt(x.Pos, "unexpected tag %s", t)
		}
	}
	return nil
}

func wantStrings(p Pos, args []Arg, n int, what string) error {
	if len(args) != n {
		return errAt(p, "%s takes %d string argument(s)", what, n)
	}
	for _, x := range args {
		if x.Kind != ArgString && x.Kind != ArgStringList {
			return errAt(x.Pos, "%s: expected a string", what)
		}
	}
	return nil
}

func oneString(x Arg, what string) error {
	if x.Kind != ArgString {
		return errAt(x.Pos, "%s takes a single string", what)
	}
	return nil
}

func (s *Script) command(c *Command, top bool, prev string) error {
	noBlock := func() error {
		if c.Block != nil {
			return errAt(c.Pos, "%s takes no block", c.Name)
		}
		if c.Tests != nil {
			return errAt(c.Pos, "%s takes no test", c.Name)
		}
		return nil
	}
	switch c.Name {
	case "require":
		if !top {
			return errAt(c.Pos, "require must come before other commands")
		}
		return nil
	case "if", "elsif", "else":
		if c.Name != "if" && prev != "if" && prev != "elsif" {
			// RFC 5228 §3.1.
			return errAt(c.Pos, "%s without if", c.Name)
		}
		if c.Block == nil {
			return errAt(c.Pos, "%s needs a block", c.Name)
		}
		if len(c.Args) != 0 {
			return errAt(c.Args[0].Pos, "%s takes no arguments", c.Name)
		}
		if c.Name == "else" {
			if c.Tests != nil {
				return errAt(c.Pos, "else takes no test")
			}
		} else {
			if len(c.Tests) != 1 {
				return errAt(c.Pos, "%s needs one test", c.Name)
			}
			if err := s.test(c.Tests[0]); err != nil {
				return err
			}
		}
		return s.block(c.Block, false)
	case "stop", "discard":
		if err := noBlock(); err != nil {
			return err
		}
		if len(c.Args) != 0 {
			return errAt(c.Args[0].Pos, "%s takes no arguments", c.Name)
		}
		return nil
	case "keep", "fileinto", "redirect":
		if err := noBlock(); err != nil {
			return err
		}
		a, err := splitArgs(c.Args, map[string]ArgKind{":flags": ArgStringList})
		if err != nil {
			return err
		}
		var allowed []string
		if x, ok := a.tags[":flags"]; ok {
			// RFC 5232 §5.
			if c.Name == "redirect" {
				return errAt(x.Pos, "redirect takes no :flags")
			}
			if err := s.need(x.Pos, "imap4flags", ":flags"); err != nil {
				return err
			}
			c.has, c.flags = true, x.Strs // split when run, after expansion
			allowed = append(allowed, ":flags")
		}
		if x, ok := a.tags[":copy"]; ok {
			// RFC 3894 §3.
			if c.Name == "keep" {
				return errAt(x.Pos, "keep takes no :copy")
			}
			if err := s.need(x.Pos, "copy", ":copy"); err != nil {
				return err
			}
			c.copy = true
			allowed = append(allowed, ":copy")
		}
		if err := a.only(allowed...); err != nil {
			return err
		}
		if c.Name == "keep" {
			if len(a.pos) != 0 {
				return errAt(a.pos[0].Pos, "keep takes no positional argument")
			}
			return nil
		}
		if c.Name == "fileinto" {
			if err := s.need(c.Pos, "fileinto", "fileinto"); err != nil {
				return err
			}
		}
		if len(a.pos) != 1 {
			return errAt(c.Pos, "%s takes one string", c.Name)
		}
		if err := oneString(a.pos[0], c.Name); err != nil {
			return err
		}
		c.str = a.pos[0].Strs[0]
		if c.Name == "redirect" && !strings.Contains(c.str, "@") && !s.hasVariables(c.str) {
			// RFC 5228 §4.2: the address must be syntactically valid.
			return errAt(a.pos[0].Pos, "redirect: %q is not an address", c.str)
		}
		return nil
	case "reject", "ereject":
		if err := noBlock(); err != nil {
			return err
		}
		if err := s.need(c.Pos, c.Name, c.Name); err != nil {
			return err
		}
		if len(c.Args) != 1 {
			return errAt(c.Pos, "%s takes one string", c.Name)
		}
		if err := oneString(c.Args[0], c.Name); err != nil {
			return err
		}
		c.str = c.Args[0].Strs[0]
		return nil
	case "vacation":
		return s.validateVacation(c)
	case "setflag", "addflag", "removeflag":
		if err := noBlock(); err != nil {
			return err
		}
		if err := s.need(c.Pos, "imap4flags", c.Name); err != nil {
			return err
		}
		// RFC 5232 §3: [<variablename: string>] <list-of-flags: string-list>, the
		// variable only with "variables".
		args := c.Args
		if len(args) == 2 {
			if err := s.need(args[0].Pos, "variables", c.Name+" with a variable"); err != nil {
				return err
			}
			if err := s.variableName(args[0]); err != nil {
				return err
			}
			c.flagVar = strings.ToLower(args[0].Strs[0])
			args = args[1:]
		}
		if err := wantStrings(c.Pos, args, 1, c.Name); err != nil {
			return err
		}
		c.strs = args[0].Strs // split when run, after expansion
		return nil
	case "set":
		return s.validateSet(c)
	}
	return errAt(c.Pos, "unknown command %s", c.Name)
}

// splitFlags splits the space-separated flags of a list (RFC 5232 §3).
func splitFlags(list []string) []string {
	var out []string
	for _, s := range list {
		out = append(out, strings.Fields(s)...)
	}
	return out
}

var matchTags = []string{":is", ":contains", ":matches", ":value", ":count"}

// matchValueTags are the tags of COMPARATOR, MATCH-TYPE and :index that take an argument.
var matchValueTags = map[string]ArgKind{":comparator": ArgString, ":value": ArgString, ":count": ArgString, ":index": ArgNum}
var partTags = []string{":all", ":localpart", ":domain", ":user", ":detail"}

// matchArgs checks [COMPARATOR] [MATCH-TYPE] [ADDRESS-PART] (RFC 5228 §2.7).
func (s *Script) matchArgs(t *Test, a argSet, parts bool) error {
	allowed := []string{":comparator"}
	t.comparator, t.match, t.part = "i;ascii-casemap", ":is", ":all"
	if x, ok := a.tags[":comparator"]; ok {
		c := x.Strs[0]
		switch c {
		case "i;octet", "i;ascii-casemap":
		case "i;ascii-numeric":
			// RFC 5228 §2.7.3: comparators beyond the two are required by name.
			if err := s.need(x.Pos, "comparator-"+c, "comparator "+c); err != nil {
				return err
			}
		default:
			// RFC 5228 §2.7.3: an unknown comparator is an error.
			return errAt(x.Pos, "unsupported comparator %q", c)
		}
		t.comparator = c
	}
	n := 0
	for _, m := range matchTags {
		if x, ok := a.tags[m]; ok {
			n++
			t.match = m
			allowed = append(allowed, m)
			if m == ":value" || m == ":count" {
				if err := s.relation(t, x); err != nil {
					return err
				}
			}
		}
	}
	if n > 1 {
		return errAt(t.Pos, "more than one match type")
	}
	if t.comparator == "i;ascii-numeric" && (t.match == ":contains" || t.match == ":matches") {
		// RFC 4790 §9.1: i;ascii-numeric offers equality and ordering, no substrings;
		// RFC 5228 §2.7.3: a match type the comparator lacks is an error.
		return errAt(t.Pos, "comparator i;ascii-numeric does not support %s", t.match)
	}
	idx, err := s.indexArgs(t, a)
	if err != nil {
		return err
	}
	allowed = append(allowed, idx...)
	if parts {
		n = 0
		for _, m := range partTags {
			if x, ok := a.tags[m]; ok {
				if m == ":user" || m == ":detail" {
					if err := s.need(x.Pos, "subaddress", m); err != nil {
						return err
					}
				}
				n++
				t.part = m
				allowed = append(allowed, m)
			}
		}
		if n > 1 {
			return errAt(t.Pos, "more than one address part")
		}
	}
	return a.only(allowed...)
}

func (s *Script) test(t *Test) error {
	if t.Name != "allof" && t.Name != "anyof" && t.Name != "not" && t.Tests != nil {
		return errAt(t.Pos, "%s takes no test", t.Name)
	}
	switch t.Name {
	case "true", "false":
		if len(t.Args) != 0 {
			return errAt(t.Args[0].Pos, "%s takes no arguments", t.Name)
		}
		return nil
	case "allof", "anyof", "not":
		if len(t.Args) != 0 {
			return errAt(t.Args[0].Pos, "%s takes no arguments", t.Name)
		}
		if len(t.Tests) == 0 || t.Name == "not" && len(t.Tests) != 1 {
			return errAt(t.Pos, "%s needs a test", t.Name)
		}
		for _, x := range t.Tests {
			if err := s.test(x); err != nil {
				return err
			}
		}
		return nil
	case "exists":
		if err := wantStrings(t.Pos, t.Args, 1, t.Name); err != nil {
			return err
		}
		t.headers = t.Args[0].Strs
		return nil
	case "size":
		a, err := splitArgs(t.Args, nil)
		if err != nil {
			return err
		}
		_, over := a.tags[":over"]
		_, under := a.tags[":under"]
		if over == under || len(a.tags) != 1 || len(a.pos) != 1 || a.pos[0].Kind != ArgNum {
			return errAt(t.Pos, "size takes :over or :under and a number")
		}
		t.over, t.num = over, a.pos[0].Num
		return nil
	case "header", "address", "envelope", "hasflag":
		if t.Name == "envelope" {
			if err := s.need(t.Pos, "envelope", "envelope"); err != nil {
				return err
			}
		}
		if t.Name == "hasflag" {
			if err := s.need(t.Pos, "imap4flags", "hasflag"); err != nil {
				return err
			}
		}
		a, err := splitArgs(t.Args, matchValueTags)
		if err != nil {
			return err
		}
		if err := s.matchArgs(t, a, t.Name == "address" || t.Name == "envelope"); err != nil {
			return err
		}
		if t.Name == "hasflag" {
			// RFC 5232 §4: [<variable-list: string-list>] <list-of-flags: string-list>,
			// the variables only with "variables".
			if len(a.pos) == 2 {
				if err := s.need(a.pos[0].Pos, "variables", "hasflag with variables"); err != nil {
					return err
				}
				for _, v := range a.pos[0].Strs {
					if err := s.variableName(Arg{Pos: a.pos[0].Pos, Kind: ArgString, Strs: []string{v}}); err != nil {
						return err
					}
					t.vars = append(t.vars, strings.ToLower(v))
				}
				a.pos = a.pos[1:]
			}
			if err := wantStrings(t.Pos, a.pos, 1, t.Name); err != nil {
				return err
			}
			t.keys = a.pos[0].Strs
			return nil
		}
		if err := wantStrings(t.Pos, a.pos, 2, t.Name); err != nil {
			return err
		}
		t.headers, t.keys = a.pos[0].Strs, a.pos[1].Strs
		if t.Name == "envelope" {
			for _, h := range t.headers {
				if l := strings.ToLower(h); l != "from" && l != "to" && !s.hasVariables(h) {
					// RFC 5228 §5.4: at least from and to; others are an error here.
					return errAt(a.pos[0].Pos, "unsupported envelope part %q", h)
				}
			}
		}
		return nil
	case "string":
		return s.validateString(t)
	case "body":
		return s.validateBody(t)
	case "date", "currentdate":
		return s.validateDate(t)
	}
	return errAt(t.Pos, "unknown test %s", t.Name)
}
