package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"postern/pkg/auth"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/sieve"
)

// controlServer answers mailctl's sieve commands on control/sieved.
func controlServer(st *Store, ac *auth.Client, allow func(ipc.Cred) bool) *ipc.Server {
	s := &ipc.Server{Name: "sieved-control", Allow: allow}
	handle := func(op string, f func(req control.SieveRequest, addr string) (any, error)) {
		s.Handle(op, func(ctx context.Context, _ ipc.Cred, body json.RawMessage, files []*os.File) (any, error) {
			ipc.CloseFiles(files)
			var req control.SieveRequest
			if err := json.Unmarshal(body, &req); err != nil {
				return nil, ipc.Errorf("invalid", "decoding request: %v", err)
			}
			mb, err := ac.Mailbox(ctx, req.Address)
			if err != nil {
				return nil, ipc.Errorf("temporary", "asking authd: %v", err)
			}
			if !mb.Exists {
				return nil, ipc.Errorf("notfound", "no account %s", req.Address)
			}
			res, err := f(req, mb.Address)
			var se *sieve.Error
			switch {
			case err == nil:
				return res, nil
			case errors.As(err, &se):
				return nil, ipc.Errorf("invalid", "%v", se)
			case errors.Is(err, errNoScript):
				return nil, ipc.Errorf("notfound", "no script %q", req.Name)
			case errors.Is(err, errQuota), errors.Is(err, errName):
				return nil, ipc.Errorf("invalid", "%v", err)
			}
			return nil, ipc.Errorf("temporary", "%v", err)
		})
	}
	handle(control.SieveList, func(_ control.SieveRequest, addr string) (any, error) {
		list, err := st.List(addr)
		out := []control.SieveScript{}
		for _, x := range list {
			out = append(out, control.SieveScript{Name: x.Name, Active: x.Active})
		}
		return out, err
	})
	handle(control.SieveGet, func(req control.SieveRequest, addr string) (any, error) {
		b, err := st.Get(addr, req.Name)
		return control.SieveScript{Name: req.Name, Active: st.isActive(addr, req.Name), Script: string(b)}, err
	})
	handle(control.SievePut, func(req control.SieveRequest, addr string) (any, error) {
		return nil, st.Put(addr, req.Name, []byte(req.Script))
	})
	handle(control.SieveActivate, func(req control.SieveRequest, addr string) (any, error) {
		return nil, st.SetActive(addr, req.Name)
	})
	return s
}
