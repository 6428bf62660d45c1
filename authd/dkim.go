package main

import (
	"context"
	"errors"
	"os"
	"time"

	"postern/pkg/control"
	"postern/pkg/dkim"
	"postern/pkg/ipc"
)

// DKIM keys: authd owns the domains, runs as cleanup's user (which signs with the keys
// and must read them), keeps the audit log, and its Landlock rules let it write in
// data_dir; so it is the daemon that writes <data_dir>/dkim, for `mailctl dkim` and the
// admin panel alike (control.DKIMList and the others). mailctl writes the files itself
// only when authd does not run (mailctl init, a stopped instance), with the same
// pkg/dkim functions.

// dkimDir returns where the keys live, or an error when authd must not write them.
func (a *Authd) dkimDir() (string, error) {
	if a.DKIMDir == "" {
		return "", ipc.Errorf("unavailable", "this authd keeps no DKIM keys")
	}
	if a.DKIMRefused != "" {
		return "", ipc.Errorf("unavailable", "%s", a.DKIMRefused)
	}
	return a.DKIMDir, nil
}

// dkimTarget returns the key directory and the canonical domain a write request acts on.
func (a *Authd) dkimTarget(req *control.DKIMRequest) (dir, domain string, err error) {
	if dir, err = a.dkimDir(); err != nil {
		return "", "", err
	}
	if domain, err = dkim.CanonicalDomain(req.Domain); err != nil {
		return "", "", ipc.Errorf("invalid", "%v", err)
	}
	return dir, domain, nil
}

// dkimError gives a pkg/dkim error its ipc code: a key directory authd may not write
// (master makes <data_dir>/dkim cleanup's) is "unavailable", on which mailctl does the
// work itself.
func dkimError(err error) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return ipc.Errorf("unavailable", "authd cannot write the DKIM keys (%v): restart Postern, whose master gives the directory to cleanup's user, or run mailctl as root", err)
	case errors.Is(err, os.ErrNotExist):
		return ipc.Errorf("notfound", "%v", err)
	}
	return ipc.Errorf("invalid", "%v", err)
}

func (a *Authd) dkimList(_ context.Context, _ ipc.Cred, req *control.DKIMRequest) (any, error) {
	if a.DKIMDir == "" {
		return nil, ipc.Errorf("unavailable", "this authd keeps no DKIM keys")
	}
	domain := req.Domain
	if domain != "" {
		d, err := dkim.CanonicalDomain(domain)
		if err != nil {
			return nil, ipc.Errorf("invalid", "%v", err)
		}
		domain = d
	}
	keys, err := dkim.LoadAll(a.DKIMDir, domain)
	if err != nil {
		a.Log.Error("reading the DKIM keys", "err", err)
		return nil, ipc.Errorf("temporary", "reading the DKIM keys: %v", err)
	}
	out := control.DKIMListResult{Keys: []control.DKIMKey{}}
	for _, k := range keys {
		dk, err := control.DKIMKeyOf(k)
		if err != nil {
			return nil, ipc.Errorf("temporary", "%v", err)
		}
		out.Keys = append(out.Keys, dk)
	}
	return out, nil
}

func (a *Authd) dkimGenerate(_ context.Context, peer ipc.Cred, req *control.DKIMRequest) (any, error) {
	dir, domain, err := a.dkimTarget(req)
	if err != nil {
		return nil, err
	}
	// cleanup signs only the mail of users who may send as the domain: a key of another
	// domain would never be used.
	if ok, err := a.DB.HasDomain(domain); err != nil {
		return nil, err
	} else if !ok {
		return nil, ipc.Errorf("notfound", "%s is not one of Postern's domains: add it first (mailctl domain add %s)", domain, domain)
	}
	alg := req.Algorithm
	if alg == "" {
		alg = dkim.Ed25519
	}
	if alg != dkim.Ed25519 && alg != dkim.RSA {
		return nil, ipc.Errorf("invalid", "algorithm %q: want %s or %s", alg, dkim.Ed25519, dkim.RSA)
	}
	sel := req.Selector
	if sel == "" {
		sel = dkim.DefaultSelector(alg, time.Now())
	}
	k, err := dkim.Generate(dir, domain, sel, alg, -1, -1)
	if err != nil {
		return nil, dkimError(err)
	}
	dk, err := control.DKIMKeyOf(k)
	if err != nil {
		return nil, ipc.Errorf("temporary", "%v", err)
	}
	if err := a.record(peer, req.Origin, control.DKIMGenerate, domain, sel+" "+alg); err != nil {
		return nil, err
	}
	return dk, nil
}

func (a *Authd) dkimRemove(_ context.Context, peer ipc.Cred, req *control.DKIMRequest) (any, error) {
	dir, domain, err := a.dkimTarget(req)
	if err != nil {
		return nil, err
	}
	if err := dkim.Remove(dir, domain, req.Selector); err != nil {
		return nil, dkimError(err)
	}
	if err := a.record(peer, req.Origin, control.DKIMRemove, domain, req.Selector); err != nil {
		return nil, err
	}
	return nil, nil
}
