package main

import (
	"testing"

	"postern/pkg/smtp"
)

func TestDecodeXtext(t *testing.T) {
	for in, want := range map[string]string{
		"abc":        "abc",
		"a+2Bb":      "a+b",
		"+3D+20x":    "= x",
		"":           "",
		"user+40ex":  "user@ex",
		"+41+42+43":  "ABC",
		"!~":         "!~",
		"percent%25": "percent%25",
	} {
		if got, ok := decodeXtext(in); !ok || got != want {
			t.Errorf("decodeXtext(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"a+", "a+2", "+2b", "+GG", "a b", "a=b", "é"} {
		if got, ok := decodeXtext(in); ok {
			t.Errorf("decodeXtext(%q) = %q, want an error", in, got)
		}
	}
}

func TestParseBdat(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		size int64
		last bool
		ok   bool
	}{
		{"0", 0, false, true},
		{"100", 100, false, true},
		{"0 LAST", 0, true, true},
		{"12 last", 12, true, true},
		{"", 0, false, false},
		{"x", 0, false, false},
		{"-1", 0, false, false},
		{"1 FIRST", 0, false, false},
		{"1 LAST x", 0, false, false},
		{"1234567890123456789", 0, false, false},
	} {
		size, last, ok := parseBdat(tc.arg)
		if size != tc.size || last != tc.last || ok != tc.ok {
			t.Errorf("parseBdat(%q) = %d %v %v", tc.arg, size, last, ok)
		}
	}
}

func FuzzDSNParams(f *testing.F) {
	for _, s := range []string{"abc+2B", "rfc822;a+40b.test", "utf-8;x", "NEVER", "success,delay", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		decodeXtext(s)
		parseEnvID(s)
		smtp.ParseNotify(s)
		parseORcpt(s)
		parseBdat(s)
	})
}
