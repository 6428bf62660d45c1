package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"postern/pkg/audit"
	"postern/pkg/control"
)

// The commands of this file ask authd (admin flag, app passwords, its audit log) and
// qmgr (its audit log) over their control sockets.

func runUserAdmin(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.UserAdmin, control.UserAdminRequest{Address: addr, Admin: !o.off}, nil); err != nil {
		return err
	}
	if o.off {
		fmt.Fprintf(a.stdout, "%s is no longer an administrator\n", addr)
	} else {
		fmt.Fprintf(a.stdout, "%s is an administrator\n", addr)
	}
	return nil
}

func runUserQuota(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	quota, err := parseQuota(args[1])
	if err != nil {
		return usagef("%v", strings.TrimPrefix(err.Error(), "--quota: "))
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.UserQuota, control.UserRequest{Address: addr, Quota: quota}, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "quota of %s: %s\n", addr, formatQuota(quota))
	return nil
}

func runUserDisable(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.UserDisable, control.UserDisableRequest{Address: addr, Disabled: !o.off}, nil); err != nil {
		return err
	}
	if o.off {
		fmt.Fprintf(a.stdout, "%s is enabled: it may log in again\n", addr)
	} else {
		fmt.Fprintf(a.stdout, "%s is disabled: it may not log in (its mail is still delivered)\n", addr)
	}
	return nil
}

func runAppPasswordAdd(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	name := strings.TrimSpace(args[1])
	if name == "" {
		return usagef("the app password needs a NAME, such as \"phone\"")
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.AppPassword
	if err := a.call(cfg, "authd", control.AppPasswordAdd, control.AppPasswordRequest{Address: addr, Name: name}, &res); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "app password %q of %s (shown only now; log in with it in place of the password):\n%s\n", clean(res.Name), addr, clean(res.Password))
	return nil
}

func runAppPasswordList(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.AppPasswordListResult
	if err := a.call(cfg, "authd", control.AppPasswordList, control.AppPasswordRequest{Address: addr}, &res); err != nil {
		return err
	}
	if len(res.AppPasswords) == 0 {
		fmt.Fprintf(a.stdout, "%s has no app passwords\n", addr)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCREATED\tLAST USED")
	for _, ap := range res.AppPasswords {
		used := "never"
		if !ap.LastUsed.IsZero() {
			used = ap.LastUsed.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", clean(ap.Name), ap.Created.Local().Format("2006-01-02 15:04"), used)
	}
	return tw.Flush()
}

func runAppPasswordRevoke(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.AppPasswordRevoke, control.AppPasswordRequest{Address: addr, Name: args[1]}, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "app password %q of %s revoked\n", clean(strings.TrimSpace(args[1])), addr)
	return nil
}

// runAudit prints the audit logs of authd and qmgr, merged by time. A daemon that does
// not answer is reported, and the other's log printed.
func runAudit(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	req := control.AuditRequest{Limit: o.limit}
	var logs [][]audit.Entry
	var failed []error
	for _, d := range []string{"authd", "qmgr"} {
		var res control.AuditResult
		if err := a.call(cfg, d, control.AuditList, req, &res); err != nil {
			failed = append(failed, err)
			continue
		}
		logs = append(logs, res.Entries)
	}
	if len(failed) == 2 {
		return failed[0]
	}
	for _, err := range failed {
		fmt.Fprintf(a.stderr, "mailctl audit: %v\n", err)
	}
	es := audit.Merge(o.limit, logs...)
	if len(es) == 0 {
		fmt.Fprintln(a.stdout, "the audit log is empty")
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	if len(es) > 0 {
		fmt.Fprintln(tw, "TIME\tWHO\tFROM\tOPERATION\tTARGET\tDETAIL")
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Time.Before(es[j].Time) })
	for _, e := range es {
		ip := e.IP
		if ip == "" {
			ip = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), clean(e.Who()), clean(ip),
			clean(e.Op), clean(e.Target), clean(e.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("the audit log above lacks a daemon's part")
	}
	return nil
}
