package main

import (
	"bufio"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sieveReader(s string) *sieveClient {
	return &sieveClient{r: bufio.NewReader(strings.NewReader(s))}
}

// The responses of sieved as httpd reads them: quoted strings, literals and atoms
// (RFC 5804 §4), ended by OK, NO or BYE.
func TestSieveResponse(t *testing.T) {
	lines, err := sieveReader("\"rules\" ACTIVE\r\n\"a \\\"b\\\\\"\r\n{4}\r\nx\r\ny\r\nOK\r\n").response()
	want := [][]string{{"rules", "ACTIVE"}, {`a "b\`}, {"x\r\ny"}}
	if err != nil || !reflect.DeepEqual(lines, want) {
		t.Errorf("got %q, %v; want %q", lines, err, want)
	}
	_, err = sieveReader("NO (NONEXISTENT) \"No such script\"\r\n").response()
	var no *sieveNo
	if !errors.As(err, &no) || no.text != "No such script" {
		t.Errorf("NO: %v", err)
	}
	for _, bad := range []string{"{99999999}\r\n", "{x}\r\n", "\"open", "{3} junk\r\nabc\r\n"} {
		if _, err := sieveReader(bad).response(); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzSieveResponse: whatever sieved answers, reading it ends without a panic.
func FuzzSieveResponse(f *testing.F) {
	for _, s := range []string{"\"IMPLEMENTATION\" \"Postern\"\r\nOK\r\n", "{3}\r\nabc\r\nOK\r\n", "NO (QUOTA) \"x\"\r\n", "BYE\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sieveReader(s).response()
	})
}
