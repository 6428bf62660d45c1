package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxPassword bounds a password's length; authd hashes it with argon2id, which does not
// need more, and a bound keeps a runaway pipe from filling memory.
const maxPassword = 1024

// readPassword gets a new password: from the first line of standard input when
// fromStdin is set, otherwise from the terminal, asked twice without echo. It never
// comes from the command line (where ps shows it to every user).
func (a *app) readPassword(fromStdin bool, address string) (string, error) {
	if fromStdin {
		return readPasswordLine(a.stdin)
	}
	if a.terminal == nil || !isTerminal(a.terminal) {
		return "", errors.New("standard input is not a terminal to ask for the password on: give it on standard input with --password-stdin")
	}
	p1, err := a.prompt(fmt.Sprintf("New password for %s: ", address))
	if err != nil {
		return "", err
	}
	if p1 == "" {
		return "", errors.New("empty password")
	}
	p2, err := a.prompt("Again: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", errors.New("the passwords differ")
	}
	return p1, nil
}

// readPasswordLine returns the first line of r, without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxPassword+2), maxPassword+2)
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	if errors.Is(err, io.EOF) && len(line) > maxPassword {
		return "", fmt.Errorf("the password is longer than %d bytes", maxPassword)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password on standard input (--password-stdin reads its first line)")
	}
	if len(line) > maxPassword {
		return "", fmt.Errorf("the password is longer than %d bytes", maxPassword)
	}
	return line, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// prompt writes msg to standard error and reads one line from the terminal with echo
// turned off (termios ECHO cleared), restoring the terminal afterwards, also when
// interrupted.
func (a *app) prompt(msg string) (string, error) {
	fd := int(a.terminal.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", fmt.Errorf("reading the terminal settings: %w", err)
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", fmt.Errorf("turning off the terminal's echo: %w", err)
	}
	// Ctrl-C must not leave the terminal without echo.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			unix.IoctlSetTermios(fd, unix.TCSETS, old)
			fmt.Fprintln(a.stderr)
			signal.Reset(s)
			syscall.Kill(os.Getpid(), s.(syscall.Signal))
		case <-done:
		}
	}()
	defer func() {
		close(done)
		signal.Stop(sig)
		unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(a.stderr)
	}()
	fmt.Fprint(a.stderr, msg)
	// Read byte by byte: nothing beyond the line may be taken from the terminal.
	var line []byte
	var b [1]byte
	for {
		n, err := a.terminal.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(line) >= maxPassword {
				return "", fmt.Errorf("the password is longer than %d bytes", maxPassword)
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				break
			}
			if errors.Is(err, io.EOF) {
				return "", errors.New("no password given")
			}
			return "", fmt.Errorf("reading the password: %w", err)
		}
	}
	return strings.TrimSuffix(string(line), "\r"), nil
}
