package clientconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// MobileConfigType is the media type of a configuration profile.
const MobileConfigType = "application/x-apple-aspen-config"

// MobileConfig returns an Apple configuration profile (an XML property list) that sets
// up the account addr in iOS and macOS Mail: IMAP and SMTP on this host over TLS, the
// address as user name, the same password for both. It holds no password: Mail asks
// for it when the profile is installed (an app password fits). name is the sender name
// shown in Mail ("" for none). The profile is unsigned, so the device says so. Its
// identifiers derive from the host and the address, so that installing a newer one
// replaces the older.
func MobileConfig(s Settings, addr, name string) ([]byte, error) {
	addr, _, ok := splitAddress(addr)
	if !ok {
		return nil, fmt.Errorf("mobileconfig: %q is not a mail address", addr)
	}
	imap, smtp := s.imap(), s.smtp()
	if len(imap) == 0 || len(smtp) == 0 {
		return nil, fmt.Errorf("mobileconfig: imapd or smtpd has no listener for clients")
	}
	// Reverse-DNS identifiers, as Apple's are.
	labels := strings.Split(s.Hostname, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	base := strings.Join(labels, ".") + ".postern"
	id := base + ".mail." + strings.ToLower(addr)
	account := plist{
		{"EmailAccountDescription", addr},
		{"EmailAccountName", name},
		{"EmailAccountType", "EmailTypeIMAP"},
		{"EmailAddress", addr},
		{"IncomingMailServerAuthentication", "EmailAuthPassword"},
		{"IncomingMailServerHostName", s.Hostname},
		{"IncomingMailServerPortNumber", imap[0].port},
		{"IncomingMailServerUseSSL", true}, // TLS: implicit on 993, STARTTLS on 143
		{"IncomingMailServerUsername", addr},
		{"OutgoingMailServerAuthentication", "EmailAuthPassword"},
		{"OutgoingMailServerHostName", s.Hostname},
		{"OutgoingMailServerPortNumber", smtp[0].port},
		{"OutgoingMailServerUseSSL", true},
		{"OutgoingMailServerUsername", addr},
		{"OutgoingPasswordSameAsIncomingPassword", true},
		{"PayloadDescription", "Mail account " + addr + " on " + s.Hostname},
		{"PayloadDisplayName", addr},
		{"PayloadIdentifier", id + ".account"},
		{"PayloadType", "com.apple.mail.managed"},
		{"PayloadUUID", uuidOf(id + ".account")},
		{"PayloadVersion", 1},
	}
	if name == "" {
		account = slicesDeleteKey(account, "EmailAccountName")
	}
	profile := plist{
		{"PayloadContent", []plist{account}},
		{"PayloadDescription", "Sets up the mail account " + addr + " (IMAP and SMTP on " + s.Hostname + ")."},
		{"PayloadDisplayName", "Mail: " + addr},
		{"PayloadIdentifier", id},
		{"PayloadOrganization", s.Hostname},
		{"PayloadRemovalDisallowed", false},
		{"PayloadType", "Configuration"},
		{"PayloadUUID", uuidOf(id)},
		{"PayloadVersion", 1},
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	if err := profile.write(&b, 0); err != nil {
		return nil, err
	}
	b.WriteString("</plist>\n")
	return b.Bytes(), nil
}

// ServeMobileConfig sends the profile of addr as a download, for the account page.
func ServeMobileConfig(w http.ResponseWriter, s Settings, addr, name string) {
	body, err := MobileConfig(s, addr, name)
	if err != nil {
		http.Error(w, "no profile for this account", http.StatusInternalServerError)
		return
	}
	local, _, _ := strings.Cut(addr, "@")
	file := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, local)
	w.Header().Set("Content-Type", MobileConfigType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+file+`.mobileconfig"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

// slicesDeleteKey returns p without the entry key.
func slicesDeleteKey(p plist, key string) plist {
	out := p[:0:0]
	for _, kv := range p {
		if kv.key != key {
			out = append(out, kv)
		}
	}
	return out
}

// plist is a property list dictionary, its keys in order.
type plist []struct {
	key   string
	value any // string, int, bool or []plist
}

func (p plist) write(b *bytes.Buffer, depth int) error {
	ind := strings.Repeat("\t", depth)
	b.WriteString(ind + "<dict>\n")
	for _, kv := range p {
		b.WriteString(ind + "\t<key>")
		xml.EscapeText(b, []byte(kv.key))
		b.WriteString("</key>\n" + ind + "\t")
		switch v := kv.value.(type) {
		case string:
			b.WriteString("<string>")
			xml.EscapeText(b, []byte(v))
			b.WriteString("</string>\n")
		case int:
			b.WriteString("<integer>" + strconv.Itoa(v) + "</integer>\n")
		case bool:
			if v {
				b.WriteString("<true/>\n")
			} else {
				b.WriteString("<false/>\n")
			}
		case []plist:
			b.WriteString("<array>\n")
			for _, d := range v {
				if err := d.write(b, depth+2); err != nil {
					return err
				}
			}
			b.WriteString(ind + "\t</array>\n")
		default:
			return fmt.Errorf("mobileconfig: value of %s has type %T", kv.key, v)
		}
	}
	b.WriteString(ind + "</dict>\n")
	return nil
}

// uuidOf derives a UUID (version 8, RFC 9562 §5.8) from a name, so that the profile of
// an account keeps its identity across downloads.
func uuidOf(name string) string {
	h := sha256.Sum256([]byte(name))
	h[6] = h[6]&0x0f | 0x80 // version 8
	h[8] = h[8]&0x3f | 0x80 // variant 10
	return fmt.Sprintf("%X-%X-%X-%X-%X", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
