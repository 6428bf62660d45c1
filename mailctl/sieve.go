package main

import (
	"fmt"
	"io"

	"postern/pkg/control"
)

// The sieve commands ask sieved, over control/sieved, which alone writes the scripts.

func runSieveList(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var list []control.SieveScript
	if err := a.call(cfg, "sieved", control.SieveList, control.SieveRequest{Address: args[0]}, &list); err != nil {
		return err
	}
	for _, s := range list {
		mark := ""
		if s.Active {
			mark = "\tactive"
		}
		fmt.Fprintf(a.stdout, "%s%s\n", clean(s.Name), mark)
	}
	return nil
}

func runSieveGet(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var s control.SieveScript
	if err := a.call(cfg, "sieved", control.SieveGet, control.SieveRequest{Address: args[0], Name: args[1]}, &s); err != nil {
		return err
	}
	_, err = io.WriteString(a.stdout, s.Script)
	return err
}

func runSievePut(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(a.stdin, int64(cfg.Sieve.MaxScriptSize)+1))
	if err != nil {
		return fmt.Errorf("reading the script: %w", err)
	}
	if err := a.call(cfg, "sieved", control.SievePut, control.SieveRequest{Address: args[0], Name: args[1], Script: string(b)}, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "stored script %s for %s\n", clean(args[1]), clean(args[0]))
	return nil
}

func runSieveActivate(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	name := ""
	if len(args) == 2 {
		name = args[1]
	}
	if err := a.call(cfg, "sieved", control.SieveActivate, control.SieveRequest{Address: args[0], Name: name}, nil); err != nil {
		return err
	}
	if name == "" {
		fmt.Fprintf(a.stdout, "no active script for %s\n", clean(args[0]))
	} else {
		fmt.Fprintf(a.stdout, "%s is the active script of %s\n", clean(name), clean(args[0]))
	}
	return nil
}
