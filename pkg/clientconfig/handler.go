package clientconfig

import (
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"postern/pkg/mtasts"
)

// Paths the Handler serves.
const (
	// AutoconfigPath is where Thunderbird looks on autoconfig.<domain>, and
	// WellKnownAutoconfigPath where it looks on the domain itself.
	AutoconfigPath          = "/mail/config-v1.1.xml"
	WellKnownAutoconfigPath = "/.well-known/autoconfig/mail/config-v1.1.xml"
	// AutodiscoverPath is where Outlook posts its request, on autodiscover.<domain> or
	// the domain (clients vary the case of its letters).
	AutodiscoverPath = "/autodiscover/autodiscover.xml"
)

// maxRequest bounds an Autodiscover request's body.
const maxRequest = 64 << 10

// Handler serves Thunderbird's autoconfig file and Microsoft's Autodiscover answer for
// the domains Known accepts; other paths, and domains that are not ours, are 404.
type Handler struct {
	Settings Settings
	Known    Known
	// Log records failures of Known; nil means slog.Default().
	Log *slog.Logger
}

// ServeHTTP dispatches on the path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == AutoconfigPath || r.URL.Path == WellKnownAutoconfigPath:
		h.autoconfig(w, r)
	case strings.EqualFold(r.URL.Path, AutodiscoverPath):
		h.autodiscover(w, r)
	default:
		http.NotFound(w, r)
	}
}

// ours says whether domain is one of ours, answering the client itself when it is not
// or when that cannot be known.
func (h *Handler) ours(w http.ResponseWriter, r *http.Request, domain string) bool {
	ok, err := h.Known(r.Context(), domain)
	if err != nil {
		log := h.Log
		if log == nil {
			log = slog.Default()
		}
		log.Warn("cannot tell whether a domain is ours, for client settings", "domain", domain, "err", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return false
	}
	if !ok {
		http.NotFound(w, r)
	}
	return ok
}

// autoconfig answers Thunderbird. The domain is that of the emailaddress parameter when
// the client gives one, else the host's, without "autoconfig.".
func (h *Handler) autoconfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var domain string
	if a := r.URL.Query().Get("emailaddress"); a != "" {
		_, d, ok := splitAddress(a)
		if !ok {
			http.Error(w, "emailaddress is not a mail address", http.StatusBadRequest)
			return
		}
		domain = d
	} else {
		domain = strings.TrimPrefix(mtasts.RequestHost(r), "autoconfig.")
		if !validDomain(domain) {
			http.NotFound(w, r)
			return
		}
	}
	if !h.ours(w, r, domain) {
		return
	}
	body, err := Autoconfig(h.Settings, domain)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// autodiscover answers an Autodiscover POX request (POST of an XML document naming the
// address).
func (h *Handler) autodiscover(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, err := ParseAutodiscoverRequest(http.MaxBytesReader(w, r.Body, maxRequest))
	var body []byte
	switch {
	case errors.Is(err, errSchema):
		body, err = autodiscoverError(600, "Invalid Request")
	case err != nil:
		http.Error(w, "not an Autodiscover request", http.StatusBadRequest)
		return
	default:
		_, domain, _ := splitAddress(req.EMailAddress)
		if !h.ours(w, r, domain) {
			return
		}
		body, err = Autodiscover(h.Settings, req.EMailAddress)
	}
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// --- Thunderbird ---

type tbConfig struct {
	XMLName  xml.Name   `xml:"clientConfig"`
	Version  string     `xml:"version,attr"`
	Provider tbProvider `xml:"emailProvider"`
}

type tbProvider struct {
	ID       string     `xml:"id,attr"`
	Domain   string     `xml:"domain"`
	Display  string     `xml:"displayName"`
	Short    string     `xml:"displayShortName"`
	Incoming []tbServer `xml:"incomingServer"`
	Outgoing []tbServer `xml:"outgoingServer"`
}

type tbServer struct {
	Type       string `xml:"type,attr"`
	Hostname   string `xml:"hostname"`
	Port       int    `xml:"port"`
	SocketType string `xml:"socketType"`
	Auth       string `xml:"authentication"`
	Username   string `xml:"username"`
}

// Autoconfig returns the autoconfig file of domain (Thunderbird's clientConfig format
// 1.1): IMAP and SMTP servers, the full address as user name, the password sent inside
// TLS.
func Autoconfig(s Settings, domain string) ([]byte, error) {
	p := tbProvider{ID: domain, Domain: domain, Display: domain + " mail (" + s.Hostname + ")", Short: domain}
	tb := func(typ string, sv server) tbServer {
		sock := "STARTTLS"
		if sv.implicit {
			sock = "SSL"
		}
		return tbServer{Type: typ, Hostname: s.Hostname, Port: sv.port, SocketType: sock, Auth: "password-cleartext", Username: "%EMAILADDRESS%"}
	}
	for _, sv := range s.imap() {
		p.Incoming = append(p.Incoming, tb("imap", sv))
	}
	for _, sv := range s.smtp() {
		p.Outgoing = append(p.Outgoing, tb("smtp", sv))
	}
	return marshal(tbConfig{Version: "1.1", Provider: p})
}

// --- Autodiscover ---

// Autodiscover (POX) namespaces, as Outlook sends and expects them.
const (
	adRequestNS        = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	adResponseNS       = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	adOutlookSchema    = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
	maxAutodiscoverDoc = maxRequest
)

// AutodiscoverRequest is what an Autodiscover POX request asks.
type AutodiscoverRequest struct {
	EMailAddress             string
	AcceptableResponseSchema string
}

var errSchema = errors.New("autodiscover: a response schema other than Outlook's is asked for")

// ParseAutodiscoverRequest reads an Autodiscover request document: <Autodiscover> with a
// <Request> naming EMailAddress and, optionally, AcceptableResponseSchema, which must be
// Outlook's (mobile sync, ActiveSync, is not offered). The address must look like one.
func ParseAutodiscoverRequest(r io.Reader) (AutodiscoverRequest, error) {
	var doc struct {
		XMLName xml.Name `xml:"Autodiscover"`
		Request struct {
			EMailAddress             string `xml:"EMailAddress"`
			AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
		} `xml:"Request"`
	}
	d := xml.NewDecoder(io.LimitReader(r, maxAutodiscoverDoc))
	d.Strict = true
	if err := d.Decode(&doc); err != nil {
		return AutodiscoverRequest{}, errors.New("autodiscover: not an Autodiscover request document")
	}
	if doc.XMLName.Space != "" && doc.XMLName.Space != adRequestNS {
		return AutodiscoverRequest{}, errors.New("autodiscover: unknown request namespace")
	}
	req := AutodiscoverRequest{EMailAddress: strings.TrimSpace(doc.Request.EMailAddress), AcceptableResponseSchema: strings.TrimSpace(doc.Request.AcceptableResponseSchema)}
	if req.AcceptableResponseSchema != "" && req.AcceptableResponseSchema != adOutlookSchema {
		return req, errSchema
	}
	if _, _, ok := splitAddress(req.EMailAddress); !ok {
		return req, errors.New("autodiscover: EMailAddress is not a mail address")
	}
	return req, nil
}

type adDoc struct {
	XMLName  xml.Name    `xml:"Autodiscover"`
	NS       string      `xml:"xmlns,attr"`
	Response *adResponse `xml:"Response"`
}

type adResponse struct {
	NS      string     `xml:"xmlns,attr"`
	Account *adAccount `xml:"Account,omitempty"`
	Error   *adError   `xml:"Error,omitempty"`
}

type adAccount struct {
	AccountType string       `xml:"AccountType"`
	Action      string       `xml:"Action"`
	Protocols   []adProtocol `xml:"Protocol"`
}

type adProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	DomainRequired string `xml:"DomainRequired"`
	LoginName      string `xml:"LoginName"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	Encryption     string `xml:"Encryption,omitempty"`
	AuthRequired   string `xml:"AuthRequired"`
}

type adError struct {
	ErrorCode int    `xml:"ErrorCode"`
	Message   string `xml:"Message"`
}

// Autodiscover returns the Autodiscover POX answer for the address: an email account
// with its IMAP and SMTP servers (the first of each: implicit TLS if served), the address
// as login name.
func Autodiscover(s Settings, addr string) ([]byte, error) {
	acct := &adAccount{AccountType: "email", Action: "settings"}
	proto := func(typ string, sv []server) {
		if len(sv) == 0 {
			return
		}
		p := adProtocol{Type: typ, Server: s.Hostname, Port: sv[0].port, DomainRequired: "off", LoginName: addr, SPA: "off", SSL: "on", AuthRequired: "on"}
		if !sv[0].implicit {
			p.Encryption = "TLS" // STARTTLS
		}
		acct.Protocols = append(acct.Protocols, p)
	}
	proto("IMAP", s.imap())
	proto("SMTP", s.smtp())
	return marshal(adDoc{NS: adResponseNS, Response: &adResponse{NS: adOutlookSchema, Account: acct}})
}

func autodiscoverError(code int, msg string) ([]byte, error) {
	return marshal(adDoc{NS: adResponseNS, Response: &adResponse{NS: adOutlookSchema, Error: &adError{ErrorCode: code, Message: msg}}})
}

func marshal(v any) ([]byte, error) {
	out, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}
