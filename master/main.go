// Command master is Postern's root supervisor, in the part Postfix's master(8) plays.
//
// master runs in the foreground (under systemd, Type=simple or Type=notify). It reads
// postern.toml, takes a lock on the spool so that only one master runs per instance,
// creates the spool and data directories with their owners and modes, binds every socket
// of every enabled daemon (inet listeners and the Unix sockets in <spool>/private and
// <spool>/control), and starts each daemon as its configured user with its sockets handed
// over the systemd way (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID). Because master holds the
// sockets, a daemon that dies and restarts loses no connection: clients wait in the
// kernel's backlog meanwhile. master restarts dead daemons with backoff, re-reads the
// configuration on SIGHUP (restarting only the daemons it affects), answers `mailctl
// status` on <spool>/control/master, and stops everything in order on SIGTERM. It never
// reads network input.
//
// How a child gets LISTEN_PID: the variable must hold the child's own pid, which is only
// known after fork. master therefore starts every daemon through itself: it forks and
// execs its own executable as `master -exec-child PROGRAM ARGS...` (already with the
// daemon's user, groups, descriptors and parent-death signal); that shim, first thing in
// main, sets LISTEN_PID to its pid and execve(2)s PROGRAM. execve keeps the pid, so the
// daemon finds LISTEN_PID equal to getpid(), exactly as under systemd (see spawn.go).
//
// Usage:
//
//	master [-c postern.toml] [-n]
//
// -n checks the configuration, the system users and the daemon programs, prints what
// master would bind and start, and exits without touching anything.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"postern/pkg/config"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFail   = 1 // master could not start or failed while running
	exitConfig = 2 // the command line or the configuration is wrong
)

func main() {
	// The shim must run before anything else looks at the descriptors it passes on.
	if len(os.Args) > 1 && os.Args[1] == execChildFlag {
		execChild(os.Args[2:])
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is master's command line; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", config.DefaultPath, "configuration `file`")
	dry := fs.Bool("n", false, "check the configuration, users and programs, print what would run, and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: master [-c postern.toml] [-n]\n\n"+
			"master starts and supervises Postern's daemons; see master(8).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "master: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitConfig
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "master: %v\n", err)
		return exitConfig
	}
	if *dry {
		return check(cfg, os.Geteuid() == 0, stdout)
	}
	if err := openLogFile(cfg); err != nil {
		fmt.Fprintf(stderr, "master: %v\n", err)
		return exitFail
	}
	m, err := newMaster(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "master: %v\n", err)
		return exitFail
	}
	if err := m.run(); err != nil {
		m.logger().Error("master stopped on an error", "err", err)
		return exitFail
	}
	return exitOK
}
