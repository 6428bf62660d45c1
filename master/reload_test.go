package main

import (
	"slices"
	"testing"

	"postern/pkg/config"
)

const baseConfig = `
hostname = "mx.example.test"
spool_dir = "spool"

[services.smtpd]
listen = { smtp = "127.0.0.1:2525", submission = "127.0.0.1:2587" }
`

func parse(t *testing.T, text string) *config.Config {
	t.Helper()
	c, err := config.Parse("/srv/inst/postern.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPlanReload(t *testing.T) {
	old := parse(t, baseConfig)
	all := allDaemons()
	for _, tc := range []struct {
		name                       string
		text                       string
		global                     bool
		start, stop, restart, keep []string
	}{
		{name: "unchanged", text: baseConfig, keep: all},
		{
			name: "listener changed",
			text: `
hostname = "mx.example.test"
spool_dir = "spool"
[services.smtpd]
listen = { smtp = "127.0.0.1:2525", submission = "127.0.0.1:2588" }
`,
			restart: []string{"smtpd"}, keep: except(all, "smtpd"),
		},
		{
			name:    "global setting changed",
			text:    baseConfig + "\n[queue]\nmin_backoff = \"1s\"\n",
			global:  true,
			restart: all,
		},
		{
			name: "service disabled",
			text: baseConfig + "\n[services.local]\nenable = false\n",
			stop: []string{"local"}, keep: except(all, "local"),
		},
		{
			name:    "user and args changed",
			text:    baseConfig + "\n[services.qmgr]\nuser = \"other\"\n[services.cleanup]\nargs = [\"-v\"]\n",
			restart: []string{"qmgr", "cleanup"}, keep: except(all, "qmgr", "cleanup"),
		},
		{
			name: "empty args equal none",
			text: baseConfig + "\n[services.cleanup]\nargs = []\n",
			keep: all,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planReload(old, parse(t, tc.text))
			if p.Global != tc.global || !slices.Equal(p.Start, tc.start) || !slices.Equal(p.Stop, tc.stop) ||
				!slices.Equal(p.Restart, tc.restart) || !slices.Equal(p.Keep, tc.keep) {
				t.Errorf("plan %+v\nwant global=%v start=%v stop=%v restart=%v keep=%v", p, tc.global, tc.start, tc.stop, tc.restart, tc.keep)
			}
		})
	}

	// A daemon enabled again is started.
	off := parse(t, baseConfig+"\n[services.local]\nenable = false\n")
	p := planReload(off, old)
	if !slices.Equal(p.Start, []string{"local"}) || len(p.Restart) != 0 || !p.changed() {
		t.Errorf("enabling local: %+v", p)
	}
	if planReload(old, old).changed() {
		t.Error("an unchanged configuration changes something")
	}
}
