package main

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"

	"postern/pkg/config"
)

func TestReadCommand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want *command
		err  error
	}{
		{"capability\r\n", &command{name: "CAPABILITY", first: "capability"}, nil},
		{"PUTSCRIPT \"a \\\"b\\\\\" {5+}\r\nkeep;\r\n", &command{name: "PUTSCRIPT", first: "PUTSCRIPT", args: []string{`a "b\`, "keep;"}}, nil},
		{"HAVESPACE \"x\" 100\r\n", &command{name: "HAVESPACE", first: "HAVESPACE", args: []string{"x", "100"}}, nil},
		{"PUTSCRIPT {1}\r\na {2+}\r\nbc\r\n", &command{name: "PUTSCRIPT", first: "PUTSCRIPT", args: []string{"a", "bc"}}, nil},
		{"\"dGVzdA==\"\r\n", &command{name: "DGVZDA==", first: "dGVzdA==", args: []string{}}, nil},
		{"X \"open\r\n", nil, errProtocol},
		{"X \"bad\\n\"\r\n", nil, errProtocol},
		{"X {x+}\r\n", nil, errProtocol},
		{"X {-1}\r\n", nil, errProtocol},
		{"X {9999999999}\r\n", nil, errTooLarge},
		{"X {3+} y\r\n", nil, errProtocol},
		{"\r\n", nil, errProtocol},
		{strings.Repeat("a", maxLine+1) + "\r\n", nil, errTooLarge},
		{"X a b c d e f g h i j\r\n", nil, errProtocol},
	} {
		got, err := readCommand(bufio.NewReader(strings.NewReader(c.in)))
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%.30q: err %v, want %v", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%.30q: %v", c.in, err)
			continue
		}
		if got.args == nil {
			got.args = []string{}
		}
		if c.want.args == nil {
			c.want.args = []string{}
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%.30q: %+v, want %+v", c.in, got, c.want)
		}
	}
}

// FuzzReadCommand feeds arbitrary input to the command reader: it must not panic, and
// its errors are the protocol's (NO or BYE) or the end of input.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"CAPABILITY\r\n", "AUTHENTICATE \"PLAIN\" \"AGRlbW8AcHc=\"\r\n",
		"PUTSCRIPT \"s\" {6+}\r\nkeep;\n\r\n", "NOOP \"t\"\r\n", "X {2}\r\nab \"c\\\\\"\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(strings.NewReader(string(in)))
		for {
			c, err := readCommand(r)
			if err != nil {
				if !errors.Is(err, errProtocol) && !errors.Is(err, errTooLarge) && err.Error() != "EOF" && err.Error() != "unexpected EOF" {
					t.Fatalf("error %v", err)
				}
				if !errors.Is(err, errProtocol) {
					return
				}
				continue
			}
			if len(c.args) > maxArgs {
				t.Fatalf("command %+v", c)
			}
		}
	})
}

func TestStore(t *testing.T) {
	s := NewStore(t.TempDir(), config.Default().Sieve)
	maxScripts := s.MaxScripts
	const u = "bob@example.test"
	if err := s.Put(u, "a", []byte("keep;")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(u, "bad", []byte("keep")); err == nil {
		t.Error("a broken script was stored")
	}
	for _, n := range []string{"", ".x", "a/b", "a\nb", strings.Repeat("x", maxNameLength+1)} {
		if err := s.Put(u, n, []byte("keep;")); !errors.Is(err, errName) {
			t.Errorf("name %q: %v", n, err)
		}
	}
	if err := s.SetActive(u, "nope"); !errors.Is(err, errNoScript) {
		t.Errorf("SetActive of a missing script: %v", err)
	}
	if err := s.SetActive(u, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(u, "a"); !errors.Is(err, errActive) {
		t.Errorf("Delete of the active script: %v", err)
	}
	s.Put(u, "b", []byte("discard;"))
	if err := s.Rename(u, "a", "b"); !errors.Is(err, errExists) {
		t.Errorf("Rename onto an existing script: %v", err)
	}
	if err := s.Rename(u, "a", "c"); err != nil {
		t.Fatal(err)
	}
	list, _ := s.List(u)
	if len(list) != 2 || list[0].Name != "b" || list[0].Active || list[1].Name != "c" || !list[1].Active {
		t.Errorf("List: %+v", list)
	}
	for i := 0; i < maxScripts-2; i++ {
		s.Put(u, "s"+strings.Repeat("x", i), []byte("keep;"))
	}
	if err := s.Put(u, "one-too-many", []byte("keep;")); !errors.Is(err, errQuota) {
		t.Errorf("script %d: %v", maxScripts+1, err)
	}
	if err := s.SetActive(u, ""); err != nil || s.isActive(u, "c") {
		t.Errorf("deactivate: %v", err)
	}
}
