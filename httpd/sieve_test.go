package main

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// TestVacationDatesChecked: the reply's first and last days are checked before sieved is
// asked: a date not written YYYY-MM-DD, or a last day before the first, is refused with
// the reason; good days go on to sieved (which this test has not: 503).
func TestVacationDatesChecked(t *testing.T) {
	s, _ := newTestServer(t)
	newFakeControl(t, s)
	c := login(t, s)
	sess := s.sessions.get(c.Value)
	post := func(first, last string) *httptest.ResponseRecorder {
		return do(s, "POST", "/account/vacation", url.Values{"csrf": {sess.csrf}, "op": {"set"}, "message": {"Away"}, "days": {"7"},
			"first": {first}, "last": {last}}, c)
	}
	for _, bad := range [][2]string{{"2026-12-20", "2026-12-10"}, {"12/10/2026", ""}, {"", "2026-12-32"}, {"tomorrow", ""}} {
		w := post(bad[0], bad[1])
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Check the first and last days of the reply") {
			t.Errorf("%q..%q: %d\n%s", bad[0], bad[1], w.Code, w.Body)
		}
	}
	for _, good := range [][2]string{{"2026-12-10", "2026-12-20"}, {"2026-12-10", ""}, {"", "2026-12-20"}, {"2026-12-10", "2026-12-10"}, {"", ""}} {
		if w := post(good[0], good[1]); w.Code != http.StatusServiceUnavailable {
			t.Errorf("%q..%q: %d, want 503 (good days, no sieved)\n%s", good[0], good[1], w.Code, w.Body)
		}
	}
}
