package clientconfig

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/pkg/config"
)

var dev = Settings{Hostname: "mail.example.test", IMAPS: 10993, IMAP: 10143, Submissions: 10465, Submission: 10587}

func known(_ context.Context, d string) (bool, error) {
	switch d {
	case "example.test":
		return true, nil
	case "broken.test":
		return false, errors.New("authd is down")
	}
	return false, nil
}

func TestFromConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postern.toml")
	os.WriteFile(path, []byte(`hostname = "Mail.Example.Test."
[services.smtpd.listen]
smtp = "127.0.0.1:10025"
submission = "127.0.0.1:10587"
submissions = "127.0.0.1:10465"
[services.imapd.listen]
imap = "127.0.0.1:10143"
imaps = "127.0.0.1:10993"
`), 0o644)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := FromConfig(cfg); s != dev {
		t.Errorf("FromConfig = %+v; want %+v", s, dev)
	}
}

func serve(h http.Handler, method, host, target string, body io.Reader) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "https://"+host+target, body)
	r.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// thunderbird is the part of Thunderbird's clientConfig a client reads.
type thunderbird struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string         `xml:"id,attr"`
		Domain   string         `xml:"domain"`
		Incoming []tbTestServer `xml:"incomingServer"`
		Outgoing []tbTestServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type tbTestServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
	Port           int    `xml:"port"`
}

func TestAutoconfig(t *testing.T) {
	h := &Handler{Settings: dev, Known: known}
	for _, c := range []struct{ host, target string }{
		{"autoconfig.example.test", AutoconfigPath + "?emailaddress=demo%40example.test"},
		{"autoconfig.Example.Test:10443", AutoconfigPath},
		{"example.test", WellKnownAutoconfigPath + "?emailaddress=demo@example.test"},
		{"mail.example.test", WellKnownAutoconfigPath + "?emailaddress=Demo@Example.Test"},
	} {
		w := serve(h, "GET", c.host, c.target, nil)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/xml") {
			t.Fatalf("%s%s: %d %s", c.host, c.target, w.Code, w.Body)
		}
		var tb thunderbird
		if err := xml.Unmarshal(w.Body.Bytes(), &tb); err != nil {
			t.Fatalf("%s%s: not XML: %v\n%s", c.host, c.target, err, w.Body)
		}
		p := tb.Provider
		if tb.Version != "1.1" || p.ID != "example.test" || p.Domain != "example.test" || len(p.Incoming) != 2 || len(p.Outgoing) != 2 {
			t.Fatalf("clientConfig = %+v", tb)
		}
		got := fmt.Sprintf("%+v %+v", p.Incoming, p.Outgoing)
		want := "[{Type:imap Hostname:mail.example.test SocketType:SSL Authentication:password-cleartext Username:%EMAILADDRESS% Port:10993} " +
			"{Type:imap Hostname:mail.example.test SocketType:STARTTLS Authentication:password-cleartext Username:%EMAILADDRESS% Port:10143}] " +
			"[{Type:smtp Hostname:mail.example.test SocketType:SSL Authentication:password-cleartext Username:%EMAILADDRESS% Port:10465} " +
			"{Type:smtp Hostname:mail.example.test SocketType:STARTTLS Authentication:password-cleartext Username:%EMAILADDRESS% Port:10587}]"
		if got != want {
			t.Errorf("servers\n%s\nwant\n%s", got, want)
		}
	}
	for _, c := range []struct {
		method, host, target string
		code                 int
	}{
		{"GET", "autoconfig.other.test", AutoconfigPath, 404},
		{"GET", "autoconfig.example.test", AutoconfigPath + "?emailaddress=x@other.test", 404},
		{"GET", "autoconfig.example.test", AutoconfigPath + "?emailaddress=no-at-sign", 400},
		{"GET", "autoconfig.example.test", AutoconfigPath + "?emailaddress=a%0d%0a@example.test", 400},
		{"GET", "autoconfig.broken.test", AutoconfigPath, 503},
		{"POST", "autoconfig.example.test", AutoconfigPath, 405},
		{"GET", "autoconfig.example.test", "/mail/other.xml", 404},
		{"GET", "bad..host", WellKnownAutoconfigPath, 404},
	} {
		if w := serve(h, c.method, c.host, c.target, nil); w.Code != c.code {
			t.Errorf("%s %s%s: %d; want %d", c.method, c.host, c.target, w.Code, c.code)
		}
	}
}

const outlookRequest = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>demo@example.test</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`

// outlook is the part of an Autodiscover response Outlook reads, namespaces checked.
type outlook struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response struct {
		XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
		Account struct {
			AccountType, Action string
			Protocol            []struct {
				Type, Server, LoginName, SSL, Encryption, SPA, AuthRequired string
				Port                                                        int
			}
		}
		Error struct {
			ErrorCode int
		}
	}
}

func TestAutodiscover(t *testing.T) {
	h := &Handler{Settings: dev, Known: known}
	for _, path := range []string{AutodiscoverPath, "/Autodiscover/Autodiscover.xml"} {
		w := serve(h, "POST", "autodiscover.example.test", path, strings.NewReader(outlookRequest))
		if w.Code != 200 {
			t.Fatalf("POST %s: %d %s", path, w.Code, w.Body)
		}
		var o outlook
		if err := xml.Unmarshal(w.Body.Bytes(), &o); err != nil {
			t.Fatalf("response is not Autodiscover XML: %v\n%s", err, w.Body)
		}
		a := o.Response.Account
		got := fmt.Sprintf("%s %s %+v", a.AccountType, a.Action, a.Protocol)
		want := "email settings [{Type:IMAP Server:mail.example.test LoginName:demo@example.test SSL:on Encryption: SPA:off AuthRequired:on Port:10993} " +
			"{Type:SMTP Server:mail.example.test LoginName:demo@example.test SSL:on Encryption: SPA:off AuthRequired:on Port:10465}]"
		if got != want {
			t.Errorf("account\n%s\nwant\n%s", got, want)
		}
	}
	// Without implicit TLS listeners: STARTTLS, said with Encryption TLS.
	h2 := &Handler{Settings: Settings{Hostname: "mail.example.test", IMAP: 143, Submission: 587}, Known: known}
	w := serve(h2, "POST", "example.test", AutodiscoverPath, strings.NewReader(outlookRequest))
	if !strings.Contains(w.Body.String(), "<Port>587</Port>") || !strings.Contains(w.Body.String(), "<Encryption>TLS</Encryption>") {
		t.Errorf("STARTTLS answer:\n%s", w.Body)
	}
	// ActiveSync's schema is not offered: an Autodiscover error.
	mobile := strings.Replace(outlookRequest, "outlook/responseschema/2006a", "mobilesync/responseschema/2006", 1)
	w = serve(h, "POST", "autodiscover.example.test", AutodiscoverPath, strings.NewReader(mobile))
	var o outlook
	if err := xml.Unmarshal(w.Body.Bytes(), &o); w.Code != 200 || err != nil || o.Response.Error.ErrorCode != 600 {
		t.Errorf("mobilesync request: %d %v\n%s", w.Code, err, w.Body)
	}
	for _, c := range []struct {
		method, body string
		code         int
	}{
		{"POST", strings.Replace(outlookRequest, "example.test", "other.test", 1), 404},
		{"POST", strings.Replace(outlookRequest, "example.test", "broken.test", 1), 503},
		{"POST", "not xml", 400},
		{"POST", strings.Replace(outlookRequest, "demo@example.test", "", 1), 400},
		{"POST", strings.Replace(outlookRequest, "</Autodiscover>", "", 1), 400},
		{"POST", "<Autodiscover><Request><EMailAddress>" + strings.Repeat("a", 70000) + "@example.test</EMailAddress></Request></Autodiscover>", 400},
		{"GET", "", 405},
	} {
		if w := serve(h, c.method, "autodiscover.example.test", AutodiscoverPath, strings.NewReader(c.body)); w.Code != c.code {
			t.Errorf("%s %.60q: %d; want %d", c.method, c.body, w.Code, c.code)
		}
	}
}

// readPlist decodes an XML property list into Go values, strictly: string, int (from
// integer), bool, []any, map[string]any.
func readPlist(t *testing.T, data []byte) map[string]any {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var value func(start xml.StartElement) any
	value = func(start xml.StartElement) any {
		switch start.Name.Local {
		case "string", "integer":
			var s string
			if err := d.DecodeElement(&s, &start); err != nil {
				t.Fatal(err)
			}
			if start.Name.Local == "integer" {
				var n int
				fmt.Sscan(s, &n)
				return n
			}
			return s
		case "true", "false":
			d.Skip()
			return start.Name.Local == "true"
		case "array", "dict":
			var list []any
			m := map[string]any{}
			key := ""
			for {
				tok, err := d.Token()
				if err != nil {
					t.Fatal(err)
				}
				switch tk := tok.(type) {
				case xml.StartElement:
					if tk.Name.Local == "key" {
						d.DecodeElement(&key, &tk)
						continue
					}
					v := value(tk)
					if start.Name.Local == "array" {
						list = append(list, v)
					} else {
						m[key] = v
					}
				case xml.EndElement:
					if start.Name.Local == "array" {
						return list
					}
					return m
				}
			}
		}
		t.Fatalf("unexpected element %s", start.Name.Local)
		return nil
	}
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no plist: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "dict" {
			return value(se).(map[string]any)
		}
	}
}

func TestMobileConfig(t *testing.T) {
	data, err := MobileConfig(dev, "Demo@example.test", `Demo <"&">`)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`)) {
		t.Error("no plist DOCTYPE")
	}
	p := readPlist(t, data)
	if p["PayloadType"] != "Configuration" || p["PayloadVersion"] != 1 || p["PayloadIdentifier"] != "test.example.mail.postern.mail.demo@example.test" {
		t.Errorf("profile %v", p)
	}
	content := p["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("PayloadContent %v", content)
	}
	a := content[0].(map[string]any)
	for k, want := range map[string]any{
		"PayloadType":                            "com.apple.mail.managed",
		"EmailAccountType":                       "EmailTypeIMAP",
		"EmailAddress":                           "Demo@example.test",
		"EmailAccountName":                       `Demo <"&">`,
		"IncomingMailServerHostName":             "mail.example.test",
		"IncomingMailServerPortNumber":           10993,
		"IncomingMailServerUseSSL":               true,
		"IncomingMailServerUsername":             "Demo@example.test",
		"IncomingMailServerAuthentication":       "EmailAuthPassword",
		"OutgoingMailServerHostName":             "mail.example.test",
		"OutgoingMailServerPortNumber":           10465,
		"OutgoingMailServerUseSSL":               true,
		"OutgoingPasswordSameAsIncomingPassword": true,
	} {
		if a[k] != want {
			t.Errorf("%s = %v; want %v", k, a[k], want)
		}
	}
	if _, ok := a["IncomingPassword"]; ok {
		t.Error("the profile holds a password")
	}
	// Stable identity: the same profile twice, another for another account.
	again, _ := MobileConfig(dev, "Demo@example.test", `Demo <"&">`)
	other, _ := MobileConfig(dev, "bob@example.test", "")
	if !bytes.Equal(again, data) || readPlist(t, other)["PayloadUUID"] == p["PayloadUUID"] {
		t.Error("profile identity is not derived from the account")
	}
	if _, ok := readPlist(t, other)["PayloadContent"].([]any)[0].(map[string]any)["EmailAccountName"]; ok {
		t.Error("an empty name is written")
	}
	if u := p["PayloadUUID"].(string); len(u) != 36 || u[14] != '8' {
		t.Errorf("PayloadUUID %q is not a version 8 UUID", u)
	}
	if _, err := MobileConfig(dev, "not an address", ""); err == nil {
		t.Error("a profile for a non-address")
	}
	if _, err := MobileConfig(Settings{Hostname: "h"}, "a@example.test", ""); err == nil {
		t.Error("a profile without servers")
	}

	w := httptest.NewRecorder()
	ServeMobileConfig(w, dev, "demo.user+x@example.test", "")
	if w.Header().Get("Content-Type") != MobileConfigType || w.Header().Get("Content-Disposition") != `attachment; filename="demo.user_x.mobileconfig"` {
		t.Errorf("download headers %v", w.Header())
	}
}
