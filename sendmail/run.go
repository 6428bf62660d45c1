package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/enqueue"
	"postern/pkg/ipc"
	"postern/pkg/mailq"
)

// submitTimeout bounds the hand-over of one message to cleanup.
const submitTimeout = 10 * time.Minute

// run is one run of sendmail: args with the program name first; it returns the exit
// status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	prog := filepath.Base(args[0])
	if prog != "mailq" && prog != "newaliases" {
		prog = "sendmail"
	}
	fail := func(status int, format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", prog, fmt.Sprintf(format, a...))
		return status
	}
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\nusage: sendmail [-t] [-i] [-f sender] [-F name] [-C file] [recipient ...]\n", prog, err)
		return exUsage
	}
	if o.mode == modeNewaliases {
		// Postern keeps aliases in authd's database, which takes changes at once.
		fmt.Fprintf(stdout, "%s: nothing to do: Postern's aliases live in authd's database and take effect at once; manage them with `mailctl alias add|del|list`\n", prog)
		return exOK
	}
	cfg, err := loadConfig(o.config, getenv)
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	switch o.mode {
	case modeMailq:
		// public/qmgr, open to every user: qmgr shows what queue.mailq_users allows.
		return queueCall(cfg.PublicSocket("qmgr"), control.QueueList, nil, func(res *control.QueueListResult) { mailq.Write(stdout, res.Messages) }, fail)
	case modeFlush:
		return queueCall(cfg.ControlSocket("qmgr"), control.QueueFlush, control.IDsRequest{}, func(*control.CountResult) {}, fail)
	case modeSMTP:
		return serveSMTP(cfg, o, stdin, stdout)
	}
	return send(cfg, o, stdin, stderr, fail)
}

// loadConfig finds the configuration as mailctl does: -C FILE (a directory means
// DIR/postern.toml, as Postfix's -C takes a directory), else $POSTERN_CONFIG, else
// /etc/postern/postern.toml.
func loadConfig(flag string, getenv func(string) string) (*config.Config, error) {
	path := flag
	if path == "" {
		path = getenv("POSTERN_CONFIG")
	}
	if path == "" {
		path = config.DefaultPath
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "postern.toml")
	}
	return config.Load(path)
}

// send reads the message on stdin and hands it to cleanup.
func send(cfg *config.Config, o *options, stdin io.Reader, stderr io.Writer, fail func(int, string, ...any) int) int {
	r := newReader(stdin, o.ignoreDots)
	h, err := readHeader(r)
	if err != nil {
		return fail(exIOErr, "%v; message not sent", err)
	}
	rcpts := o.recipients
	if o.extract {
		found, err := h.extract()
		if err != nil {
			return fail(exDataErr, "%v", err)
		}
		rcpts = append(rcpts, found...)
	}
	if len(rcpts) == 0 {
		if o.extract {
			return fail(exUsage, "no recipient addresses found in the message header")
		}
		return fail(exUsage, "no recipients given (name them as arguments, or use -t)")
	}
	env := &enqueue.Local{
		FullName:   o.fullName,
		Recipients: rcpts,
		BodyType:   o.bodyType,
		Notify:     o.notify,
		Ret:        o.ret,
		EnvID:      o.envID,
	}
	if o.senderSet {
		s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(o.sender), "<"), ">")
		if s == "" {
			env.NullSender = true
		}
		env.Sender = s
	}
	sock := cfg.PublicSocket("cleanup")
	cl := enqueue.NewClient(sock)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	tx, err := cl.BeginLocal(ctx, env)
	if err != nil {
		return failSubmit(err, sock, fail)
	}
	if _, err := h.WriteTo(tx); err != nil {
		tx.Abort()
		return failSubmit(err, sock, fail)
	}
	if _, err := io.Copy(tx, r); err != nil {
		tx.Abort()
		if re := (*readError)(nil); errors.As(err, &re) {
			return fail(exIOErr, "%v; message not sent", err)
		}
		return failSubmit(err, sock, fail)
	}
	res, err := tx.Commit()
	if err != nil {
		return failSubmit(err, sock, fail)
	}
	if o.verbose {
		fmt.Fprintf(stderr, "sendmail: queued as %s (%d octets)\n", res.QueueID, res.Size)
	}
	return exOK
}

// failSubmit reports a failed hand-over with the status callers know: EX_TEMPFAIL when
// Postern is down or cannot take the message now (try again later), EX_DATAERR when
// cleanup refused the message, EX_NOPERM when the socket is closed to the user.
func failSubmit(err error, sock string, fail func(int, string, ...any) int) int {
	var ie *ipc.Error
	switch {
	case errors.As(err, &ie) && ie.Code == enqueue.CodeRejected:
		return fail(exDataErr, "message refused: %s", ie.Message)
	case errors.As(err, &ie) && (ie.Code == "temporary" || ie.Code == enqueue.CodeTempfail):
		return fail(exTempFail, "message not queued, try again later: %s", ie.Message)
	case errors.As(err, &ie):
		return fail(exSoftware, "message not queued: %s (%s)", ie.Message, ie.Code)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fail(exNoPerm, "cannot use %s: permission denied", sock)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fail(exTempFail, "Postern is not running (nobody listens on %s); message not sent", sock)
	}
	return fail(exTempFail, "message not queued: %v", err)
}

// queueCall makes a request to one of qmgr's sockets, sock (public/qmgr for mailq,
// control/qmgr for -q), and hands the answer to show.
func queueCall[T any](sock, op string, req any, show func(*T), fail func(int, string, ...any) int) int {
	cl := ipc.NewClient(sock)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res T
	_, err := cl.Call(ctx, op, req, &res)
	var ie *ipc.Error
	switch {
	case err == nil:
		show(&res)
		return exOK
	case errors.As(err, &ie) && ie.Code == "denied":
		return fail(exNoPerm, "%s", ie.Message)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fail(exNoPerm, "permission denied on %s (the control socket is open to root and the admin group only)", sock)
	case errors.As(err, &ie):
		return fail(exSoftware, "%s", ie.Message)
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return fail(exUnavailable, "queue report unavailable: Postern is not running (nobody listens on %s)", sock)
	}
	return fail(exUnavailable, "queue report unavailable: %v", err)
}
