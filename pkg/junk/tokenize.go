package junk

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"postern/pkg/mime"
)

// Limits that keep a hostile message (huge headers, one long line, thousands of parts)
// from costing unbounded work or memory.
const (
	// MaxTokens is the most distinct tokens taken from one message; the rest is ignored.
	MaxTokens = 4000
	// MaxTokenLen is the longest token kept, in octets. A longer word of text becomes a
	// "skip:" token that records its first character and its length in tens; a longer
	// header token is cut.
	MaxTokenLen = 60
	// MaxTextPerMessage is the most decoded text read from the text parts of a message,
	// and MaxTextPerPart from any one of them.
	MaxTextPerMessage = 1 << 20
	MaxTextPerPart    = 256 << 10
	// MaxPartsWalked is the most MIME parts looked at.
	MaxPartsWalked = 500
	// maxFields is the most header fields of one header that are tokenized.
	maxFields = 300
	// maxFieldWords is the most words taken from one header field.
	maxFieldWords = 40
)

// maxWordLen is the longest word of text kept as itself (SpamBayes' limit is 12: longer
// "words" are mostly URLs, encoded junk or run-together text, whose length says more than
// their spelling).
const maxWordLen = 16

// minWordLen is the shortest word of text kept.
const minWordLen = 3

// Tokens is the set of distinct tokens of a message, in the order they were found.
type Tokens []string

// tokenizer collects the distinct tokens of one message.
type tokenizer struct {
	seen     map[string]struct{}
	list     Tokens
	textRead int // octets of decoded text read so far
	msg      *mime.Message
	buf      []byte
}

func (t *tokenizer) add(tok string) {
	if len(t.list) >= MaxTokens || tok == "" {
		return
	}
	if len(tok) > MaxTokenLen {
		tok = tok[:MaxTokenLen]
	}
	if _, ok := t.seen[tok]; ok {
		return
	}
	t.seen[tok] = struct{}{}
	t.list = append(t.list, tok)
}

func (t *tokenizer) full() bool { return len(t.list) >= MaxTokens }

// Tokenize returns the tokens of the message of size octets in r. It fails only when r
// fails: malformed mail gives the tokens that can be read from it.
func Tokenize(r io.ReaderAt, size int64) (Tokens, error) {
	m, err := mime.Parse(r, size)
	if err != nil {
		return nil, fmt.Errorf("junk: tokenizing message: %w", err)
	}
	t := tokenizers.Get().(*tokenizer)
	defer t.release()
	t.msg = m
	t.header(&m.Root.Header)
	parts := 0
	if err := t.part(m.Root, &parts); err != nil {
		return nil, fmt.Errorf("junk: tokenizing message: %w", err)
	}
	return t.list, nil
}

// tokenizers keeps the set of seen tokens and the text buffer from one message to the
// next: spamd tokenizes every message it judges.
var tokenizers = sync.Pool{New: func() any {
	return &tokenizer{seen: make(map[string]struct{}, 256)}
}}

// release returns t to tokenizers; the list of tokens now belongs to the caller.
func (t *tokenizer) release() {
	clear(t.seen)
	t.list, t.msg, t.textRead = nil, nil, 0
	if cap(t.buf) > maxPooledText {
		t.buf = nil
	}
	tokenizers.Put(t)
}

// maxPooledText is the largest text buffer kept in tokenizers.
const maxPooledText = 64 << 10

// header adds the tokens of the fields of a message header: the lower-cased name of
// every field, and the words, addresses or hosts of the fields that say who sent the
// message and how (Subject, the address fields, Received, Message-ID, X-Mailer ...),
// each prefixed by the name of its field.
func (t *tokenizer) header(h *mime.Header) {
	for i := 0; i < h.Len() && i < maxFields && !t.full(); i++ {
		name, value := h.Field(i)
		name = strings.ToLower(name)
		if strings.HasPrefix(name, "x-spam-") {
			// The verdicts of filters, ours included: learning them would teach the
			// classifier its own opinion.
			continue
		}
		t.add("header:" + name)
		switch name {
		case "subject":
			t.words("subject:", mime.DecodeHeader(value), maxFieldWords)
		case "from", "to", "cc", "reply-to", "sender", "return-path", "delivered-to",
			"errors-to", "resent-from", "resent-to":
			t.addresses(name, value)
		case "received":
			t.received(value)
		case "message-id":
			if i := strings.LastIndexByte(value, '@'); i >= 0 {
				t.add("message-id:@" + strings.ToLower(strings.Trim(value[i+1:], "<> \t")))
			} else {
				t.add("message-id:none")
			}
		case "x-mailer", "user-agent", "x-newsreader", "x-mimeole":
			v := strings.ToLower(strings.Join(strings.Fields(mime.DecodeHeader(value)), " "))
			t.add(name + ":" + v)
			t.words(name+":", v, maxFieldWords)
		default:
			// Any other field counts by its name alone ("header:list-id" above), as in
			// SpamBayes: the words of List-*, X-* and the like were learned as the
			// mailing lists that carried them, so that spam sent through a list read
			// as ham. Chosen by cross-validation on the training half of bench/spam.
		}
	}
}

// addresses adds the addresses, domains and display-name words of an address field.
func (t *tokenizer) addresses(name, value string) {
	list := mime.ParseAddressList(value)
	n := 0
	for _, a := range list {
		if a.Group || n >= maxFieldWords {
			continue
		}
		n++
		host := strings.ToLower(a.Host)
		if a.Mailbox != "" && host != "" {
			t.add(name + ":addr:" + strings.ToLower(a.Mailbox) + "@" + host)
		}
		if host != "" {
			t.domain(name+":domain:", host)
		} else {
			t.add(name + ":no-domain")
		}
		if a.Name != "" {
			t.words(name+":name:", mime.DecodeHeader(a.Name), 8)
		} else {
			t.add(name + ":no-name")
		}
	}
	switch {
	case len(list) == 0:
		t.add(name + ":none")
	case len(list) > 1:
		t.add(fmt.Sprintf("%s:count:%d", name, bucket(len(list))))
	}
}

// received adds the hosts named after "from" and "by" in a Received field (RFC 5321
// §4.4), and the networks of the IPv4 addresses in its brackets.
func (t *tokenizer) received(value string) {
	ws := strings.Fields(strings.ToLower(value))
	for i, w := range ws {
		if i >= 64 {
			break
		}
		if (w == "from" || w == "by") && i+1 < len(ws) {
			h := receivedPunct.trim(ws[i+1])
			if ip := net.ParseIP(h); ip != nil {
				t.ip("received:ip:", ip)
			} else if strings.Contains(h, ".") {
				t.domain("received:", h)
			}
		}
		if j := strings.IndexByte(w, '['); j >= 0 {
			if k := strings.IndexByte(w[j:], ']'); k > 0 {
				if ip := net.ParseIP(w[j+1 : j+k]); ip != nil {
					t.ip("received:ip:", ip)
				}
			}
		}
	}
}

// ip adds an IPv4 address's /24 and /16, or an IPv6 address's /48.
func (t *tokenizer) ip(prefix string, ip net.IP) {
	if v4 := ip.To4(); v4 != nil {
		t.add(fmt.Sprintf("%s%d.%d.%d", prefix, v4[0], v4[1], v4[2]))
		t.add(fmt.Sprintf("%s%d.%d", prefix, v4[0], v4[1]))
		return
	}
	t.add(prefix + ip.Mask(net.CIDRMask(48, 128)).String())
}

// domain adds a host name and its parent domains down to two labels
// ("a.b.example.com", "b.example.com", "example.com").
func (t *tokenizer) domain(prefix, host string) {
	host = strings.Trim(strings.ToLower(host), ".")
	if host == "" {
		return
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		t.add(prefix + "ip")
		t.ip(prefix, ip)
		return
	}
	for n := 0; n < 5; n++ {
		t.add(prefix + host)
		i := strings.IndexByte(host, '.')
		if i < 0 || strings.Count(host, ".") < 2 {
			return
		}
		host = host[i+1:]
	}
}

// bucket rounds n for count tokens: 1 to 5 as they are, then powers of two.
func bucket(n int) int {
	if n <= 5 {
		return n
	}
	b := 8
	for b < n && b < 1<<20 {
		b *= 2
	}
	return b
}

// part adds the tokens of a MIME part and of the parts below it.
func (t *tokenizer) part(p *mime.Part, parts *int) error {
	if *parts >= MaxPartsWalked || t.full() {
		return nil
	}
	*parts++
	mt := p.MediaType()
	t.add("content-type:" + mt)
	if cs := p.Param("charset"); cs != "" {
		t.add("charset:" + strings.ToLower(strings.TrimSpace(cs)))
	}
	if p.Encoding != "" {
		t.add("encoding:" + strings.ToLower(p.Encoding))
	}
	name := ""
	for _, ps := range [][]mime.Param{p.DispositionParams, p.Params} {
		for _, q := range ps {
			if n := strings.ToLower(q.Name); n == "filename" || n == "name" {
				name = q.Value
			}
		}
	}
	if name != "" || strings.EqualFold(p.Disposition, "attachment") {
		t.add("attachment:" + mt)
		if ext := strings.ToLower(path.Ext(name)); ext != "" {
			t.add("attachment:ext:" + ext)
		}
	}
	switch {
	case p.Message != nil:
		t.add("attachment:message")
		return t.part(p.Message, parts)
	case p.IsMultipart() && len(p.Parts) > 0:
		for _, c := range p.Parts {
			if err := t.part(c, parts); err != nil {
				return err
			}
		}
		return nil
	case p.IsText() || p.IsMultipart():
		// A multipart without parts (no boundary found) is read as text, where its
		// content is.
		if name != "" && !strings.EqualFold(p.Subtype, "html") && !strings.EqualFold(p.Subtype, "plain") {
			return nil
		}
		text, err := t.read(p)
		if err != nil {
			return err
		}
		if strings.EqualFold(p.Subtype, "html") {
			text = t.html(text)
		}
		t.text(text)
	}
	return nil
}

// read returns the decoded text of a part, at most MaxTextPerPart octets and what is
// left of MaxTextPerMessage.
func (t *tokenizer) read(p *mime.Part) ([]byte, error) {
	limit := min(MaxTextPerPart, MaxTextPerMessage-t.textRead)
	if limit <= 0 {
		return nil, nil
	}
	r, release := t.msg.TextReader(p)
	defer release()
	buf := bytes.NewBuffer(t.buf[:0])
	n, err := io.Copy(buf, io.LimitReader(r, int64(limit)))
	t.textRead += int(n)
	t.buf = buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("reading part %s: %w", p.MediaType(), err)
	}
	return t.buf, nil
}

// text adds the words, URLs and e-mail domains of decoded text.
func (t *tokenizer) text(b []byte) {
	for len(b) > 0 && !t.full() {
		// The next run of non-space characters.
		i := 0
		for i < len(b) {
			space, n := spaceAt(b[i:])
			if !space {
				break
			}
			i += n
		}
		b = b[i:]
		j := 0
		for j < len(b) {
			space, n := spaceAt(b[j:])
			if space {
				break
			}
			j += n
		}
		if j == 0 {
			break
		}
		t.word(string(b[:j]))
		b = b[j:]
	}
}

// spaceAt reports whether b begins with a space character (unicode.IsSpace) and how
// long the character is; ASCII, most of mail, without decoding.
func spaceAt(b []byte) (bool, int) {
	if c := b[0]; c < utf8.RuneSelf {
		return c == ' ' || '\t' <= c && c <= '\r', 1
	}
	r, n := utf8.DecodeRune(b)
	return unicode.IsSpace(r), n
}

// asciiSet is a set of ASCII octets to trim from both ends of a word: strings.Trim with
// a cutset of several characters builds the set anew at each call, once per word.
type asciiSet [utf8.RuneSelf]bool

func newASCIISet(chars string) *asciiSet {
	var s asciiSet
	for i := 0; i < len(chars); i++ {
		s[chars[i]] = true
	}
	return &s
}

// trim is strings.Trim(w, the set's characters).
func (s *asciiSet) trim(w string) string {
	i, j := 0, len(w)
	for i < j && w[i] < utf8.RuneSelf && s[w[i]] {
		i++
	}
	for j > i && w[j-1] < utf8.RuneSelf && s[w[j-1]] {
		j--
	}
	return w[i:j]
}

// The punctuation trimmed from the words of body text, of header fields, and from the
// host names of Received fields.
var (
	wordPunct     = newASCIISet(".,;:!?\"'()[]{}<>*-_=/\\|`~")
	headerPunct   = newASCIISet(".,;:!?\"'()[]{}<>")
	receivedPunct = newASCIISet("()[];<>")
)

// word adds the token(s) of one run of non-space characters of body text.
func (t *tokenizer) word(w string) {
	lw := strings.ToLower(w)
	if k := strings.Index(lw, "://"); k >= 0 || strings.HasPrefix(lw, "www.") {
		scheme := "http"
		if k >= 0 {
			scheme = strings.TrimLeft(lw[:k], "\"'<([")
			lw = lw[k+3:]
		}
		t.add("proto:" + scheme)
		t.url(lw)
		return
	}
	if k := strings.IndexByte(lw, '@'); k > 0 && strings.Contains(lw[k:], ".") {
		host := strings.TrimRight(lw[k+1:], ".,;:!?\"')]>")
		t.domain("email:", host)
		lw = lw[:k]
	}
	lw = wordPunct.trim(lw)
	n := utf8.RuneCountInString(lw)
	switch {
	case n < minWordLen:
	case n > maxWordLen:
		r, _ := utf8.DecodeRuneInString(lw)
		t.add(fmt.Sprintf("skip:%c %d", r, n/10*10))
	default:
		t.add(lw)
	}
}

// url adds the host of a URL (without its scheme) and its parent domains, and the
// words of its path.
func (t *tokenizer) url(u string) {
	host := u
	rest := ""
	if i := strings.IndexAny(u, "/?#\"'<>)"); i >= 0 {
		host, rest = u[:i], u[i:]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		t.add("url:userinfo")
		host = host[i+1:]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		t.add("url:port")
		host = host[:i]
	}
	t.domain("url:", host)
	n := 0
	for _, p := range strings.FieldsFunc(rest, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if n++; n > 10 {
			break
		}
		if len(p) >= minWordLen && len(p) <= maxWordLen {
			t.add("url:path:" + p)
		}
	}
}

// words adds the words of a header value with a prefix.
func (t *tokenizer) words(prefix, v string, limit int) {
	n := 0
	for _, w := range strings.Fields(v) {
		if n >= limit {
			return
		}
		n++
		w = strings.ToLower(headerPunct.trim(w))
		if w == "" {
			continue
		}
		if utf8.RuneCountInString(w) > maxWordLen {
			r, _ := utf8.DecodeRuneInString(w)
			t.add(fmt.Sprintf("%sskip:%c %d", prefix, r, len(w)/10*10))
			continue
		}
		t.add(prefix + w)
	}
}
