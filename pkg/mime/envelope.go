package mime

// Envelope is the ENVELOPE of a message (RFC 3501 §7.4.2, RFC 9051 §7.5.2): header values
// as written (unfolded, not decoded), nil or empty where IMAP sends NIL.
type Envelope struct {
	Date      *string // nil when the field is absent
	Subject   *string
	From      []Address
	Sender    []Address // From when Sender is absent or empty (RFC 3501 §7.4.2)
	ReplyTo   []Address // From when Reply-To is absent or empty
	To        []Address
	Cc        []Address
	Bcc       []Address
	InReplyTo *string
	MessageID *string
}

// Envelope returns the envelope of p, which must be a message: the root Part of a
// Message or the Message of a message/rfc822 part. Of repeated fields the first counts,
// except address fields, whose lists add up.
func (p *Part) Envelope() *Envelope {
	h := &p.Header
	str := func(name string) *string {
		if v := h.value(name); v != nil {
			s := string(v)
			return &s
		}
		return nil
	}
	addrs := func(name string) []Address {
		// A repeated address field adds to the list, as in Dovecot (RFC 5322 §3.6
		// allows one, mail in the wild has several).
		var l []Address
		for _, v := range h.Values(name) {
			if v != "" {
				l = append(l, ParseAddressList(v)...)
			}
		}
		return l
	}
	e := &Envelope{
		Date:      str("Date"),
		Subject:   str("Subject"),
		From:      addrs("From"),
		Sender:    addrs("Sender"),
		ReplyTo:   addrs("Reply-To"),
		To:        addrs("To"),
		Cc:        addrs("Cc"),
		Bcc:       addrs("Bcc"),
		InReplyTo: str("In-Reply-To"),
		MessageID: str("Message-ID"),
	}
	if len(e.Sender) == 0 {
		e.Sender = e.From
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = e.From
	}
	return e
}
