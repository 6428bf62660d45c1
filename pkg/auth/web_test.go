package auth

import "testing"

// FuzzParseWebResponse: the client's message of X-POSTERN-WEB never crashes its parser,
// and what it accepts round-trips.
func FuzzParseWebResponse(f *testing.F) {
	f.Add([]byte("a@b.example\x00token"))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, tok, err := ParseWebResponse(b)
		if err == nil && string(WebResponse(u, tok)) != string(b) {
			t.Fatalf("%q parsed as %q, %q", b, u, tok)
		}
	})
}
