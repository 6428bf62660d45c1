package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"postern/pkg/config"
)

// check is `master -n`: it resolves the users and owners, checks the daemon programs,
// and prints what master would bind and start, without creating, binding or starting
// anything. It returns the exit status: 0 when master could start, 1 when not.
func check(cfg *config.Config, root bool, w io.Writer) int {
	fmt.Fprintf(w, "config  %s\nspool   %s\ndata    %s\n", cfg.Path, cfg.SpoolDir, cfg.DataDir)
	status := exitOK
	problem := func(format string, args ...any) {
		fmt.Fprintf(w, "problem: "+format+"\n", args...)
		status = exitFail
	}
	ids, err := resolveIdentities(cfg, root)
	if err != nil {
		problem("%v", err)
		return status
	}
	if _, _, err := resolveOwners(cfg, root, ids); err != nil {
		problem("%v", err)
	}
	if !root {
		fmt.Fprintf(w, "not root: every daemon would run as %s\n", currentIdentity().User)
	}
	if self, err := os.Executable(); err != nil {
		problem("finding master's own program: %v", err)
	} else if err := checkProgram(self); err != nil {
		problem("%v", err)
	}
	for _, d := range config.Daemons {
		if !enabled(cfg, d.Name) {
			fmt.Fprintf(w, "%-8s disabled\n", d.Name)
			continue
		}
		var socks []string
		for _, sp := range socketsFor(cfg, d) {
			if sp.Network == "tcp" {
				socks = append(socks, sp.String())
			} else {
				socks = append(socks, sp.Name)
			}
		}
		prog := cfg.Program(d.Name)
		args := append([]string{"-c", cfg.Path}, cfg.Service(d.Name).Args...)
		fmt.Fprintf(w, "%-8s user %s: %s %s; sockets: %s\n", d.Name, ids[d.Name].User, prog, strings.Join(args, " "), strings.Join(socks, " "))
		if err := checkProgram(prog); err != nil {
			problem("%s: %v", d.Name, err)
		}
	}
	if status == exitOK {
		fmt.Fprintln(w, "ok")
	}
	return status
}
