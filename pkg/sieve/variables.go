package sieve

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The variables extension (RFC 5229): the set command, ${name} and ${N} in strings,
// and the string test.

// Limits of variables (RFC 5229 §6 asks for at least 128 variables, names of 32
// characters and values of 4000).
const (
	// MaxVariables bounds the variables a script may name in set (and imap4flags'
	// variable arguments).
	MaxVariables = 128
	// MaxVariableName bounds a variable's name, in characters.
	MaxVariableName = 32
	// MaxVariableSize bounds a variable's value, in octets: a longer one is cut, on a
	// character boundary (RFC 5229 §6).
	MaxVariableSize = 4096
	// maxExpansion bounds a string after expansion, so that many references to long
	// values cannot make a huge one.
	maxExpansion = MaxScriptSize
)

// setArgs are set's arguments: the variable, its value before expansion and the
// modifiers in the order they apply.
type setArgs struct {
	name, value string
	mods        []string
}

// modifierPrecedence gives set's modifiers their precedence (RFC 5229 §4.1): higher
// applies first, and two of the same precedence are an error.
var modifierPrecedence = map[string]int{
	":lower": 40, ":upper": 40,
	":lowerfirst": 30, ":upperfirst": 30,
	":quotewildcard": 20,
	":length":        10,
}

// isIdentifier tells whether s is an identifier (RFC 5228 §8.1).
func isIdentifier(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlpha(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// variableName checks the name a command sets (set, and setflag's variable): a
// constant identifier (RFC 5229 §4: match variables cannot be set, and a namespace
// needs its extension), counted against MaxVariables.
func (s *Script) variableName(x Arg) error {
	if x.Kind != ArgString {
		return errAt(x.Pos, "a variable name is one string")
	}
	n := x.Strs[0]
	if !isIdentifier(n) {
		return errAt(x.Pos, "%q is not a variable name one can set", n)
	}
	if len(n) > MaxVariableName {
		return errAt(x.Pos, "variable name longer than %d characters", MaxVariableName)
	}
	if s.varNames == nil {
		s.varNames = map[string]bool{}
	}
	s.varNames[strings.ToLower(n)] = true
	if len(s.varNames) > MaxVariables {
		return errAt(x.Pos, "more than %d variables", MaxVariables)
	}
	return nil
}

// hasVariables tells whether str may change by expansion, so that a check of its
// constant form has to wait until the script runs.
func (s *Script) hasVariables(str string) bool {
	return s.Requires["variables"] && strings.Contains(str, "${")
}

// validateSet checks set [MODIFIER] <name: string> <value: string> (RFC 5229 §4).
func (s *Script) validateSet(c *Command) error {
	if err := s.need(c.Pos, "variables", "set"); err != nil {
		return err
	}
	if c.Block != nil || c.Tests != nil {
		return errAt(c.Pos, "set takes no block or test")
	}
	a, err := splitArgs(c.Args, nil)
	if err != nil {
		return err
	}
	set := &setArgs{}
	byPrec := map[int]string{}
	for tag, x := range a.tags {
		p, ok := modifierPrecedence[tag]
		if !ok {
			return errAt(x.Pos, "unexpected tag %s", tag)
		}
		if other, dup := byPrec[p]; dup {
			// RFC 5229 §4.1: two modifiers of one precedence are an error.
			return errAt(x.Pos, "set: %s and %s cannot be used together", other, tag)
		}
		byPrec[p] = tag
	}
	for _, p := range []int{40, 30, 20, 10} {
		if m, ok := byPrec[p]; ok {
			set.mods = append(set.mods, m)
		}
	}
	if len(a.pos) != 2 || a.pos[0].Kind != ArgString || a.pos[1].Kind != ArgString {
		return errAt(c.Pos, "set takes a name and a value, two strings")
	}
	if err := s.variableName(a.pos[0]); err != nil {
		return err
	}
	set.name, set.value = strings.ToLower(a.pos[0].Strs[0]), a.pos[1].Strs[0]
	c.set = set
	return nil
}

// validateString checks string [MATCH-TYPE] [COMPARATOR] <source: string-list>
// <key-list: string-list> (RFC 5229 §5).
func (s *Script) validateString(t *Test) error {
	if err := s.need(t.Pos, "variables", "string"); err != nil {
		return err
	}
	a, err := splitArgs(t.Args, matchValueTags)
	if err != nil {
		return err
	}
	if err := s.matchArgs(t, a, false); err != nil {
		return err
	}
	if err := wantStrings(t.Pos, a.pos, 2, t.Name); err != nil {
		return err
	}
	t.headers, t.keys = a.pos[0].Strs, a.pos[1].Strs
	return nil
}

// checkNamespaces refuses references to variables in a namespace (${ns.name}): no
// extension that defines one is supported (RFC 5229 §3).
func (s *Script) checkNamespaces() error {
	var args func([]Arg) error
	var tests func([]*Test) error
	var cmds func([]*Command) error
	args = func(as []Arg) error {
		for _, x := range as {
			for _, str := range x.Strs {
				for rest := str; ; {
					i := strings.Index(rest, "${")
					if i < 0 {
						break
					}
					rest = rest[i+2:]
					j := strings.IndexByte(rest, '}')
					if j < 0 {
						break
					}
					if ref := rest[:j]; strings.Contains(ref, ".") && isNamespaceRef(ref) {
						return errAt(x.Pos, "variable namespace in ${%s} is not supported", ref)
					}
				}
			}
		}
		return nil
	}
	tests = func(ts []*Test) error {
		for _, t := range ts {
			if err := args(t.Args); err != nil {
				return err
			}
			if err := tests(t.Tests); err != nil {
				return err
			}
		}
		return nil
	}
	cmds = func(cs []*Command) error {
		for _, c := range cs {
			if c.Name == "require" {
				continue
			}
			if err := args(c.Args); err != nil {
				return err
			}
			if err := tests(c.Tests); err != nil {
				return err
			}
			if err := cmds(c.Block); err != nil {
				return err
			}
		}
		return nil
	}
	return cmds(s.Commands)
}

// isNamespaceRef tells whether ref has the form namespace "." variable-name
// (RFC 5229 §3).
func isNamespaceRef(ref string) bool {
	parts := strings.Split(ref, ".")
	for i, p := range parts {
		if !isIdentifier(p) && !(i == len(parts)-1 && isNumber(p)) {
			return false
		}
	}
	return true
}

// expand replaces the references to variables in str by their values (RFC 5229 §3):
// ${name} (case-insensitive), ${N} the match variables; an unset one is empty, and
// text that is not a reference stays as it is. Values are not expanded again.
func (r *runner) expand(str string) string {
	if !r.variables || !strings.Contains(str, "${") {
		return str
	}
	var b strings.Builder
	for {
		i := strings.Index(str, "${")
		if i < 0 {
			b.WriteString(str)
			break
		}
		b.WriteString(str[:i])
		rest := str[i+2:]
		j := strings.IndexByte(rest, '}')
		if j < 0 || !(isIdentifier(rest[:j]) || isNumber(rest[:j])) {
			b.WriteString("${")
			str = rest
			continue
		}
		b.WriteString(r.lookup(rest[:j]))
		str = rest[j+1:]
		if b.Len() > maxExpansion {
			break
		}
	}
	return truncateUTF8(b.String(), maxExpansion)
}

// expandList expands every string of a list.
func (r *runner) expandList(list []string) []string {
	if !r.variables {
		return list
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = r.expand(s)
	}
	return out
}

func (r *runner) lookup(name string) string {
	if isNumber(name) {
		n, err := strconv.Atoi(name)
		if err != nil || n >= len(r.matched) {
			return ""
		}
		return r.matched[n]
	}
	return r.vars[strings.ToLower(name)]
}

func (r *runner) setVar(name, value string) {
	if r.vars == nil {
		r.vars = map[string]string{}
	}
	r.vars[name] = truncateUTF8(value, MaxVariableSize)
}

// set runs set: the value expanded, then the modifiers by precedence (RFC 5229 §4).
func (r *runner) set(c *Command) {
	v := r.expand(c.set.value)
	for _, m := range c.set.mods {
		switch m {
		case ":lower":
			v = strings.ToLower(v)
		case ":upper":
			v = strings.ToUpper(v)
		case ":lowerfirst", ":upperfirst":
			if first, n := utf8.DecodeRuneInString(v); n > 0 {
				if m == ":lowerfirst" {
					first = unicode.ToLower(first)
				} else {
					first = unicode.ToUpper(first)
				}
				v = string(first) + v[n:]
			}
		case ":quotewildcard":
			var b strings.Builder
			for _, ch := range v {
				if ch == '*' || ch == '?' || ch == '\\' {
					b.WriteByte('\\')
				}
				b.WriteRune(ch)
			}
			v = b.String()
		case ":length":
			v = strconv.Itoa(utf8.RuneCountInString(v))
		}
	}
	r.setVar(c.set.name, v)
}

// stringTest runs the string test: the expanded sources against the keys; for :count
// an empty source counts 0 and any other 1 (RFC 5229 §5).
func (r *runner) stringTest(t *Test) bool {
	src := r.expandList(t.headers)
	if t.match == ":count" {
		var nonEmpty []string
		for _, s := range src {
			if s != "" {
				nonEmpty = append(nonEmpty, s)
			}
		}
		src = nonEmpty
	}
	return r.compare(t, src)
}

// truncateUTF8 cuts s to at most n octets without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
