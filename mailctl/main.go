// Command mailctl is the administrator's command line of Postern.
//
// It creates instances (init), validates the configuration (config check), and talks to
// the running daemons over their control sockets in <spool>/control: authd for domains,
// accounts and aliases, qmgr for the queue, master for the daemons' status. Only init
// touches files that a daemon owns, and only before any daemon runs. See mailctl(8).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the operation failed
	exitUsage = 2 // the command line was wrong
)

func main() {
	a := newApp()
	os.Exit(a.run(os.Args[1:]))
}

// app is one run of mailctl, with everything that tests replace.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// root says whether mailctl may act as root: create system users and chown files.
	root bool
	// executable returns the path of the running program (bin_dir of a dev instance).
	executable func() (string, error)
	// terminal is the file to prompt for passwords on, when it is a terminal.
	terminal *os.File
	// tool runs a shadow tool (useradd, groupadd, usermod) and returns its output; nil
	// runs the real one.
	tool func(name string, args ...string) ([]byte, error)

	// configPath is the -c flag; configSet says whether -c or POSTERN_CONFIG gave it.
	configPath string
	configSet  bool
}

func newApp() *app {
	return &app{
		stdin:      os.Stdin,
		stdout:     os.Stdout,
		stderr:     os.Stderr,
		getenv:     os.Getenv,
		root:       os.Geteuid() == 0,
		executable: os.Executable,
		terminal:   os.Stdin,
	}
}

// usageError is a mistake on the command line: it is reported with the usage of the
// command and exit status 2.
type usageError struct {
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run executes the command line args (without the program name) and returns the exit
// status.
func (a *app) run(args []string) int {
	a.configPath = "/etc/postern/postern.toml"
	if p := a.getenv("POSTERN_CONFIG"); p != "" {
		a.configPath, a.configSet = p, true
	}
	fs := flag.NewFlagSet("mailctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.configFlag(fs)
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.mainUsage(a.stdout)
			return exitOK
		}
		fmt.Fprintf(a.stderr, "mailctl: %v\n\n", err)
		a.mainUsage(a.stderr)
		return exitUsage
	}
	if *version {
		fmt.Fprintln(a.stdout, "mailctl", buildVersion())
		return exitOK
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprintf(a.stderr, "mailctl: no command given\n\n")
		a.mainUsage(a.stderr)
		return exitUsage
	}
	if rest[0] == "help" {
		return a.help(rest[1:])
	}
	cmd, n := lookup(rest)
	if cmd == nil {
		if n == 0 {
			fmt.Fprintf(a.stderr, "mailctl: unknown command %q\n\n", rest[0])
			a.mainUsage(a.stderr)
			return exitUsage
		}
		// A group (queue, user ...) without a known subcommand.
		group := rest[0]
		if len(rest) > 1 && isHelpFlag(rest[1]) {
			a.groupUsage(a.stdout, group)
			return exitOK
		}
		if len(rest) == 1 {
			fmt.Fprintf(a.stderr, "mailctl %s: which one?\n\n", group)
		} else {
			fmt.Fprintf(a.stderr, "mailctl %s: unknown command %q\n\n", group, rest[1])
		}
		a.groupUsage(a.stderr, group)
		return exitUsage
	}
	err := a.execute(cmd, rest[n:])
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		cmd.usage(a.stdout, true)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "mailctl %s: %s\n\n", cmd.name, ue.msg)
		cmd.usage(a.stderr, false)
		return exitUsage
	default:
		fmt.Fprintf(a.stderr, "mailctl %s: %v\n", cmd.name, err)
		return exitFail
	}
}

func isHelpFlag(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// configFlag adds -c to a flag set. Every subcommand accepts it as well, so that
// `mailctl status -c FILE` works like `mailctl -c FILE status`.
func (a *app) configFlag(fs *flag.FlagSet) {
	fs.Func("c", "configuration `FILE` (default $POSTERN_CONFIG or /etc/postern/postern.toml)", func(s string) error {
		if s == "" {
			return errors.New("empty file name")
		}
		a.configPath, a.configSet = s, true
		return nil
	})
}

// execute parses the subcommand's flags and arguments and runs it.
func (a *app) execute(cmd *command, args []string) error {
	fs := flag.NewFlagSet("mailctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.configFlag(fs)
	o := &options{}
	if cmd.flags != nil {
		cmd.flags(fs, o)
	}
	pos, placed, err := parseInterspersed(fs, args, cmd.placed)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	o.placed = placed
	if len(pos) < cmd.minArgs {
		return usagef("missing arguments (expected %s)", cmd.args)
	}
	if cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs {
		// Never repeat the extra arguments: one of them may be a password someone
		// typed where it does not belong.
		if cmd.maxArgs == 0 {
			return usagef("takes no arguments")
		}
		return usagef("too many arguments (expected %s)%s", cmd.args, cmd.extraHint)
	}
	return cmd.run(a, o, pos)
}

// placedFlag is a flag whose place among the positional arguments matters (command's
// placed): At positional arguments came before it.
type placedFlag struct {
	Name string
	At   int
}

// parseInterspersed parses flags wherever they are among the arguments, so that both
// `user add --password-stdin a@b` and `user add a@b --password-stdin` work. "--" ends
// the flags. The flags named in placed (without a value: "-name" or "--name") are not
// given to fs: they are returned in order, each with the number of positional arguments
// before it.
func parseInterspersed(fs *flag.FlagSet, args []string, placed []string) ([]string, []placedFlag, error) {
	var pos []string
	var marks []placedFlag
	for {
		// The words up to the next placed flag, or all of them.
		n, name := len(args), ""
		for i, w := range args {
			if w == "--" {
				break
			}
			nm, err := placedName(w, placed)
			if err != nil {
				return nil, nil, err
			}
			if nm != "" {
				n, name = i, nm
				break
			}
		}
		p, err := parseWords(fs, args[:n])
		if err != nil {
			return nil, nil, err
		}
		pos = append(pos, p...)
		if n == len(args) {
			return pos, marks, nil
		}
		marks = append(marks, placedFlag{Name: name, At: len(pos)})
		args = args[n+1:]
	}
}

// placedName returns the name of the placed flag that w is, or "".
func placedName(w string, placed []string) (string, error) {
	name, ok := strings.CutPrefix(w, "-")
	if !ok {
		return "", nil
	}
	name = strings.TrimPrefix(name, "-")
	name, _, value := strings.Cut(name, "=")
	if !slices.Contains(placed, name) {
		return "", nil
	}
	if value {
		return "", fmt.Errorf("--%s takes no value", name)
	}
	return name, nil
}

// parseWords is parseInterspersed without placed flags.
func parseWords(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// help answers `mailctl help [COMMAND...]`.
func (a *app) help(words []string) int {
	if len(words) == 0 {
		a.mainUsage(a.stdout)
		return exitOK
	}
	cmd, n := lookup(words)
	switch {
	case cmd != nil:
		cmd.usage(a.stdout, true)
		return exitOK
	case n > 0:
		a.groupUsage(a.stdout, words[0])
		return exitOK
	}
	fmt.Fprintf(a.stderr, "mailctl help: unknown command %q\n\n", strings.Join(words, " "))
	a.mainUsage(a.stderr)
	return exitUsage
}

func (a *app) mainUsage(w io.Writer) {
	fmt.Fprint(w, `usage: mailctl [-c FILE] COMMAND [ARGS...]

mailctl administers a Postern mail system. -c names the configuration file (default
$POSTERN_CONFIG, else /etc/postern/postern.toml); every command also accepts it.

Commands:`)
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name)+1+len(shortArgs(c.args)))
	}
	group := "-"
	for _, c := range commands {
		if c.group() != group {
			fmt.Fprintln(w)
			group = c.group()
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimSpace(c.name+" "+shortArgs(c.args)), c.summary)
	}
	fmt.Fprint(w, `
"mailctl help COMMAND" or "mailctl COMMAND --help" tells more about one command.
"mailctl --version" prints the version. See mailctl(8) and postern.toml(5).
`)
}

func (a *app) groupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "usage: mailctl %s COMMAND\n\n", group)
	width := 0
	for _, c := range commands {
		if c.group() == group {
			width = max(width, len(c.name)+1+len(shortArgs(c.args)))
		}
	}
	for _, c := range commands {
		if c.group() == group {
			fmt.Fprintf(w, "  %-*s  %s\n", width, strings.TrimSpace(c.name+" "+shortArgs(c.args)), c.summary)
		}
	}
	fmt.Fprintf(w, "\n\"mailctl help %s COMMAND\" tells more about one.\n", group)
}

// version is stamped by the Makefile at build time (-ldflags -X main.version=...): the
// output of git describe, a tag and commit.
var version string

// buildVersion returns the version stamped at build time, else the module version and
// VCS revision the Go toolchain recorded.
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}
