package main

import (
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"postern/pkg/control"
)

// The commands of this file show and lift authd's failed-login throttling, over
// control/authd. The blocks live in authd's memory only.

func runThrottleList(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.ThrottleListResult
	if err := a.call(cfg, "authd", control.ThrottleList, nil, &res); err != nil {
		return err
	}
	if len(res.Blocks) == 0 {
		fmt.Fprintln(a.stdout, "no logins are throttled")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tBLOCKED\tFAILURES\tUNTIL")
	for _, b := range res.Blocks {
		left := b.Until.Sub(now).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s (%s left)\n", clean(b.Kind), throttleWho(b), b.Failures,
			b.Until.Local().Format("2006-01-02 15:04:05"), max(left, 0))
	}
	return tw.Flush()
}

func runThrottleLift(a *app, o *options, args []string) error {
	target, err := throttleTarget(args[0])
	if err != nil {
		return usagef("%v", err)
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.ThrottleLiftResult
	if err := a.call(cfg, "authd", control.ThrottleLift, control.ThrottleLiftRequest{Target: target}, &res); err != nil {
		return err
	}
	if len(res.Lifted) == 0 {
		fmt.Fprintf(a.stdout, "nothing to lift for %s: no failed logins counted\n", target)
		return nil
	}
	blocked := 0
	for _, b := range res.Lifted {
		if b.Until.After(time.Now()) {
			blocked++
			fmt.Fprintf(a.stdout, "lifted the block of %s %s\n", clean(b.Kind), throttleWho(b))
		}
	}
	fmt.Fprintf(a.stdout, "%s: %d blocks lifted, the failures of %d keys forgotten\n", target, blocked, len(res.Lifted))
	return nil
}

// throttleWho names what a block applies to.
func throttleWho(b control.ThrottleBlock) string {
	switch {
	case b.Account != "" && b.Client != "":
		return clean(b.Account) + " from " + clean(b.Client)
	case b.Account != "":
		return clean(b.Account)
	}
	return clean(b.Client)
}

// throttleTarget checks what throttle lift names: an IP address, a network in CIDR
// notation or an account's address.
func throttleTarget(s string) (string, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("").String(), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String(), nil
	}
	if strings.Contains(s, "@") {
		return checkAddress(s, false)
	}
	return "", fmt.Errorf("%q is neither an IP address, a network (like 192.0.2.0/24) nor an account's address", s)
}
