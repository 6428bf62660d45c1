package imap

import (
	"strconv"
	"strings"

	"postern/pkg/mime"
)

// ENVELOPE, BODYSTRUCTURE and BODY (RFC 3501 §7.4.2, RFC 9051 §7.5.2) rendered from the
// MIME tree of package mime. The output is a self-contained byte string (literals carry
// their own octets), so that imapd can store it in its index and send it again as is.
//
// The form follows Dovecot's, which mail clients have long been tested against: media
// types, parameters and encodings keep the case of the message's header, defaults are
// lower case ("text" "plain" ("charset" "us-ascii") ... "7bit"), a text part without a
// charset parameter gets ("charset" "us-ascii") added (RFC 2045 §5.2), an address without
// a domain gets the host "MISSING_DOMAIN", and a multipart without parts (no boundary, or
// nested too deep) gets one empty text/plain part so that the grammar's 1*body holds.

// AppendEnvelope appends env as an IMAP envelope (RFC 3501 §7.4.2): the date, subject,
// from, sender, reply-to, to, cc, bcc, in-reply-to and message-id, each NIL when absent.
// Header values go out as they are in the message (encoded-words undecoded), strings that
// hold 8-bit octets as literals.
func AppendEnvelope(b []byte, env *mime.Envelope) []byte {
	b = append(b, '(')
	b = appendEnvString(b, env.Date)
	b = append(b, ' ')
	b = appendEnvString(b, env.Subject)
	for _, l := range [][]mime.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		b = append(b, ' ')
		b = appendAddressList(b, l)
	}
	b = append(b, ' ')
	b = appendEnvString(b, env.InReplyTo)
	b = append(b, ' ')
	b = appendEnvString(b, env.MessageID)
	return append(b, ')')
}

// appendEnvString appends a header value: NIL when absent, else a string (an empty
// value is "", as Dovecot sends an empty Subject), without CR, LF or NUL.
func appendEnvString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "NIL"...)
	}
	return AppendString(b, cleanString(*s))
}

// cleanString removes the octets that no IMAP string may hold (NUL) and those that an
// unfolded header value must not (CR, LF).
func cleanString(s string) string {
	if !strings.ContainsAny(s, "\x00\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == 0 || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// structNString appends s as an nstring, NIL when empty.
func structNString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "NIL"...)
	}
	return AppendString(b, cleanString(s))
}

// appendAddressList appends an address list: NIL when empty, else
// "(" 1*("(" name SP adl SP mailbox SP host ")") ")" with groups as RFC 3501 §7.4.2
// describes: (NIL NIL "group" NIL) ... (NIL NIL NIL NIL).
func appendAddressList(b []byte, l []mime.Address) []byte {
	if len(l) == 0 {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	for _, a := range l {
		b = append(b, '(')
		b = structNString(b, a.Name)
		b = append(b, ' ')
		b = structNString(b, a.Route)
		b = append(b, ' ')
		switch {
		case a.Group && a.Mailbox == "":
			b = append(b, "NIL NIL"...) // end of group
		case a.Group:
			b = AppendString(b, cleanString(a.Mailbox))
			b = append(b, " NIL"...)
		default:
			mbox, host := a.Mailbox, a.Host
			if mbox == "" {
				mbox = "MISSING_MAILBOX"
			}
			if host == "" {
				host = "MISSING_DOMAIN"
			}
			b = AppendString(b, cleanString(mbox))
			b = append(b, ' ')
			b = AppendString(b, cleanString(host))
		}
		b = append(b, ')')
	}
	return append(b, ')')
}

// AppendBodyStructure appends the body structure of p, the root Part of a mime.Message:
// with extension data for FETCH BODYSTRUCTURE (extended set), without for FETCH BODY
// (RFC 3501 §7.4.2, RFC 9051 §7.5.2). Sizes are those of the CRLF form of the message;
// text parts carry their line count; message/rfc822 parts carry the envelope, body
// structure and line count of the encapsulated message. message/global parts are written
// as basic bodies (see below).
func AppendBodyStructure(b []byte, p *mime.Part, extended bool) []byte {
	b = append(b, '(')
	switch {
	case p.IsMultipart():
		if len(p.Parts) == 0 {
			b = appendEmptyText(b, extended)
		}
		for _, c := range p.Parts {
			b = AppendBodyStructure(b, c, extended)
		}
		b = append(b, ' ')
		b = AppendString(b, cleanString(p.Subtype))
		if extended {
			// body-ext-mpart: body-fld-param SP body-fld-dsp SP body-fld-lang SP body-fld-loc
			b = append(b, ' ')
			b = appendParams(b, p.Params, false)
			b = appendExtension(b, p)
		}
	default:
		if isRFC822(p) {
			b = append(b, `"message" "rfc822"`...) // as Dovecot writes it, whatever the case
		} else {
			b = AppendString(b, cleanString(p.Type))
			b = append(b, ' ')
			b = AppendString(b, cleanString(p.Subtype))
		}
		b = append(b, ' ')
		b = appendParams(b, p.Params, p.IsText())
		b = append(b, ' ')
		b = structNString(b, p.ID)
		b = append(b, ' ')
		b = structNString(b, p.Description)
		b = append(b, ' ')
		if p.Encoding == "" {
			b = append(b, `"7bit"`...)
		} else {
			b = AppendString(b, cleanString(p.Encoding))
		}
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.BodyRange.Size, 10)
		switch {
		case isRFC822(p):
			// body-type-msg: ... SP envelope SP body SP body-fld-lines. Only for
			// message/rfc822: RFC 3501's media-message knows no other subtype, so an
			// IMAP4rev1 client would misread a message/global written this way
			// (RFC 9051 adds GLOBAL); like Dovecot, message/global goes out as a basic
			// body, and the same bytes serve both revisions.
			b = append(b, ' ')
			if p.Message != nil {
				b = AppendEnvelope(b, p.Message.Envelope())
				b = append(b, ' ')
				b = AppendBodyStructure(b, p.Message, extended)
			} else {
				// Not parsed (encoded, or nested too deep): an empty message.
				b = AppendEnvelope(b, &mime.Envelope{})
				b = append(b, ' ')
				b = appendEmptyText(b, extended)
			}
			b = append(b, ' ')
			b = strconv.AppendInt(b, p.Lines, 10)
		case p.IsText():
			b = append(b, ' ')
			b = strconv.AppendInt(b, p.Lines, 10)
		}
		if extended {
			// body-ext-1part: body-fld-md5 SP body-fld-dsp SP body-fld-lang SP body-fld-loc
			b = append(b, ' ')
			b = structNString(b, p.MD5)
			b = appendExtension(b, p)
		}
	}
	return append(b, ')')
}

func isRFC822(p *mime.Part) bool {
	return strings.EqualFold(p.Type, "message") && strings.EqualFold(p.Subtype, "rfc822")
}

// appendEmptyText appends the body structure of an empty text/plain part.
func appendEmptyText(b []byte, extended bool) []byte {
	b = append(b, `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0`...)
	if extended {
		b = append(b, " NIL NIL NIL NIL"...)
	}
	return append(b, ')')
}

// appendExtension appends SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
func appendExtension(b []byte, p *mime.Part) []byte {
	b = append(b, ' ')
	if p.Disposition == "" {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		b = AppendString(b, cleanString(p.Disposition))
		b = append(b, ' ')
		b = appendParams(b, p.DispositionParams, false)
		b = append(b, ')')
	}
	b = append(b, ' ')
	if len(p.Language) == 0 {
		b = append(b, "NIL"...)
	} else {
		b = append(b, '(')
		for i, l := range p.Language {
			if i > 0 {
				b = append(b, ' ')
			}
			b = AppendString(b, cleanString(l))
		}
		b = append(b, ')')
	}
	b = append(b, ' ')
	return structNString(b, p.Location)
}

// appendParams appends body-fld-param: NIL, or "(" name SP value ... ")". Values that
// are not printable ASCII (decoded from RFC 2231 or RFC 2047, or raw 8-bit) go out in
// the RFC 2231 extended form (the name with a "*", the value as utf-8, two apostrophes
// and %XX escapes), which every MIME client reads and which keeps the string 7-bit. defaultCharset adds "charset" "us-ascii" when there is
// no charset parameter (text parts, RFC 2045 §5.2).
func appendParams(b []byte, ps []mime.Param, defaultCharset bool) []byte {
	hasCharset := false
	for _, p := range ps {
		if strings.EqualFold(p.Name, "charset") {
			hasCharset = true
		}
	}
	if len(ps) == 0 && !defaultCharset {
		return append(b, "NIL"...)
	}
	b = append(b, '(')
	n := 0
	for _, p := range ps {
		if n > 0 {
			b = append(b, ' ')
		}
		n++
		if printableASCII(p.Value) {
			b = AppendString(b, cleanString(p.Name))
			b = append(b, ' ')
			b = AppendString(b, p.Value)
		} else {
			b = AppendString(b, cleanString(p.Name)+"*")
			b = append(b, ' ')
			b = AppendString(b, "utf-8''"+percentEncode(p.Value))
		}
	}
	if defaultCharset && !hasCharset {
		if n > 0 {
			b = append(b, ' ')
		}
		b = append(b, `"charset" "us-ascii"`...)
	}
	return append(b, ')')
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c >= 0x7f {
			return false
		}
	}
	return true
}

// percentEncode writes s as an RFC 2231 §4 extended value: attribute-chars as they are,
// every other octet as %XX.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && !strings.ContainsRune(`*'%()<>@,;:\"/[]?=`, rune(c)) {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}
