package main

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"postern/pkg/control"
)

// The commands of this file change and show spamd's block and allow lists over
// control/spamd; spamd keeps them in its own database.

func listFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.user, "user", "", "change the lists of the account `ADDRESS` (default: the administrator's)")
	fs.BoolVar(&o.subdomains, "subdomains", false, "make the domains match their subdomains too")
}

// listUser checks --user; spamd names a user's lists by the lower-cased address.
func listUser(o *options) (string, error) {
	if o.user == "" {
		return "", nil
	}
	u, err := checkAddress(o.user, false)
	if err != nil {
		return "", usagef("%v", err)
	}
	return strings.ToLower(u), nil
}

func runSpamBlock(a *app, o *options, args []string) error {
	return addListEntries(a, o, control.SpamBlock, args)
}

func runSpamAllow(a *app, o *options, args []string) error {
	return addListEntries(a, o, control.SpamAllow, args)
}

func addListEntries(a *app, o *options, action string, args []string) error {
	user, err := listUser(o)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.SpamListsResult
	req := control.SpamListAddRequest{User: user, Action: action, Entries: args, Subdomains: o.subdomains}
	if err := a.call(cfg, "spamd", control.SpamListAdd, req, &res); err != nil {
		return err
	}
	for _, e := range res.Entries {
		fmt.Fprintf(a.stdout, "%sed %s %s%s\n", e.Action, e.Kind, clean(e.Value), scopeOf(e))
	}
	return nil
}

func runSpamUnblock(a *app, o *options, args []string) error {
	user, err := listUser(o)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.SpamListsResult
	if err := a.call(cfg, "spamd", control.SpamListRemove, control.SpamListRemoveRequest{User: user, Entries: args}, &res); err != nil {
		return err
	}
	for _, e := range res.Entries {
		fmt.Fprintf(a.stdout, "removed %s %s from the %s list%s\n", e.Kind, clean(e.Value), e.Action, scopeOf(e))
	}
	if len(res.NotListed) > 0 {
		var names []string
		for _, n := range res.NotListed {
			names = append(names, clean(n))
		}
		return fmt.Errorf("not on any list: %s", strings.Join(names, ", "))
	}
	return nil
}

// scopeOf says whose list an entry is on, for the messages.
func scopeOf(e control.SpamListEntry) string {
	if e.User == "" {
		return ""
	}
	return " (" + clean(e.User) + ")"
}

func runSpamLists(a *app, o *options, args []string) error {
	user, err := listUser(o)
	if err != nil {
		return err
	}
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	var res control.SpamListsResult
	if err := a.call(cfg, "spamd", control.SpamLists, control.SpamListsRequest{User: user, All: user == ""}, &res); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tUSER\tKIND\tENTRY\tADDED")
	for _, e := range res.Entries {
		who := "-"
		if e.User != "" {
			who = clean(e.User)
		}
		v := clean(e.Value)
		if e.Subdomains {
			v += " (and subdomains)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Action, who, e.Kind, v, e.Added.UTC().Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}
