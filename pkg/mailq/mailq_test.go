package mailq

import "testing"

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"plain text\twith tab":   "plain text\twith tab",
		"bell\a":                 "bell^G",
		"\x1b[2Jclear":           "^[[2Jclear",
		"del\x7f":                "del^?",
		"bad \xff utf8":          `bad \xff utf8`,
		"grüße":                  "grüße",
		"c1 \u009b31m":           `c1 \u009b31m`,
		"line\r\nbreak":          "line^M^Jbreak",
		"":                       "",
		"<user@example.test>":    "<user@example.test>",
		"nul\x00":                "nul^@",
		"emoji \U0001F4EC inbox": "emoji \U0001F4EC inbox",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}
