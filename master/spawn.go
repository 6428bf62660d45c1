package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// parentPIDEnv tells the shim master's pid, so that it can tell whether master died
// before the shim set its parent-death signal.
const parentPIDEnv = "POSTERN_MASTER_PID"

// execChildFlag makes master the exec shim of a child: `master -exec-child PROGRAM
// ARGS...` sets LISTEN_PID to its own pid and execs PROGRAM with argv PROGRAM ARGS....
//
// Why a shim: sd_listen_fds(3) semantics want LISTEN_PID to be the pid of the process
// that owns the descriptors, and a Go program cannot run code between fork and exec.
// The shim is the same executable as master (no second program to install) and runs
// already as the daemon's user, in the daemon's process: execve keeps the pid, the
// descriptors 3.. (they are not close-on-exec), the credentials and the parent-death
// signal (PR_SET_PDEATHSIG survives execve of a program that is not set-id). The cost is
// one extra execve of master per daemon start.
const execChildFlag = "-exec-child"

// init pins the shim's main goroutine to the process's main thread.
//
// The parent-death signal is a property of a thread, not of the process: the kernel
// sets it on the thread that forked (the main thread of the shim) and gives every other
// thread none (copy_process clears pdeath_signal). When a thread other than the leader
// calls execve(2), it becomes the leader and keeps its own, empty, setting. The Go
// runtime may move the main goroutine to another thread before it reaches execChild,
// most often on a loaded machine, and the daemon then outlived a master killed with -9.
// A LockOSThread in init keeps main on the main thread (runtime.LockOSThread).
func init() {
	if len(os.Args) > 1 && os.Args[1] == execChildFlag {
		runtime.LockOSThread()
	}
}

// execChild is the shim; it never returns.
func execChild(args []string) {
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, "master %s: no program to run\n", execChildFlag)
		os.Exit(127)
	}
	if os.Getenv("LISTEN_FDS") != "" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	// Set the parent-death signal again on this very thread, the one that execs, in
	// case it is not the thread fork gave it to (see init); and if master died
	// meanwhile, the shim is an orphan already and must not start the daemon.
	ppid := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "master %s: setting the parent-death signal: %v\n", execChildFlag, err)
		os.Exit(126)
	}
	if want := os.Getenv(parentPIDEnv); want != "" && want != strconv.Itoa(ppid) {
		os.Exit(126) // master is gone
	}
	os.Unsetenv(parentPIDEnv)
	err := syscall.Exec(args[0], args, os.Environ())
	fmt.Fprintf(os.Stderr, "master: cannot run %s as uid %d: %v\n", args[0], os.Getuid(), err)
	if errors.Is(err, syscall.ENOENT) {
		os.Exit(127)
	}
	os.Exit(126)
}

// spawnRequest describes one child to start.
type spawnRequest struct {
	Program string
	Args    []string // after argv[0]
	// ID is the user to run as; nil keeps master's.
	ID *identity
	// Files are passed as descriptors 3, 4, ... and named by Names in LISTEN_FDNAMES.
	Files []*os.File
	Names []string
}

type spawnCall struct {
	req   spawnRequest
	reply chan spawnResult
}

type spawnResult struct {
	p   *os.Process
	err error
}

// spawner forks every child from one OS thread that lives as long as master.
//
// Children get PR_SET_PDEATHSIG (SIGKILL) so that none outlives a master killed with -9
// (they would hold the inet ports and keep a new master from binding them). Linux sends
// that signal when the *thread* that forked the child exits, not the process; Go may end
// a thread when a goroutine locked to it returns. The spawner's goroutine locks its
// thread and never returns (its channel is never closed), so that thread, the parent of
// every child, ends only with master.
type spawner struct {
	self  string // master's own executable: the shim
	calls chan spawnCall
}

func newSpawner(self string) *spawner {
	s := &spawner{self: self, calls: make(chan spawnCall)}
	go s.loop()
	return s
}

func (s *spawner) loop() {
	runtime.LockOSThread()
	// Deliberately never unlocked, and the loop never ends: see spawner.
	for c := range s.calls {
		p, err := s.start(c.req)
		c.reply <- spawnResult{p, err}
	}
}

// spawn starts a child and returns its process.
func (s *spawner) spawn(req spawnRequest) (*os.Process, error) {
	reply := make(chan spawnResult, 1)
	s.calls <- spawnCall{req, reply}
	r := <-reply
	return r.p, r.err
}

func (s *spawner) start(req spawnRequest) (*os.Process, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	files := append([]*os.File{devnull, os.Stdout, os.Stderr}, req.Files...)
	sys := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if req.ID != nil {
		sys.Credential = req.ID.credential()
	}
	argv := append([]string{s.self, execChildFlag, req.Program}, req.Args...)
	p, err := os.StartProcess(s.self, argv, &os.ProcAttr{
		// Every path a daemon gets is absolute; "/" is a directory any user may enter.
		Dir:   "/",
		Env:   childEnv(os.Environ(), req),
		Files: files,
		Sys:   sys,
	})
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", req.Program, err)
	}
	return p, nil
}

// childEnv is the environment of a child: master's, without the systemd variables meant
// for master itself, with LISTEN_FDS and LISTEN_FDNAMES for the child's sockets (the shim
// adds LISTEN_PID) and, when the child changes user, that user's HOME, USER and LOGNAME.
func childEnv(environ []string, req spawnRequest) []string {
	drop := map[string]bool{
		"LISTEN_PID": true, "LISTEN_FDS": true, "LISTEN_FDNAMES": true,
		"NOTIFY_SOCKET": true, "WATCHDOG_PID": true, "WATCHDOG_USEC": true,
		parentPIDEnv: true,
	}
	if req.ID != nil {
		drop["HOME"], drop["USER"], drop["LOGNAME"] = true, true, true
	}
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	if len(req.Files) > 0 {
		env = append(env,
			"LISTEN_FDS="+strconv.Itoa(len(req.Files)),
			"LISTEN_FDNAMES="+strings.Join(req.Names, ":"))
	}
	if req.ID != nil {
		env = append(env, "HOME="+req.ID.Home, "USER="+req.ID.User, "LOGNAME="+req.ID.User)
	}
	env = append(env, parentPIDEnv+"="+strconv.Itoa(os.Getpid()))
	return env
}
