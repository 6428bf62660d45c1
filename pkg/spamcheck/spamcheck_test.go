package spamcheck

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	good := `{"queue_id":"Q1","from":"a@b.test","rcpt":["c@d.test"],"client_addr":"192.0.2.1","helo":"x.test","offset":100,"size":20}`
	r, err := DecodeRequest([]byte(good))
	if err != nil || r.QueueID != "Q1" || r.Offset != 100 || r.Size != 20 || r.Recipients[0] != "c@d.test" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{
		``, `[]`, `{"rcpt":["c@d.test"],"client_addr":"nope"}`,
		`{"rcpt":[],"client_addr":"192.0.2.1"}`,
		`{"rcpt":["c@d.test"],"client_addr":"192.0.2.1","offset":-1}`,
		`{"rcpt":["c@d.test"],"client_addr":"192.0.2.1","helo":"a\r\nb"}`,
		`{"rcpt":["c@d.test"],"client_addr":"192.0.2.1","from":"` + strings.Repeat("a", 2000) + `"}`,
	} {
		if _, err := DecodeRequest([]byte(bad)); err == nil {
			t.Errorf("DecodeRequest(%.60q) succeeded", bad)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"queue_id":"Q1","from":"a@b.test","rcpt":["c@d.test"],"client_addr":"192.0.2.1","helo":"x.test","offset":100,"size":20}`))
	f.Add([]byte(`{"rcpt":["c@d.test"],"client_addr":"::1","tls":"TLS1.3","offset":0,"size":0}`))
	f.Add([]byte(`{"rcpt":null,"client_addr":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if r.Offset < 0 || r.Size < 0 || len(r.Recipients) == 0 {
			t.Fatalf("accepted %+v", r)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDecodeGreylistRequest(t *testing.T) {
	r, err := DecodeGreylistRequest([]byte(`{"client_addr":"2001:db8::1","from":"","rcpt":"a@example.test"}`))
	if err != nil || r.ClientAddr != "2001:db8::1" || r.Rcpt != "a@example.test" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []string{``, `{}`, `{"client_addr":"x","rcpt":"a@b"}`, `{"client_addr":"192.0.2.1"}`,
		`{"client_addr":"192.0.2.1","rcpt":"a@b\r\n"}`, `{"client_addr":"192.0.2.1","rcpt":"a@b","from":"` + strings.Repeat("x", 2000) + `"}`} {
		if _, err := DecodeGreylistRequest([]byte(bad)); err == nil {
			t.Errorf("DecodeGreylistRequest(%.60q) succeeded", bad)
		}
	}
}

func FuzzDecodeGreylistRequest(f *testing.F) {
	f.Add([]byte(`{"client_addr":"192.0.2.1","from":"a@b.test","rcpt":"c@d.test"}`))
	f.Add([]byte(`{"client_addr":"::ffff:192.0.2.1","from":"","rcpt":"c"}`))
	f.Add([]byte(`{"client_addr":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeGreylistRequest(b)
		if err != nil {
			return
		}
		if r.Rcpt == "" || strings.ContainsAny(r.From+r.Rcpt, "\r\n") {
			t.Fatalf("accepted %+v", r)
		}
	})
}
