package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"postern/pkg/config"
)

// openLogFile makes [log] file master's standard error when [log] target is file, so
// that master's lines, every daemon's (which inherit it) and whatever a crashing daemon
// prints all go there, appended. The file is root's, readable by the admin group (for
// `mailctl log`), mode 0640. Rotate it with logrotate's copytruncate: every process
// holds it open in append mode, so a truncated file simply starts again at its
// beginning.
func openLogFile(cfg *config.Config) error {
	if cfg.Log.Target != config.LogFile {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Log.File), 0o755); err != nil {
		return fmt.Errorf("making the log file's directory: %w", err)
	}
	f, err := os.OpenFile(cfg.Log.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening the log file: %w", err)
	}
	defer f.Close()
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup(cfg.AdminGroup); err == nil {
			gid, _ := strconv.Atoi(g.Gid)
			f.Chown(0, gid)
		}
	}
	if err := unix.Dup3(int(f.Fd()), 2, 0); err != nil {
		return fmt.Errorf("making the log file master's standard error: %w", err)
	}
	return nil
}
