package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"postern/pkg/control"
	"postern/pkg/ipc"
)

// master tells systemd how it is doing (sd_notify(3)) when it runs as a Type=notify
// service: READY=1 once every socket is bound and every daemon started, RELOADING=1 and
// READY=1 around a reload, STOPPING=1 when it begins to stop, and WATCHDOG=1 while it
// answers its own status request. The protocol is one datagram per message on the
// Unix socket $NOTIFY_SOCKET; no library is needed for it.

// notifier speaks systemd's notification protocol when master runs under Type=notify;
// otherwise it does nothing.
type notifier struct{ addr *net.UnixAddr }

// takeNotifySocket reads NOTIFY_SOCKET and removes it from the environment (it is
// master's, not the daemons'). A name starting with @ is an abstract socket.
func takeNotifySocket() notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	if path == "" {
		return notifier{}
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // an abstract socket
	}
	return notifier{&net.UnixAddr{Name: path, Net: "unixgram"}}
}

func (n notifier) send(state string) {
	if n.addr == nil {
		return
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		slog.Debug("sd_notify failed", "err", err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		slog.Debug("sd_notify failed", "err", err)
	}
}

// reloadingMessage is the notification that starts a reload; systemd (Type=notify-reload,
// and Type=notify since version 253) wants the monotonic time with it.
func reloadingMessage() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Sec*1e6+ts.Nsec/1e3)
}

// takeWatchdog returns the watchdog interval systemd asks for (WatchdogSec= sets
// WATCHDOG_USEC, for this process when WATCHDOG_PID is unset or its pid), or 0, and
// removes the variables from the environment.
func takeWatchdog() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	pid := os.Getenv("WATCHDOG_PID")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if err != nil || usec <= 0 || (pid != "" && pid != strconv.Itoa(os.Getpid())) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond
}

// watchdog sends WATCHDOG=1 twice per interval for as long as master answers a status
// request on its own control socket within half the interval: the request goes through
// the control server's accept loop, master's lock and every supervisor's state, what
// `mailctl status` needs. A master stuck there stops sending, and systemd restarts it
// after the interval. A reload in progress does not stop the answers (it holds no lock
// while it waits for daemons).
func (m *Master) watchdog(ctx context.Context, n notifier, interval time.Duration) {
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.selfCheck(ctx, interval/2); err != nil {
			if ctx.Err() == nil {
				m.logger().Warn("watchdog: master does not answer its own status request; not telling systemd it is alive", "err", err)
			}
			continue
		}
		n.send("WATCHDOG=1")
	}
}

// selfCheck asks master's control socket for the status, within timeout.
func (m *Master) selfCheck(ctx context.Context, timeout time.Duration) error {
	cl := ipc.NewClient(m.config().ControlSocket("master"))
	cl.Timeout = timeout
	defer cl.Close()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var res control.MasterStatusResult
	if _, err := cl.Call(cctx, control.MasterStatus, nil, &res); err != nil {
		return err
	}
	if res.PID != os.Getpid() {
		return fmt.Errorf("the control socket answered for pid %d", res.PID)
	}
	return nil
}
