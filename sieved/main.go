// Command sieved is Postern's ManageSieve server (RFC 5804): users upload, check, list
// and choose their Sieve filters (RFC 5228), which local runs at delivery.
//
// It serves the listener master hands it, "sieve" (port 4190, STARTTLS), with logins
// (SASL PLAIN) checked by authd, only over TLS or from loopback — and httpd's web session
// tokens (X-POSTERN-WEB), from httpd's user only, for the account page's out-of-office
// reply — and control/sieved for
// mailctl's sieve commands. It runs as the mail user and alone writes <data>/sieve,
// one directory per account (<domain>/<localpart>/: name.sieve files and the "active"
// link local reads). See sieved(8).
package main

import (
	"os"

	"postern/pkg/auth"
	"postern/pkg/daemon"
)

func main() {
	d := daemon.Start("sieved")
	root := d.Config.SieveDir() // made by master, owned by sieved's user
	if err := os.MkdirAll(root, 0o700); err != nil {
		d.Log.Error("cannot make the sieve directory", "err", err)
		os.Exit(1)
	}
	d.Confine(root)
	d.Serve(func() (daemon.Server, error) {
		s, err := New(d.Config, d.Log)
		if err != nil {
			return nil, err
		}
		ctx, _ := d.Context()
		ctl := controlServer(s.store, auth.NewClient(d.Config.PrivateSocket("auth")), daemon.Admin(d.Config))
		go ctl.Serve(ctx, d.Unix("control/sieved"))
		return s, nil
	})
}
