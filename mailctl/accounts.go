package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
)

// The commands of this file ask authd, the sole owner of users.db, over control/authd.

func runDomainAdd(a *app, o *options, args []string) error {
	name, err := checkDomain(args[0])
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.DomainAdd, control.DomainRequest{Name: name}, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "domain %s added\n", name)
	return nil
}

func runDomainDel(a *app, o *options, args []string) error {
	name, err := checkDomain(args[0])
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.DomainDel, control.DomainRequest{Name: name, Force: o.force}, nil); err != nil {
		if !o.force && (ipc.IsCode(err, "exists") || ipc.IsCode(err, "invalid") && strings.Contains(err.Error(), "not empty")) {
			return fmt.Errorf("%w (--force deletes its accounts and aliases too)", err)
		}
		return err
	}
	fmt.Fprintf(a.stdout, "domain %s deleted\n", name)
	return nil
}

func runDomainList(a *app, o *options, args []string) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.DomainListResult
	if err := a.call(cfg, "authd", control.DomainList, nil, &res); err != nil {
		return err
	}
	if len(res.Domains) == 0 {
		fmt.Fprintln(a.stdout, "no domains (mailctl domain add DOMAIN adds one)")
		return nil
	}
	sort.Slice(res.Domains, func(i, j int) bool { return res.Domains[i].Name < res.Domains[j].Name })
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tUSERS\tALIASES")
	for _, d := range res.Domains {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", clean(d.Name), d.Users, d.Aliases)
	}
	return tw.Flush()
}

func runUserAdd(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	quota := int64(-1) // the configured default
	if o.quota != "" {
		if quota, err = parseQuota(o.quota); err != nil {
			return usagef("%v", err)
		}
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	pw, err := a.readPassword(o.passwordStdin, addr)
	if err != nil {
		return err
	}
	req := control.UserRequest{Address: addr, Password: pw, Quota: quota}
	// authd answers with the account, and a warning if its Maildir could not be made yet.
	var res struct {
		control.User
		Warning string `json:"warning"`
	}
	if err := a.call(cfg, "authd", control.UserAdd, req, &res); err != nil {
		return err
	}
	if res.Address != "" {
		addr = res.Address
	}
	fmt.Fprintf(a.stdout, "account %s created", clean(addr))
	if res.Maildir != "" {
		fmt.Fprintf(a.stdout, ", Maildir %s", clean(res.Maildir))
	}
	fmt.Fprintln(a.stdout)
	if res.Warning != "" {
		fmt.Fprintf(a.stderr, "mailctl user add: warning: %s\n", clean(res.Warning))
	}
	return nil
}

func runUserDel(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.UserDel, control.UserRequest{Address: addr}, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "account %s deleted (its mail stays in %s)\n", addr, cfg.MailDir())
	return nil
}

func runUserList(a *app, o *options, args []string) error {
	req, err := listRequest(args)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.UserListResult
	if err := a.call(cfg, "authd", control.UserList, req, &res); err != nil {
		return err
	}
	if len(res.Users) == 0 {
		fmt.Fprintln(a.stdout, "no accounts")
		return nil
	}
	sort.Slice(res.Users, func(i, j int) bool { return lessAddress(res.Users[i].Address, res.Users[j].Address) })
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tQUOTA\tCREATED\tFLAGS")
	for _, u := range res.Users {
		created := "-"
		if !u.Created.IsZero() {
			created = u.Created.Local().Format("2006-01-02 15:04")
		}
		var flags []string
		if u.Admin {
			flags = append(flags, "admin")
		}
		if u.Disabled {
			flags = append(flags, "disabled")
		}
		if len(flags) == 0 {
			flags = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", clean(u.Address), formatQuota(u.Quota), created, strings.Join(flags, ","))
	}
	return tw.Flush()
}

func runUserPasswd(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], false)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	pw, err := a.readPassword(o.passwordStdin, addr)
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.UserPasswd, control.UserRequest{Address: addr, Password: pw}, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "password of %s changed\n", addr)
	return nil
}

func runAliasAdd(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], true)
	if err != nil {
		return err
	}
	var targets []string
	for _, t := range args[1:] {
		t, err := checkAddress(t, false)
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
		targets = append(targets, t)
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.AliasAdd, control.Alias{Address: addr, Targets: targets}, nil); err != nil {
		return err
	}
	what := "alias " + addr
	if strings.HasPrefix(addr, "@") {
		what = "catch-all of " + addr[1:]
	}
	fmt.Fprintf(a.stdout, "%s → %s\n", what, strings.Join(targets, ", "))
	return nil
}

func runAliasDel(a *app, o *options, args []string) error {
	addr, err := checkAddress(args[0], true)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := a.call(cfg, "authd", control.AliasDel, control.Alias{Address: addr}, nil); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "alias %s deleted\n", addr)
	return nil
}

func runAliasList(a *app, o *options, args []string) error {
	req, err := listRequest(args)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.AliasListResult
	if err := a.call(cfg, "authd", control.AliasList, req, &res); err != nil {
		return err
	}
	if len(res.Aliases) == 0 {
		fmt.Fprintln(a.stdout, "no aliases")
		return nil
	}
	sort.Slice(res.Aliases, func(i, j int) bool { return lessAddress(res.Aliases[i].Address, res.Aliases[j].Address) })
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	for _, al := range res.Aliases {
		ts := make([]string, len(al.Targets))
		for i, t := range al.Targets {
			ts[i] = clean(t)
		}
		fmt.Fprintf(tw, "%s\t→ %s\n", clean(al.Address), strings.Join(ts, ", "))
	}
	return tw.Flush()
}

// checkDomain does the checks that catch typing mistakes before authd is asked; authd
// decides what is really acceptable.
func checkDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if d == "" || strings.ContainsAny(d, "@ \t\r\n/\\") || !strings.Contains(d, ".") && d != "localhost" {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	return d, nil
}

// checkAddress checks that s looks like local@domain ("@domain", a catch-all, when
// catchAll is set), so that mistakes are caught before authd is asked.
func checkAddress(s string, catchAll bool) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 || strings.ContainsAny(s, " \t\r\n<>") {
		return "", fmt.Errorf("%q is not a mail address (local@domain)", s)
	}
	if at == 0 && !catchAll {
		return "", fmt.Errorf("%q is not a mail address (\"@domain\", a catch-all, is only for aliases)", s)
	}
	d, err := checkDomain(s[at+1:])
	if err != nil {
		return "", fmt.Errorf("%q is not a mail address: %w", s, err)
	}
	return s[:at+1] + d, nil
}

// lessAddress orders addresses by domain, then local part; catch-alls first.
func lessAddress(a, b string) bool {
	la, da, _ := strings.Cut(a, "@")
	lb, db, _ := strings.Cut(b, "@")
	if da != db {
		return da < db
	}
	return la < lb
}

// parseQuota reads a quota like 500M, 2G or 0 (unlimited), the way the configuration
// file writes sizes.
func parseQuota(s string) (int64, error) {
	if strings.EqualFold(s, "unlimited") || strings.EqualFold(s, "none") {
		return 0, nil
	}
	var sz config.Size
	if err := sz.UnmarshalTOML(s); err != nil {
		return 0, fmt.Errorf("--quota: %v", err)
	}
	return int64(sz), nil
}

func formatQuota(q int64) string {
	if q <= 0 {
		return "unlimited"
	}
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if q%u.size == 0 {
			return fmt.Sprintf("%d%s", q/u.size, u.suffix)
		}
	}
	return fmt.Sprintf("%d", q)
}

// listRequest is the request of a list command: everything, or the domain named in args.
func listRequest(args []string) (control.ListRequest, error) {
	var req control.ListRequest
	if len(args) == 1 {
		d, err := checkDomain(args[0])
		if err != nil {
			return req, err
		}
		req.Domain = d
	}
	return req, nil
}
