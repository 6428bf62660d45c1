package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"postern/pkg/config"
)

// These tests keep the manual pages from falling behind the code: every command that
// `mailctl --help` lists, and every option its `--help` shows, must be in mailctl(8);
// every key of the configuration (config.Config, walked by its toml tags) must be in
// postern.toml(5), under the heading of its table; and postern.toml(5) must not
// document keys that no longer exist.

const (
	mailctlPage = "../man/mailctl.8"
	configPage  = "../man/postern.toml.5"
)

// roffLine is one line of a man page in man(7) macros.
type roffLine struct {
	n    int    // line number, from 1
	text string // the line as written
}

func readPage(t *testing.T, path string) []roffLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the manual page: %v", err)
	}
	var out []roffLine
	for i, l := range strings.Split(string(data), "\n") {
		out = append(out, roffLine{n: i + 1, text: l})
	}
	return out
}

var (
	fontEscape = regexp.MustCompile(`\\f(\[[^\]]*\]|\(..|.)`)
	macroName  = regexp.MustCompile(`^\.[A-Za-z]+\s*`)
)

// plain is the text of a roff line without its macro, font changes, quotes and the
// escapes man pages use for dashes and zero-width spaces: `.BI "user add " address`
// becomes "user add address".
func plain(line string) string {
	s := macroName.ReplaceAllString(line, "")
	s = fontEscape.ReplaceAllString(s, "")
	s = strings.NewReplacer(`\-`, "-", `\&`, "", `\(dq`, `"`, `"`, "", `\ `, " ").Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// tags returns the tag lines of a page: the line after each .TP.
func tags(page []roffLine) []roffLine {
	var out []roffLine
	for i, l := range page {
		if strings.HasPrefix(l.text, ".TP") && i+1 < len(page) {
			out = append(out, roffLine{n: page[i+1].n, text: plain(page[i+1].text)})
		}
	}
	return out
}

// helpCommands runs `mailctl --help` and returns the commands it lists ("status",
// "queue list" ...): the lower-case words at the start of each line of the list.
func helpCommands(t *testing.T) []string {
	t.Helper()
	ta := newTestApp(t, "")
	if code := ta.run("--help"); code != 0 {
		t.Fatalf("mailctl --help: exit %d: %s", code, ta.err)
	}
	_, list, ok := strings.Cut(ta.out.String(), "Commands:\n")
	if !ok {
		t.Fatalf("mailctl --help lists no commands:\n%s", ta.out)
	}
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	var cmds []string
	for _, line := range strings.Split(list, "\n") {
		if !strings.HasPrefix(line, "  ") {
			continue
		}
		// The summary follows the name and its arguments after two spaces; the name
		// is the lower-case words the head starts with (up to three: spam reports
		// list).
		head, _, _ := strings.Cut(strings.TrimSpace(line), "  ")
		var name []string
		for _, w := range strings.Fields(head) {
			if !word.MatchString(w) || len(name) == 3 {
				break
			}
			name = append(name, w)
		}
		if len(name) > 0 {
			cmds = append(cmds, strings.Join(name, " "))
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found only %d commands in mailctl --help (the parser is out of date?): %q", len(cmds), cmds)
	}
	return cmds
}

// helpOptions runs `mailctl COMMAND --help` and returns the options it lists ("--quota").
func helpOptions(t *testing.T, cmd string) []string {
	t.Helper()
	ta := newTestApp(t, "")
	if code := ta.run(append(strings.Fields(cmd), "--help")...); code != 0 {
		t.Fatalf("mailctl %s --help: exit %d: %s", cmd, code, ta.err)
	}
	_, opts, ok := strings.Cut(ta.out.String(), "\nOptions:\n")
	if !ok {
		return nil
	}
	var out []string
	for _, line := range strings.Split(opts, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "--") && strings.HasPrefix(line, "  --") {
			out = append(out, f[0])
		}
	}
	return out
}

func TestManPageMailctl(t *testing.T) {
	page := readPage(t, mailctlPage)
	cmds := helpCommands(t)
	// Where each command's entry starts: the tag line that begins with its name.
	start := map[string]int{}
	tagged := tags(page)
	for _, cmd := range cmds {
		for _, tg := range tagged {
			if tg.text == cmd || strings.HasPrefix(tg.text, cmd+" ") {
				start[cmd] = tg.n
				break
			}
		}
		if start[cmd] == 0 {
			t.Errorf("%s does not document `mailctl %s`: add a .TP entry whose tag begins with %q", mailctlPage, cmd, cmd)
		}
	}
	// An entry ends where the next command's entry or the next section begins.
	ends := []int{}
	for _, n := range start {
		ends = append(ends, n)
	}
	for _, l := range page {
		if strings.HasPrefix(l.text, ".SH") || strings.HasPrefix(l.text, ".SS") {
			ends = append(ends, l.n)
		}
	}
	ends = append(ends, len(page)+1)
	sort.Ints(ends)
	for _, cmd := range cmds {
		from := start[cmd]
		if from == 0 {
			continue
		}
		to := ends[sort.SearchInts(ends, from+1)]
		var entry strings.Builder
		for _, l := range page[from-1 : to-1] {
			entry.WriteString(plain(l.text) + "\n")
		}
		for _, opt := range helpOptions(t, cmd) {
			if !strings.Contains(entry.String(), opt) {
				t.Errorf("%s:%d: the entry of `mailctl %s` does not document its option %s", mailctlPage, from, cmd, opt)
			}
		}
	}
	// The other way round: every entry of COMMANDS names a command that exists.
	known, groups := map[string]bool{}, map[string]bool{}
	for _, c := range cmds {
		known[c] = true
		if g, _, ok := strings.Cut(c, " "); ok {
			groups[g] = true
		}
	}
	inCommands := false
	for i, l := range page {
		if strings.HasPrefix(l.text, ".SH") {
			inCommands = plain(l.text) == "COMMANDS"
		}
		if !inCommands || !strings.HasPrefix(l.text, ".TP") || i+1 >= len(page) {
			continue
		}
		f := strings.Fields(plain(page[i+1].text))
		if len(f) == 0 || strings.HasPrefix(f[0], "-") {
			continue // an option of the command above
		}
		name := f[0]
		if groups[name] && len(f) > 1 {
			name += " " + f[1]
			if !known[name] && len(f) > 2 {
				name += " " + f[2] // a command of three words
			}
		}
		if !known[name] {
			t.Errorf("%s:%d documents `mailctl %s`, which mailctl --help does not list", mailctlPage, page[i+1].n, name)
		}
	}
	var all strings.Builder
	for _, l := range page {
		all.WriteString(plain(l.text) + "\n")
	}
	for _, opt := range []string{"-c", "--version", "--help", "POSTERN_CONFIG"} {
		if !strings.Contains(all.String(), opt) {
			t.Errorf("%s does not document %s", mailctlPage, opt)
		}
	}
}

// configKeys walks a configuration type by its toml tags and returns every key as
// "table.key" ("" table for the top level), and the set of tables that are structs. A
// map of structs (the [services] table) is a table per name, written "services.name"; a
// slice of structs (an array of tables, [[tls.certificates]]) is one table.
func configKeys(typ reflect.Type, table string, keys map[string]bool, tables map[string]bool) {
	tables[table] = true
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		path := name
		if table != "" {
			path = table + "." + name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		elem := func(t reflect.Type) reflect.Type {
			t = t.Elem()
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			return t
		}
		switch {
		case ft.Kind() == reflect.Struct:
			configKeys(ft, path, keys, tables)
		case ft.Kind() == reflect.Slice && elem(ft).Kind() == reflect.Struct:
			configKeys(elem(ft), path, keys, tables)
		case ft.Kind() == reflect.Map && elem(ft).Kind() == reflect.Struct:
			configKeys(elem(ft), path+".name", keys, tables)
		default:
			keys[path] = true
		}
	}
}

var tableHeading = regexp.MustCompile(`\[+\s*([A-Za-z0-9_.-]+)\s*\]+`)

// documentedKeys reads postern.toml(5): each .SH or .SS heading that names a table in
// brackets ("[smtpd]", "[services.NAME]", "[[tls.certificates]]") opens that table, the
// heading TOP-LEVEL KEYS the top level, and any other heading ends the keys; the tag of
// each .TP entry under it is a key (its first word).
func documentedKeys(page []roffLine) map[string]int {
	out := map[string]int{}
	table, inKeys := "", false
	for i, l := range page {
		if strings.HasPrefix(l.text, ".SH") || strings.HasPrefix(l.text, ".SS") {
			h := plain(l.text)
			switch m := tableHeading.FindStringSubmatch(h); {
			case m != nil:
				table, inKeys = strings.ToLower(m[1]), true
			case strings.EqualFold(h, "TOP-LEVEL KEYS"):
				table, inKeys = "", true
			default:
				inKeys = false
			}
			continue
		}
		if !inKeys || !strings.HasPrefix(l.text, ".TP") || i+1 >= len(page) {
			continue
		}
		f := strings.Fields(plain(page[i+1].text))
		if len(f) == 0 {
			continue
		}
		key := f[0]
		if table != "" {
			key = table + "." + key
		}
		if _, ok := out[key]; !ok {
			out[key] = page[i+1].n
		}
	}
	return out
}

func TestManPageConfigKeys(t *testing.T) {
	keys, tables := map[string]bool{}, map[string]bool{}
	configKeys(reflect.TypeOf(config.Config{}), "", keys, tables)
	if len(keys) < 20 {
		t.Fatalf("found only %d keys in config.Config (the walker is out of date?)", len(keys))
	}
	page := readPage(t, configPage)
	doc := documentedKeys(page)
	var missing []string
	for k := range keys {
		if _, ok := doc[k]; !ok {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		table, key := "", k
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			table, key = k[:i], k[i+1:]
		}
		where := "TOP-LEVEL KEYS"
		if table != "" {
			where = "[" + strings.Replace(table, ".name", ".NAME", 1) + "]"
		}
		t.Errorf("%s does not document the key %s: add a .TP entry for %q (type, default, meaning) under the heading %s",
			filepath.Base(configPage), strings.Replace(k, ".name.", ".NAME.", 1), key, where)
	}
	// The other way round: a key documented in a table that exists, but not in the code.
	for k, n := range doc {
		table := ""
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			table = k[:i]
		}
		if tables[table] && !keys[k] {
			t.Errorf("%s:%d documents %s, which is no key of config.Config", configPage, n, k)
		}
	}
}

// TestManPagesRender formats every page of man/ the way man(1) does on an 80-column
// terminal and fails on any warning of groff (a macro misused, a line or table that does
// not fit), and checks that postern(7), the entry point, lists every other page.
func TestManPagesRender(t *testing.T) {
	pages, err := filepath.Glob("../man/*.[1-9]")
	if err != nil || len(pages) < 3 {
		t.Fatalf("finding the manual pages: %v (found %d)", err, len(pages))
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("groff is missing: .ci/run must install the Debian package groff-base")
		}
		t.Skip("groff not installed (apt-get install groff-base); skipping")
	}
	for _, p := range pages {
		// man-db: -t (tbl), -mandoc, -rLL for the terminal's width less 2 columns;
		// --warnings means -wmac.
		cmd := exec.Command(groff, "-t", "-mandoc", "-Tutf8", "-rLL=78n", "-wmac", "-ww", "-z", p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("%s does not render cleanly (%v):\n%s", p, err, stderr.String())
		}
	}
	index := readPage(t, "../man/postern.7")
	var seeAlso strings.Builder
	in := false
	for _, l := range index {
		if strings.HasPrefix(l.text, ".SH") {
			in = plain(l.text) == "SEE ALSO"
			continue
		}
		if in {
			seeAlso.WriteString(strings.ReplaceAll(plain(l.text), " (", "(") + " ")
		}
	}
	for _, p := range pages {
		base := filepath.Base(p)
		i := strings.LastIndexByte(base, '.')
		ref := base[:i] + "(" + base[i+1:] + ")"
		if base != "postern.7" && !strings.Contains(seeAlso.String(), ref) {
			t.Errorf("the SEE ALSO of man/postern.7 does not list %s", ref)
		}
	}
}

// TestManPageTags checks the parsing the two tests above rely on.
func TestManPageTags(t *testing.T) {
	for in, want := range map[string]string{
		`.BI "user add " address " \fR[\fB\-\-quota \fIsize\fR]"`: "user add address [--quota size]",
		`.B config check`: "config check",
		`.BR max_recipients " (integer, default 100)"`: "max_recipients (integer, default 100)",
		`.B \-\-password\-stdin`:                       "--password-stdin",
	} {
		if got := plain(in); got != want {
			t.Errorf("plain(%q) = %q, want %q", in, got, want)
		}
	}
	doc := documentedKeys([]roffLine{
		{1, ".SH TOP-LEVEL KEYS"}, {2, ".TP"}, {3, `.BR hostname " (string)"`},
		{4, ".SH [smtpd]"}, {5, ".TP"}, {6, `.BR timeout " (duration)"`},
		{7, ".SS [services.NAME]"}, {8, ".TP"}, {9, ".B enable"},
		{10, ".SH VALUES"}, {11, ".TP"}, {12, ".I string"},
	})
	want := map[string]int{"hostname": 3, "smtpd.timeout": 6, "services.name.enable": 9}
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("documentedKeys = %v, want %v", doc, want)
	}
}
