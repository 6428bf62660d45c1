package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"postern/pkg/config"
	"postern/pkg/ipc"
	"postern/pkg/mailq"
)

// callTimeout bounds one call to a control socket.
const callTimeout = 60 * time.Second

// loadConfig reads the configuration named by -c.
func (a *app) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(a.configPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w (give the configuration with -c FILE or $POSTERN_CONFIG; mailctl init creates one)", err)
		}
		return nil, err
	}
	return cfg, nil
}

// call makes one request to the control socket of daemon and explains the usual
// failures: the daemon is not running, or the caller may not use the socket. files go
// along as descriptors (SCM_RIGHTS).
func (a *app) call(cfg *config.Config, daemon, op string, req, resp any, files ...*os.File) error {
	if err := rawCall(cfg, daemon, op, req, resp, files...); err != nil {
		return a.callError(cfg, daemon, err)
	}
	return nil
}

// rawCall is call without the explanations: the error as the socket gave it.
func rawCall(cfg *config.Config, daemon, op string, req, resp any, files ...*os.File) error {
	cl := ipc.NewClient(cfg.ControlSocket(daemon))
	cl.Timeout = callTimeout
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := cl.Call(ctx, op, req, resp, files...)
	return err
}

// callError explains the error of a request to daemon's control socket to the
// administrator.
func (a *app) callError(cfg *config.Config, daemon string, err error) error {
	path := cfg.ControlSocket(daemon)
	var ie *ipc.Error
	switch {
	case errors.As(err, &ie) && ie.Code == "denied":
		return fmt.Errorf("%s refused the request: %s (run mailctl as root or as a member of group %s)", daemon, ie.Message, cfg.AdminGroup)
	case errors.As(err, &ie):
		return ie
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("cannot use %s's control socket %s: permission denied (run mailctl as root or as a member of group %s)", daemon, path, cfg.AdminGroup)
	case unreachable(err):
		if daemon == "master" {
			return fmt.Errorf("cannot reach master at %s: master is not running", path)
		}
		return fmt.Errorf("cannot reach %s at %s: is master running?", daemon, path)
	}
	return fmt.Errorf("%s: %w", daemon, err)
}

// unreachable reports whether err means that nobody listens on the socket.
func unreachable(err error) bool {
	var oe *net.OpError
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ENOTDIR) || (errors.As(err, &oe) && oe.Op == "dial")
}

// clean makes text from the network safe to print on the administrator's terminal
// (mailq.Clean).
var clean = mailq.Clean
