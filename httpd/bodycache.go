package main

import (
	"fmt"
	"html/template"

	"github.com/emersion/go-imap/v2"
)

// Opening a message takes two requests: the message page, which must know whether the
// HTML body refers to remote images (to offer to show them), and the body of its
// sandboxed frame. Both need the body fetched from imapd and sanitized; whichever comes
// first does it and keeps the result here, so that the other finds it: a message is
// fetched and sanitized once, not once per request. A UID names the same message for
// as long as the folder keeps its UIDVALIDITY (RFC 9051 §2.3.1.1), so an entry never
// goes stale; it ages out of the budget, least recently used first. A body heavier
// than the whole budget is not kept, and is fetched by each request.

// bodyKey names a message of a user.
type bodyKey struct {
	user, folder string
	uidValidity  uint32
	uid          imap.UID
}

// renderedBody is a message's body as its frame shows it, before the choice of
// remote images: plain text, or HTML sanitized with its inline (cid:) images.
type renderedBody struct {
	text   string // a plain text body, in UTF-8
	isHTML bool
	html   []byte // an HTML body, sanitized by cleanHTML
	remote bool   // the HTML refers to remote images
	inline map[string]inlinePart
}

// size is what a body weighs against the cache's budget, in bytes.
func (b *renderedBody) size() int {
	n := len(b.text) + len(b.html) + 64
	for id, p := range b.inline {
		n += len(id) + len(p.Type) + len(p.Data) + 32
	}
	return n
}

// data is the body for templates/body.html, with its remote images kept when images.
func (b *renderedBody) data(images bool) bodyData {
	if !b.isHTML {
		return bodyData{Text: b.text}
	}
	safe := showHTML(b.html, b.remote, b.inline, images)
	// The one place untrusted markup becomes template.HTML: sanitized by cleanHTML.
	return bodyData{IsHTML: true, HTML: template.HTML(safe), Remote: b.remote}
}

// bodyCacheBytes is the budget of the body cache.
const bodyCacheBytes = 16 << 20

// newBodyCache makes an empty body cache of max bytes.
func newBodyCache(max int) *lruCache[bodyKey, *renderedBody] {
	return newLRUCache[bodyKey](max, (*renderedBody).size)
}

// cachedBody returns the body of message uid of the folder selected on c (selectFolder)
// when the cache has it.
func (s *Server) cachedBody(c *imapConn, user string, uid imap.UID) (*renderedBody, bool) {
	return s.bodies.get(bodyKey{user: user, folder: c.view.name, uidValidity: c.view.uidValidity, uid: uid})
}

// loadBody returns the body of message uid, of structure bs, of the folder selected on
// c (selectFolder): from the cache, else fetched from imapd (its text and inline
// images, in one FETCH), sanitized and kept.
func (s *Server) loadBody(c *imapConn, user string, uid imap.UID, bs imap.BodyStructure) (*renderedBody, error) {
	key := bodyKey{user: user, folder: c.view.name, uidValidity: c.view.uidValidity, uid: uid}
	if b, ok := s.bodies.get(key); ok {
		return b, nil
	}
	b := &renderedBody{}
	text, parts, _ := structure(bs)
	if text == nil {
		s.bodies.put(key, b)
		return b, nil
	}
	sections := []*imap.FetchItemBinarySection{{Part: text.path, Peek: true}}
	var total int64
	var shown []partInfo
	if text.Type == "text/html" {
		for _, p := range parts {
			if total += p.Size; total > maxInline {
				break
			}
			shown = append(shown, p)
			sections = append(sections, &imap.FetchItemBinarySection{Part: p.path, Peek: true})
		}
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BinarySection: sections}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetching the body of message %d: %w", uid, err)
	}
	if len(msgs) == 0 {
		return nil, errNoMessage
	}
	body, err := decodeCharset(msgs[0].FindBinarySection(sections[0]), text.single.Params["charset"])
	if err != nil {
		return nil, err
	}
	if text.Type != "text/html" {
		b.text = body
	} else {
		b.isHTML = true
		b.html, b.remote = cleanHTML([]byte(body))
		b.inline = map[string]inlinePart{}
		for i, p := range shown {
			b.inline[p.ID] = inlinePart{Type: p.Type, Data: msgs[0].FindBinarySection(sections[i+1])}
		}
	}
	s.bodies.put(key, b)
	return b, nil
}
