package clientconfig

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAutodiscover feeds request bodies to the Autodiscover handler: every answer is a
// status the handler means (200, 400, 404), never a panic.
func FuzzAutodiscover(f *testing.F) {
	f.Add(outlookRequest)
	f.Add(strings.Replace(outlookRequest, "outlook/responseschema/2006a", "mobilesync/responseschema/2006", 1))
	f.Add("<Autodiscover><Request><EMailAddress>a@b.c</EMailAddress></Request></Autodiscover>")
	f.Add("<Autodiscover xmlns='x'><Request><EMailAddress>a@example.test</EMailAddress></Request></Autodiscover>")
	f.Add("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><Autodiscover><Request><EMailAddress>&a;@example.test</EMailAddress></Request></Autodiscover>")
	f.Add("<Autodiscover><Request><EMailAddress><![CDATA[demo@example.test]]></EMailAddress></Request></Autodiscover>")
	f.Add("")
	h := &Handler{Settings: dev, Known: func(_ context.Context, d string) (bool, error) { return d == "example.test", nil }}
	f.Fuzz(func(t *testing.T, body string) {
		w := serve(h, "POST", "autodiscover.example.test", AutodiscoverPath, strings.NewReader(body))
		switch w.Code {
		case 200, 400, 404:
		default:
			t.Errorf("status %d for %q", w.Code, body)
		}
		req, err := ParseAutodiscoverRequest(strings.NewReader(body))
		if err == nil {
			if _, _, ok := splitAddress(req.EMailAddress); !ok {
				t.Errorf("accepted address %q", req.EMailAddress)
			}
		}
	})
}

// FuzzAutoconfig feeds emailaddress parameters and host names to the autoconfig handler.
func FuzzAutoconfig(f *testing.F) {
	f.Add("autoconfig.example.test", "demo@example.test")
	f.Add("example.test", "")
	f.Add("autoconfig.", "@")
	f.Add("xn--bcher-kva.test", "a@xn--bcher-kva.test")
	h := &Handler{Settings: dev, Known: func(_ context.Context, d string) (bool, error) { return d == "example.test", nil }}
	f.Fuzz(func(t *testing.T, host, addr string) {
		r := httptest.NewRequest("GET", "https://x"+AutoconfigPath, nil)
		r.Host = host
		q := r.URL.Query()
		q.Set("emailaddress", addr)
		r.URL.RawQuery = q.Encode()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 400, 404:
		default:
			t.Errorf("status %d for host %q, address %q", w.Code, host, addr)
		}
	})
}
