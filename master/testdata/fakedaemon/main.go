// Command fakedaemon stands in for a Postern daemon in master's tests. It takes the
// sockets master passes (through pkg/daemon, as a real daemon does), answers every
// connection on each of them with one line "<name> <socket name> <pid>", and writes a
// JSON report of what it received into the report directory. On SIGTERM it writes a
// marker file and exits 0, unless -ignore-term makes it ignore SIGTERM.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"postern/pkg/daemon"
)

// Report is what the fake daemon writes into <report>/<name>.json.
type Report struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	PPID      int      `json:"ppid"`
	UID       int      `json:"uid"`
	ListenPID string   `json:"listen_pid"`
	Listeners []string `json:"listeners"`
	Args      []string `json:"args"`
	User      string   `json:"user"`
	GID       int      `json:"gid"`
	Groups    []int    `json:"groups"`
}

func main() {
	config := flag.String("c", "", "configuration file (ignored)")
	name := flag.String("name", "", "daemon name")
	report := flag.String("report", "", "directory for the report")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	flag.Parse()
	_ = config
	r := Report{Name: *name, PID: os.Getpid(), PPID: os.Getppid(), UID: os.Getuid(), ListenPID: os.Getenv("LISTEN_PID"), Args: os.Args,
		User: os.Getenv("USER"), GID: os.Getgid()}
	r.Groups, _ = os.Getgroups()
	ls, err := daemon.Listeners()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakedaemon:", err)
		os.Exit(1)
	}
	for n, l := range ls {
		r.Listeners = append(r.Listeners, n)
		go serve(*name, n, l)
	}
	slices.Sort(r.Listeners)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	// SIGHUP (which master passes on to daemons with ReloadsOnHUP) leaves a marker.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	go func() {
		for range hups {
			os.WriteFile(filepath.Join(*report, fmt.Sprintf("%s.%d.hup", *name, os.Getpid())), nil, 0o644)
		}
	}()
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	b, _ := json.Marshal(r)
	path := filepath.Join(*report, fmt.Sprintf("%s.json", *name))
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fakedaemon:", err)
		os.Exit(1)
	}
	os.Rename(tmp, path)
	<-sigs
	os.WriteFile(filepath.Join(*report, fmt.Sprintf("%s.%d.term", *name, os.Getpid())), nil, 0o644)
	os.Exit(0)
}

func serve(name, socket string, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%s %s %d\n", name, socket, os.Getpid())
		c.Close()
	}
}
