// Command remote is Postern's outbound SMTP client, the delivery agent for recipients
// on other hosts.
//
// qmgr hands remote a message as an open queue file descriptor with the recipients
// whose domains are not this host's. remote finds each domain's mail servers in the
// DNS (MX records, else the domain's own addresses, RFC 5321 §5.1; a null MX, RFC
// 7505, returns the message at once), connects to them in preference order, upgrades
// the connection with STARTTLS when offered, pipelines the transaction (RFC 2920),
// streams the message from the queue file dot-stuffed, and answers with one result per
// recipient: sent on the server's 2xx, deferred on 4xx or when no server could be
// reached, bounced with the server's words on 5xx. Idle connections are kept for a
// moment for the next message to the same domain, and the connections to one domain
// are limited. It serves <spool>/private/remote and writes nothing on disk. See
// remote(8).
package main

import (
	"context"
	"os"
	"time"

	"postern/pkg/daemon"
	"postern/pkg/resolver"
)

func main() {
	d := daemon.Start("remote")
	d.Confine() // writes no file: the message comes as a descriptor
	ctx, stop := d.Context()
	defer stop()
	cfg := d.Config
	res, err := resolver.NewFromConfig(cfg.Remote.Resolvers)
	if err != nil {
		d.Log.Error("no DNS resolver: set remote.resolvers in the configuration", "err", err)
		os.Exit(1)
	}
	a := NewAgent(cfg, res, d.Log)
	go a.pool.expire(ctx)
	srv := a.Server(daemon.Trust(cfg, "qmgr"))
	d.Log.Info("started", "resolvers", res.Servers, "port", cfg.Remote.Port, "helo", a.dialer.helo)
	if err := srv.Serve(ctx, d.Unix("private/remote")); err != nil {
		d.Log.Error("serving", "err", err)
		os.Exit(1)
	}
	// Let deliveries in flight finish: a message sent but not reported would be sent
	// again.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
}
