package imap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Default limits of a Decoder.
const (
	// DefaultMaxLine bounds a command's text and its small literals (Dovecot's
	// imap_max_line_length is the same 64 KiB).
	DefaultMaxLine = 64 << 10
	// DefaultMaxLiteral bounds an APPEND message.
	DefaultMaxLiteral = 50 << 20
)

// ParseError is a command that could not be parsed. The server answers it with a tagged
// BAD (or an untagged BAD when Tag is empty) and reads the next command: the rest of the
// line has been discarded.
type ParseError struct {
	Tag string // the command's tag, "" if none was read
	Msg string
	// TooBig is set when a literal or line exceeded the limits; a literal announced
	// as non-synchronizing cannot be skipped safely, and Fatal is set as well.
	TooBig bool
	// Fatal means the connection can no longer be read in step with the client and
	// should be closed after the answer.
	Fatal bool
}

func (e *ParseError) Error() string { return "imap: " + e.Msg }

// errParse is raised inside the parser and turned into a *ParseError by ReadCommand.
type errParse struct{ msg string }

// Decoder reads IMAP commands from a client (RFC 3501 §6, RFC 9051 §6 and the extensions
// named in Command) with bounded memory.
type Decoder struct {
	r *bufio.Reader
	// MaxLine bounds the bytes of one command outside an APPEND message, literals
	// included; MaxLiteral bounds an APPEND message.
	MaxLine    int
	MaxLiteral int64
	// Continue is called before a synchronizing literal is read: it must send a
	// command continuation request ("+ ...") and flush it (RFC 3501 §7.5).
	Continue func() error

	n       int  // bytes of the current command read so far
	lastLF  bool // the last byte read ended a line
	tag     string
	pending *AppendRequest // an APPEND whose message has not been read yet
}

// NewDecoder returns a decoder reading r with the default limits. cont is the Continue
// callback.
func NewDecoder(r *bufio.Reader, cont func() error) *Decoder {
	return &Decoder{r: r, MaxLine: DefaultMaxLine, MaxLiteral: DefaultMaxLiteral, Continue: cont}
}

// Reset makes the decoder read from r, as after STARTTLS.
func (d *Decoder) Reset(r *bufio.Reader) { d.r = r }

// Buffered returns the number of bytes read from the connection but not yet parsed. A
// client that pipelines a command after STARTTLS is attacking the TLS handshake
// (CVE-2011-0411 style): the server checks this is zero.
func (d *Decoder) Buffered() int { return d.r.Buffered() }

func (d *Decoder) fail(format string, args ...any) {
	panic(errParse{fmt.Sprintf(format, args...)})
}

// ioError carries a read error out of the parser.
type ioError struct{ err error }

func (d *Decoder) peek() byte {
	b, err := d.r.Peek(1)
	if err != nil {
		panic(ioError{err})
	}
	return b[0]
}

func (d *Decoder) next() byte {
	c, err := d.r.ReadByte()
	if err != nil {
		panic(ioError{err})
	}
	d.n++
	d.lastLF = c == '\n'
	if d.n > d.MaxLine {
		panic(errParse{"line too long"})
	}
	return c
}

func (d *Decoder) expect(c byte, what string) {
	if got := d.next(); got != c {
		if got == '\n' {
			d.fail("missing %s", what)
		}
		d.fail("expected %s", what)
	}
}

func (d *Decoder) sp() { d.expect(' ', "space") }

// crlf reads the end of a line: CRLF, or a bare LF that some clients send.
func (d *Decoder) crlf() {
	c := d.next()
	if c == '\r' {
		c = d.next()
	}
	if c != '\n' {
		d.fail("expected end of line")
	}
}

func (d *Decoder) atEOL() bool {
	c := d.peek()
	return c == '\r' || c == '\n'
}

// maybeSP consumes a space if one is next.
func (d *Decoder) maybeSP() bool {
	if d.peek() == ' ' {
		d.next()
		return true
	}
	return false
}

// isAtomChar: any CHAR except atom-specials: ( ) { SP CTL list-wildcards quoted-specials
// resp-specials (RFC 3501 §9).
func isAtomChar(c byte) bool {
	if c <= 0x20 || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAStringChar(c byte) bool { return isAtomChar(c) || c == ']' }
func isListChar(c byte) bool    { return isAStringChar(c) || c == '%' || c == '*' }

func (d *Decoder) chars(ok func(byte) bool, what string) string {
	var b []byte
	for ok(d.peek()) {
		b = append(b, d.next())
	}
	if len(b) == 0 {
		d.fail("expected %s", what)
	}
	return string(b)
}

func (d *Decoder) atom() string { return d.chars(isAtomChar, "atom") }

// word reads an atom and returns it in upper case.
func (d *Decoder) word() string { return strings.ToUpper(d.atom()) }

// quoted reads a quoted string (RFC 3501 §4.3; RFC 9051 allows UTF-8 in it).
func (d *Decoder) quoted() string {
	d.expect('"', `'"'`)
	var b []byte
	for {
		c := d.next()
		switch c {
		case '"':
			return string(b)
		case '\\':
			c = d.next()
			if c != '"' && c != '\\' {
				d.fail("bad escape in quoted string")
			}
		case '\r', '\n', 0:
			d.fail("unterminated quoted string")
		}
		b = append(b, c)
	}
}

// literalHeader reads "{n}", "{n+}" or "{n-}" and its CRLF; binary reports a literal8
// ("~{n}", RFC 3516 §4.2). sync is false for non-synchronizing literals (RFC 7888).
func (d *Decoder) literalHeader(allow8 bool) (n int64, sync, binary bool) {
	if d.peek() == '~' {
		if !allow8 {
			d.fail("literal8 not allowed here")
		}
		d.next()
		binary = true
	}
	d.expect('{', `"{"`)
	n = d.number64()
	sync = true
	if d.peek() == '+' || d.peek() == '-' {
		// LITERAL- limits non-synchronizing literals to 4096 bytes; as a
		// LITERAL+ server (RFC 7888 §3) we take either of any size.
		d.next()
		sync = false
	}
	d.expect('}', `"}"`)
	d.crlf()
	return n, sync, binary
}

// literal reads a literal that is part of a command line (not an APPEND message).
func (d *Decoder) literal() string {
	n, sync, _ := d.literalHeader(false)
	if n > int64(d.MaxLine-d.n) {
		if sync {
			panic(errParse{"literal too long"})
		}
		panic(&ParseError{Msg: "literal too long", TooBig: true, Fatal: true})
	}
	if sync && d.Continue != nil {
		if err := d.Continue(); err != nil {
			panic(ioError{err})
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		panic(ioError{err})
	}
	d.n += int(n)
	d.lastLF = false
	return string(b)
}

// str reads a string: quoted or literal.
func (d *Decoder) str() string {
	switch d.peek() {
	case '"':
		return d.quoted()
	case '{':
		return d.literal()
	}
	d.fail("expected string")
	return ""
}

// astring reads an astring: atom-like characters (with "]") or a string.
func (d *Decoder) astring() string {
	switch d.peek() {
	case '"', '{':
		return d.str()
	}
	return d.chars(isAStringChar, "string")
}

// nstring reads a string or NIL; ok is false for NIL.
func (d *Decoder) nstring() (s string, ok bool) {
	switch d.peek() {
	case '"', '{':
		return d.str(), true
	}
	if w := d.word(); w != "NIL" {
		d.fail("expected string or NIL")
	}
	return "", false
}

// listMailbox reads a LIST pattern: list-chars or a string.
func (d *Decoder) listMailbox() string {
	switch d.peek() {
	case '"', '{':
		return d.str()
	}
	return d.chars(isListChar, "mailbox pattern")
}

func (d *Decoder) number64() int64 {
	var n int64
	digits := 0
	for {
		c := d.peek()
		if c < '0' || c > '9' {
			break
		}
		d.next()
		n = n*10 + int64(c-'0')
		if n > 1<<53 {
			d.fail("number too large")
		}
		digits++
	}
	if digits == 0 {
		d.fail("expected number")
	}
	return n
}

// number reads a 32-bit unsigned number (RFC 3501 §9).
func (d *Decoder) number() uint32 {
	n := d.number64()
	if n > 0xffffffff {
		d.fail("number too large")
	}
	return uint32(n)
}

func (d *Decoder) nzNumber() uint32 {
	n := d.number()
	if n == 0 {
		d.fail("zero is not allowed here")
	}
	return n
}

// modseq reads a mod-sequence-value (RFC 7162 §7: 1..2^63-1).
func (d *Decoder) modseq() uint64 {
	var n uint64
	digits := 0
	for {
		c := d.peek()
		if c < '0' || c > '9' {
			break
		}
		d.next()
		if n > (1<<63-1-uint64(c-'0'))/10 {
			d.fail("mod-sequence too large")
		}
		n = n*10 + uint64(c-'0')
		digits++
	}
	if digits == 0 {
		d.fail("expected mod-sequence")
	}
	return n
}

// seqSet reads a sequence-set (RFC 3501 §9; "*" is 0 in a SeqRange).
func (d *Decoder) seqSet() SeqSet {
	if d.peek() == '$' {
		// SEARCHRES (RFC 5182 §2, part of RFC 9051): the saved search result.
		d.next()
		return SeqSet{{SearchRes, SearchRes}}
	}
	var s SeqSet
	for {
		var r SeqRange
		r.Start = d.seqNumber()
		r.Stop = r.Start
		if d.peek() == ':' {
			d.next()
			r.Stop = d.seqNumber()
		}
		s = append(s, r)
		if d.peek() != ',' {
			return s
		}
		d.next()
	}
}

func (d *Decoder) seqNumber() uint32 {
	if d.peek() == '*' {
		d.next()
		return 0
	}
	return d.nzNumber()
}

// flag reads a flag: "\" atom or a keyword atom; "\*" when allowStar.
func (d *Decoder) flag(allowStar bool) string {
	if d.peek() == '\\' {
		d.next()
		if allowStar && d.peek() == '*' {
			d.next()
			return `\*`
		}
		return `\` + d.atom()
	}
	return d.atom()
}

// flagList reads "(" [flag *(SP flag)] ")".
func (d *Decoder) flagList() []string {
	d.expect('(', `"("`)
	flags := []string{}
	if d.peek() == ')' {
		d.next()
		return flags
	}
	for {
		flags = append(flags, d.flag(false))
		if d.peek() == ')' {
			d.next()
			return flags
		}
		d.sp()
	}
}

// atomList reads "(" [atom *(SP atom)] ")" in upper case.
func (d *Decoder) atomList() []string {
	d.expect('(', `"("`)
	l := []string{}
	if d.peek() == ')' {
		d.next()
		return l
	}
	for {
		l = append(l, d.word())
		if d.peek() == ')' {
			d.next()
			return l
		}
		d.sp()
	}
}

var months = [...]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// date reads a date for SEARCH: d-Mon-yyyy, optionally in quotes (RFC 3501 §9).
func (d *Decoder) date() time.Time {
	q := d.peek() == '"'
	if q {
		d.next()
	}
	day := d.number()
	d.expect('-', `"-"`)
	mon := strings.ToUpper(d.chars(func(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }, "month"))
	d.expect('-', `"-"`)
	year := d.number()
	if q {
		d.expect('"', `'"'`)
	}
	m := 0
	for i, name := range months {
		if name == mon {
			m = i + 1
		}
	}
	if m == 0 || day < 1 || day > 31 || year < 1 || year > 9999 {
		d.fail("bad date")
	}
	return time.Date(int(year), time.Month(m), int(day), 0, 0, 0, 0, time.UTC)
}

// dateTime reads a quoted date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 3501 §9).
func (d *Decoder) dateTime() time.Time {
	s := d.quoted()
	t, err := time.Parse(DateTimeLayout, s)
	if err != nil {
		if t, err = time.Parse("02-Jan-2006 15:04:05 -0700", s); err != nil {
			d.fail("bad date-time")
		}
	}
	return t
}

// ReadLine reads one line of client text outside a command (an AUTHENTICATE response,
// IDLE's DONE) without its line ending, bounded by MaxLine.
func (d *Decoder) ReadLine() ([]byte, error) {
	var b []byte
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == '\n' {
			if len(b) > 0 && b[len(b)-1] == '\r' {
				b = b[:len(b)-1]
			}
			return b, nil
		}
		if len(b) >= d.MaxLine {
			d.discardLine()
			return nil, &ParseError{Msg: "line too long", TooBig: true}
		}
		b = append(b, c)
	}
}

// discardLine skips to the end of the current line.
func (d *Decoder) discardLine() error {
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			return err
		}
		if c == '\n' {
			return nil
		}
	}
}

// ReadCommand reads the next command. A syntax error is returned as a *ParseError, after
// the rest of the line has been skipped; any other error is the connection's.
//
// An APPEND command is returned as soon as its message literal was announced: the caller
// then either reads the message with AppendMessage and ends it with EndAppend, or refuses
// it with SkipAppend. (Before the message, a synchronizing literal has not been accepted
// yet, so the server may still refuse it with a tagged NO.)
func (d *Decoder) ReadCommand() (cmd *Command, err error) {
	if d.pending != nil {
		if err := d.SkipAppend(); err != nil {
			return nil, err
		}
	}
	d.n, d.tag, d.lastLF = 0, "", false
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		switch e := r.(type) {
		case ioError:
			cmd, err = nil, e.err
		case errParse:
			cmd, err = nil, &ParseError{Tag: d.tag, Msg: e.msg}
		case *ParseError:
			e.Tag = d.tag
			cmd, err = nil, e
		default:
			panic(r)
		}
		var pe *ParseError
		if errors.As(err, &pe) && !pe.Fatal && !d.lastLF {
			if derr := d.discardLine(); derr != nil {
				err = derr
			}
		}
	}()
	return d.command(), nil
}

func (d *Decoder) command() *Command {
	if d.atEOL() {
		d.crlf()
		d.fail("empty command line")
	}
	d.tag = d.chars(func(c byte) bool { return isAStringChar(c) && c != '+' }, "tag")
	if d.peek() != ' ' {
		// What came is no tag; the answer is an untagged BAD.
		d.tag = ""
	}
	d.sp()
	c := &Command{Tag: d.tag, Name: d.word()}
	if c.Name == "UID" {
		c.UID = true
		d.sp()
		c.Name = d.word()
		switch c.Name {
		case "FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD":
		default:
			d.fail("UID %s is not a command", c.Name)
		}
	}
	switch c.Name {
	case "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "IDLE", "NAMESPACE":
	case "EXPUNGE":
		if c.UID {
			d.sp()
			c.Set = d.seqSet()
		}
	case "AUTHENTICATE":
		d.sp()
		c.Mechanism = d.word()
		if d.maybeSP() {
			// SASL-IR (RFC 4959 §3): an initial response, "=" for an empty one.
			c.InitialResponse = d.chars(func(c byte) bool {
				return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '='
			}, "initial response")
		}
	case "LOGIN":
		d.sp()
		c.User = d.astring()
		d.sp()
		c.Password = d.astring()
	case "ENABLE":
		for d.maybeSP() {
			c.Capabilities = append(c.Capabilities, d.word())
		}
		if len(c.Capabilities) == 0 {
			d.fail("ENABLE needs a capability")
		}
	case "SELECT", "EXAMINE":
		d.sp()
		c.Mailbox = d.astring()
		if d.maybeSP() {
			// select-params (RFC 4466 §2.1): CONDSTORE (RFC 7162 §3.1.8) and QRESYNC
			// (§3.2.5).
			d.expect('(', `"("`)
			for d.peek() != ')' {
				switch p := d.word(); p {
				case "CONDSTORE":
					c.CondStore = true
				case "QRESYNC":
					d.sp()
					c.QResync = d.qresync()
				default:
					d.fail("unknown SELECT parameter %s", p)
				}
				if d.peek() != ')' {
					d.sp()
				}
			}
			d.next()
		}
	case "CREATE":
		d.sp()
		c.Mailbox = d.astring()
		if d.maybeSP() {
			// create-param (RFC 6154 §3): USE (\Special ...).
			d.expect('(', `"("`)
			if d.word() != "USE" {
				d.fail("unknown CREATE parameter")
			}
			d.sp()
			c.SpecialUse = d.flagList()
			d.expect(')', `")"`)
		}
	case "DELETE", "SUBSCRIBE", "UNSUBSCRIBE":
		d.sp()
		c.Mailbox = d.astring()
	case "RENAME":
		d.sp()
		c.Mailbox = d.astring()
		d.sp()
		c.NewName = d.astring()
	case "LIST":
		d.list(c)
	case "LSUB":
		d.sp()
		c.Mailbox = d.astring()
		d.sp()
		c.List = &ListRequest{Patterns: []string{d.listMailbox()}}
	case "STATUS":
		d.sp()
		c.Mailbox = d.astring()
		d.sp()
		c.StatusItems = d.atomList()
		if len(c.StatusItems) == 0 {
			d.fail("STATUS needs an item")
		}
	case "APPEND":
		d.sp()
		c.Mailbox = d.astring()
		d.sp()
		a := &AppendRequest{}
		if d.peek() == '(' {
			a.Flags = d.flagList()
			d.sp()
		}
		if d.peek() == '"' {
			a.Date = d.dateTime()
			d.sp()
		}
		if c := d.peek(); c == 'U' || c == 'u' {
			// RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")".
			if d.word() != "UTF8" {
				d.fail("expected UTF8 or a literal")
			}
			d.sp()
			d.expect('(', `"("`)
			if d.peek() != '~' {
				d.fail("UTF8 takes a literal8")
			}
			a.UTF8 = true
		}
		a.Size, a.Sync, a.Binary = d.literalHeader(true)
		c.Append = a
		if a.Size > d.MaxLiteral {
			// RFC 7888 §4 (and RFC 4469 style): a literal too big is refused with
			// [TOOBIG]; a non-synchronizing one is already on its way.
			if a.Sync {
				panic(&ParseError{Msg: "message too big", TooBig: true})
			}
			panic(&ParseError{Msg: "message too big", TooBig: true, Fatal: true})
		}
		d.pending = a
		d.lastLF = true
		return c
	case "SEARCH":
		c.Search = d.search()
	case "SORT":
		c.Sort, c.Search = d.sort()
	case "THREAD":
		c.Thread, c.Search = d.thread()
	case "FETCH":
		d.sp()
		c.Set = d.seqSet()
		d.sp()
		c.Fetch = d.fetch()
	case "STORE":
		d.sp()
		c.Set = d.seqSet()
		d.sp()
		c.Store = d.store()
	case "COPY", "MOVE":
		d.sp()
		c.Set = d.seqSet()
		d.sp()
		c.Mailbox = d.astring()
	case "ID":
		d.sp()
		c.ID = d.id()
	case "COMPRESS":
		// RFC 4978 §3.
		d.sp()
		c.Compress = d.word()
	case "NOTIFY":
		c.Notify = d.notify()
	default:
		d.fail("unknown command %s", c.Name)
	}
	d.crlf()
	return c
}

// qresync reads the QRESYNC select parameter (RFC 7162 §3.2.5): "(" uidvalidity SP
// mod-sequence-value [SP known-uids] [SP "(" known-sequence-set SP known-uid-set ")"] ")".
func (d *Decoder) qresync() *QResync {
	q := &QResync{}
	d.expect('(', `"("`)
	q.UIDValidity = d.nzNumber()
	d.sp()
	q.ModSeq = d.modseq()
	if d.maybeSP() {
		if d.peek() != '(' {
			q.KnownUIDs = d.uidSet()
			if d.maybeSP() && d.peek() != '(' {
				d.fail("expected seq-match-data")
			}
		}
		if d.peek() == '(' {
			d.next()
			q.KnownSeqs = d.uidSet()
			d.sp()
			q.KnownSeqUIDs = d.uidSet()
			d.expect(')', `")"`)
		}
	}
	d.expect(')', `")"`)
	return q
}

// notify reads the arguments of NOTIFY (RFC 5465 §8): "NONE", or "SET" [SP "STATUS"]
// and event groups "(" filter-mailboxes SP ("(" event *(SP event) ")" / "NONE") ")".
func (d *Decoder) notify() *NotifyRequest {
	n := &NotifyRequest{}
	d.sp()
	switch d.word() {
	case "NONE":
		n.None = true
		return n
	case "SET":
	default:
		d.fail("expected NOTIFY NONE or SET")
	}
	d.sp()
	if d.peek() != '(' {
		if d.word() != "STATUS" {
			d.fail("expected STATUS or an event group")
		}
		n.Status = true
		d.sp()
	}
	for {
		if len(n.Groups) >= 100 {
			d.fail("too many event groups")
		}
		n.Groups = append(n.Groups, d.notifyGroup())
		if !d.maybeSP() {
			return n
		}
	}
}

func (d *Decoder) notifyGroup() NotifyGroup {
	var g NotifyGroup
	d.expect('(', `"("`)
	g.Filter = d.word()
	switch g.Filter {
	case "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED":
	case "SUBTREE", "MAILBOXES":
		d.sp()
		if d.peek() == '(' {
			d.next()
			for {
				g.Mailboxes = append(g.Mailboxes, d.astring())
				if d.peek() == ')' {
					d.next()
					break
				}
				if len(g.Mailboxes) >= 1000 {
					d.fail("too many mailboxes")
				}
				d.sp()
			}
		} else {
			g.Mailboxes = []string{d.astring()}
		}
	default:
		d.fail("unknown NOTIFY filter %s", g.Filter)
	}
	d.sp()
	if d.peek() != '(' {
		if d.word() != "NONE" {
			d.fail("expected events or NONE")
		}
		d.expect(')', `")"`)
		return g
	}
	d.next()
	g.Events = []string{}
	for {
		e := d.atom()
		g.Events = append(g.Events, e)
		if strings.EqualFold(e, "MessageNew") && d.peek() == ' ' {
			// MessageNew may take fetch attributes (SELECTED only, §5.2).
			d.next()
			if d.peek() == '(' {
				d.next()
				for {
					g.FetchAtts = append(g.FetchAtts, d.fetchAtt())
					if d.peek() == ')' {
						d.next()
						break
					}
					d.sp()
				}
				if d.peek() == ')' {
					break
				}
				d.sp()
				continue
			}
			continue
		}
		if d.peek() == ')' {
			break
		}
		if len(g.Events) >= 20 {
			d.fail("too many events")
		}
		d.sp()
	}
	d.next()
	d.expect(')', `")"`)
	return g
}

// uidSet reads a sequence set that may not be "$".
func (d *Decoder) uidSet() SeqSet {
	if d.peek() == '$' {
		d.fail("expected a sequence set")
	}
	return d.seqSet()
}

// list reads the arguments of LIST, basic (RFC 3501 §6.3.8) or extended (RFC 5258 §3).
func (d *Decoder) list(c *Command) {
	l := &ListRequest{}
	d.sp()
	if d.peek() == '(' {
		l.Extended = true
		l.Selection = d.atomList()
		d.sp()
	}
	c.Mailbox = d.astring()
	d.sp()
	if d.peek() == '(' {
		l.Extended = true
		d.next()
		for {
			l.Patterns = append(l.Patterns, d.listMailbox())
			if d.peek() == ')' {
				d.next()
				break
			}
			d.sp()
		}
	} else {
		l.Patterns = []string{d.listMailbox()}
	}
	if d.maybeSP() {
		if d.word() != "RETURN" {
			d.fail("expected RETURN")
		}
		l.Extended = true
		d.sp()
		d.expect('(', `"("`)
		l.Return = []string{}
		for d.peek() != ')' {
			opt := d.word()
			l.Return = append(l.Return, opt)
			if opt == "STATUS" {
				// LIST-STATUS (RFC 5819 §3).
				d.sp()
				l.StatusItems = d.atomList()
			}
			if d.peek() != ')' {
				d.sp()
			}
		}
		d.next()
	}
	c.List = l
}

// id reads the parameter list of ID (RFC 2971 §3.3): NIL or ( string nstring ... ).
func (d *Decoder) id() [][2]string {
	if d.peek() != '(' {
		if d.word() != "NIL" {
			d.fail("expected ID parameter list or NIL")
		}
		return nil
	}
	d.next()
	params := [][2]string{}
	for d.peek() != ')' {
		k := d.str()
		d.sp()
		v, _ := d.nstring()
		if len(params) < 30 {
			params = append(params, [2]string{k, v})
		}
		if d.peek() != ')' {
			d.sp()
		}
	}
	d.next()
	return params
}

// store reads the arguments of STORE after the set (RFC 3501 §6.4.6, RFC 7162 §3.1.3).
func (d *Decoder) store() *StoreRequest {
	s := &StoreRequest{}
	if d.peek() == '(' {
		d.next()
		if d.word() != "UNCHANGEDSINCE" {
			d.fail("unknown STORE modifier")
		}
		d.sp()
		s.UnchangedSince = d.modseq()
		s.HasUnchangedSince = true
		d.expect(')', `")"`)
		d.sp()
	}
	switch d.peek() {
	case '+':
		d.next()
		s.Mode = StoreAdd
	case '-':
		d.next()
		s.Mode = StoreRemove
	}
	switch d.word() {
	case "FLAGS":
	case "FLAGS.SILENT":
		s.Silent = true
	default:
		d.fail("expected FLAGS or FLAGS.SILENT")
	}
	d.sp()
	if d.peek() == '(' {
		s.Flags = d.flagList()
	} else {
		s.Flags = []string{d.flag(false)}
		for d.maybeSP() {
			s.Flags = append(s.Flags, d.flag(false))
		}
	}
	return s
}

// fetch reads the data items of FETCH (RFC 3501 §6.4.5) and its modifiers (RFC 7162).
func (d *Decoder) fetch() *FetchRequest {
	f := &FetchRequest{}
	if d.peek() == '(' {
		d.next()
		for {
			f.Items = append(f.Items, d.fetchAtt())
			if d.peek() == ')' {
				d.next()
				break
			}
			d.sp()
		}
	} else {
		switch w := d.fetchWord(); w {
		// The macros of RFC 3501 §6.4.5 (RFC 9051 keeps them).
		case "ALL":
			f.Items = items("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE")
		case "FAST":
			f.Items = items("FLAGS", "INTERNALDATE", "RFC822.SIZE")
		case "FULL":
			f.Items = items("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY")
		default:
			f.Items = []FetchItem{d.fetchAttNamed(w)}
		}
	}
	if d.maybeSP() {
		d.expect('(', `"("`)
		for {
			switch d.word() {
			case "CHANGEDSINCE":
				d.sp()
				f.ChangedSince = d.modseq()
			case "VANISHED":
				// RFC 7162 §3.2.6: UID FETCH only, with CHANGEDSINCE (imapd checks).
				f.Vanished = true
			default:
				d.fail("unknown FETCH modifier")
			}
			if d.peek() == ')' {
				d.next()
				break
			}
			d.sp()
		}
	}
	return f
}

func items(names ...string) []FetchItem {
	l := make([]FetchItem, len(names))
	for i, n := range names {
		l[i] = FetchItem{Name: n}
	}
	return l
}

// fetchWord reads a fetch attribute name up to "[" or a delimiter.
func (d *Decoder) fetchWord() string {
	return strings.ToUpper(d.chars(func(c byte) bool { return isAtomChar(c) && c != '[' && c != '<' }, "fetch attribute"))
}

func (d *Decoder) fetchAtt() FetchItem { return d.fetchAttNamed(d.fetchWord()) }

func (d *Decoder) fetchAttNamed(w string) FetchItem {
	switch w {
	case "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
		"RFC822.TEXT", "BODYSTRUCTURE", "UID", "MODSEQ",
		"EMAILID", "THREADID", // OBJECTID, RFC 8474 §5
		"SAVEDATE": // RFC 8514 §4.1
		return FetchItem{Name: w}
	case "BODY":
		if d.peek() != '[' {
			return FetchItem{Name: w}
		}
		return FetchItem{Name: "BODY[]", Section: d.section(false)}
	case "BODY.PEEK":
		s := d.section(false)
		s.Peek = true
		return FetchItem{Name: "BODY[]", Section: s}
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		// RFC 3516 §4.1.
		s := d.section(true)
		s.Binary = true
		s.Peek = w == "BINARY.PEEK"
		if w == "BINARY.SIZE" {
			s.Size = true
			if s.Partial {
				d.fail("BINARY.SIZE takes no partial range")
			}
			return FetchItem{Name: "BINARY.SIZE[]", Section: s}
		}
		return FetchItem{Name: "BINARY[]", Section: s}
	}
	d.fail("unknown fetch attribute %s", w)
	return FetchItem{}
}

// section reads "[" section-spec "]" ["<" number "." nz-number ">"] (RFC 3501 §9).
// binary sections (RFC 3516) are part numbers only.
func (d *Decoder) section(binary bool) *BodySection {
	s := &BodySection{}
	d.expect('[', `"["`)
	dot := false
	for d.peek() >= '0' && d.peek() <= '9' {
		s.Part = append(s.Part, int(d.nzNumber()))
		dot = false
		if len(s.Part) > 100 {
			d.fail("section too deep")
		}
		if d.peek() != '.' {
			break
		}
		d.next()
		dot = true
		if c := d.peek(); c < '0' || c > '9' {
			break
		}
	}
	if d.peek() == ']' && dot {
		d.fail("section ends with a dot")
	}
	if d.peek() != ']' {
		if binary {
			d.fail("a BINARY section is a part number")
		}
		if len(s.Part) > 0 && !dot {
			d.fail("expected \".\" after the part number")
		}
		w := strings.ToUpper(d.chars(func(c byte) bool { return isAtomChar(c) }, "section"))
		switch w {
		case "HEADER", "TEXT":
		case "MIME":
			if len(s.Part) == 0 {
				d.fail("MIME needs a part number")
			}
		case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
			d.sp()
			d.expect('(', `"("`)
			for {
				s.Fields = append(s.Fields, strings.ToUpper(d.astring()))
				if d.peek() == ')' {
					d.next()
					break
				}
				d.sp()
			}
		default:
			d.fail("unknown section %s", w)
		}
		s.Specifier = w
	}
	d.expect(']', `"]"`)
	if d.peek() == '<' {
		d.next()
		s.Partial = true
		s.Offset = int64(d.number())
		d.expect('.', `"."`)
		s.Count = int64(d.nzNumber())
		d.expect('>', `">"`)
	}
	return s
}

// search reads the arguments of SEARCH (RFC 3501 §6.4.4, ESEARCH RFC 4731 §3).
func (d *Decoder) search() *SearchRequest {
	s := &SearchRequest{}
	d.sp()
	d.searchReturn(s)
	if w := d.peekWord(); w == "CHARSET" {
		d.word()
		d.sp()
		s.Charset = strings.ToUpper(d.astring())
		d.sp()
	}
	d.searchKeys(s)
	return s
}

// searchReturn reads the RETURN (...) options of SEARCH (RFC 4731 §3) or SORT (ESORT,
// RFC 5267 §3), and the space after them, if they come.
func (d *Decoder) searchReturn(s *SearchRequest) {
	if d.peek() != 'R' && d.peek() != 'r' {
		return
	}
	// RETURN (...) or a search key starting with R (RECENT).
	if w := d.peekWord(); w == "RETURN" {
		d.word()
		d.sp()
		s.Return = d.atomList()
		for _, o := range s.Return {
			switch o {
			case "MIN", "MAX", "ALL", "COUNT", "SAVE":
			default:
				d.fail("unknown return option %s", o)
			}
		}
		s.ESearch = true
		d.sp()
	}
}

// sort reads the arguments of SORT (RFC 5256 §3, RFC 5267 §3, RFC 5957):
// [RETURN (...)] (sort-criteria) charset search-key...; the charset is required.
func (d *Decoder) sort() (*SortRequest, *SearchRequest) {
	s := &SearchRequest{}
	d.sp()
	d.searchReturn(s)
	r := &SortRequest{}
	d.expect('(', `"("`)
	for {
		k := SortCriterion{Key: d.word()}
		if k.Key == "REVERSE" {
			k.Reverse = true
			d.sp()
			k.Key = d.word()
		}
		switch k.Key {
		case "ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO":
		default:
			d.fail("unknown sort key %s", k.Key)
		}
		if len(r.Criteria) >= 20 {
			d.fail("too many sort keys")
		}
		r.Criteria = append(r.Criteria, k)
		if d.peek() == ')' {
			d.next()
			break
		}
		d.sp()
	}
	d.sp()
	s.Charset = strings.ToUpper(d.astring())
	d.sp()
	d.searchKeys(s)
	return r, s
}

// thread reads the arguments of THREAD (RFC 5256 §4): algorithm charset search-key...
func (d *Decoder) thread() (string, *SearchRequest) {
	s := &SearchRequest{}
	d.sp()
	alg := d.word()
	d.sp()
	s.Charset = strings.ToUpper(d.astring())
	d.sp()
	d.searchKeys(s)
	return alg, s
}

// searchKeys reads the search keys, one or more separated by spaces, into s.Key.
func (d *Decoder) searchKeys(s *SearchRequest) {
	root := &SearchKey{Op: "AND"}
	for {
		root.Keys = append(root.Keys, d.searchKey(0))
		if !d.maybeSP() {
			break
		}
	}
	if len(root.Keys) == 1 {
		s.Key = root.Keys[0]
	} else {
		s.Key = root
	}
}

// peekWord returns the upper-cased atom that comes next without consuming it (up to
// 16 bytes, which is enough to tell keywords apart).
func (d *Decoder) peekWord() string {
	// Peek one more byte at a time and stop at the first that ends the atom: Peek
	// blocks until it has what it asked for, and the client only sends up to the end
	// of the line (or a literal's announcement).
	var b []byte
	for i := 1; i <= 16; i++ {
		p, err := d.r.Peek(i)
		if err != nil || !isAtomChar(p[i-1]) {
			break
		}
		b = p
	}
	return strings.ToUpper(string(b))
}

const maxSearchDepth = 100

func (d *Decoder) searchKey(depth int) *SearchKey {
	if depth > maxSearchDepth {
		d.fail("search too deeply nested")
	}
	c := d.peek()
	if c == '(' {
		d.next()
		k := &SearchKey{Op: "AND"}
		for {
			k.Keys = append(k.Keys, d.searchKey(depth+1))
			if d.peek() == ')' {
				d.next()
				break
			}
			d.sp()
		}
		return k
	}
	if c == '*' || c == '$' || c >= '0' && c <= '9' {
		return &SearchKey{Op: "SEQSET", Set: d.seqSet()}
	}
	k := &SearchKey{Op: d.word()}
	switch k.Op {
	case "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
		"UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
		"SAVEDATESUPPORTED": // RFC 8514 §4.2
	case "BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO":
		d.sp()
		k.Str = d.astring()
	case "KEYWORD", "UNKEYWORD":
		d.sp()
		k.Str = d.flag(false)
	case "BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE",
		"SAVEDBEFORE", "SAVEDON", "SAVEDSINCE": // RFC 8514 §4.2
		d.sp()
		k.Date = d.date()
	case "HEADER":
		d.sp()
		k.Field = d.astring()
		d.sp()
		k.Str = d.astring()
	case "LARGER", "SMALLER":
		d.sp()
		k.Num = d.number64()
	case "UID":
		d.sp()
		k.Set = d.seqSet()
	case "EMAILID", "THREADID":
		// OBJECTID (RFC 8474 §6): objectid = 1*255(ALPHA / DIGIT / "_" / "-").
		d.sp()
		k.Str = d.chars(func(c byte) bool {
			return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		}, "objectid")
		if len(k.Str) > 255 {
			d.fail("objectid too long")
		}
	case "NOT":
		d.sp()
		k.Keys = []*SearchKey{d.searchKey(depth + 1)}
	case "OR":
		d.sp()
		a := d.searchKey(depth + 1)
		d.sp()
		k.Keys = []*SearchKey{a, d.searchKey(depth + 1)}
	case "MODSEQ":
		// RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer.
		d.sp()
		if d.peek() == '"' {
			d.quoted()
			d.sp()
			switch d.word() {
			case "PRIV", "SHARED", "ALL":
			default:
				d.fail("bad MODSEQ entry type")
			}
			d.sp()
		}
		k.Num = int64(d.modseq())
	default:
		d.fail("unknown search key %s", k.Op)
	}
	return k
}

// AppendMessage returns the message of the APPEND command ReadCommand just returned.
// For a synchronizing literal it first sends the continuation request. The caller reads
// the reader to its end (exactly AppendRequest.Size bytes), then calls EndAppend.
func (d *Decoder) AppendMessage() (io.Reader, error) {
	a := d.pending
	if a == nil {
		return nil, errors.New("imap: no APPEND message pending")
	}
	if a.Sync && d.Continue != nil {
		if err := d.Continue(); err != nil {
			return nil, err
		}
		a.Sync = false // accepted: SkipAppend must now drain it
	}
	return io.LimitReader(d.r, a.Size), nil
}

// EndAppend reads the end of an APPEND command after its message. A ParseError means
// the client sent more than the one message (MULTIAPPEND is not offered).
func (d *Decoder) EndAppend() (err error) {
	a := d.pending
	d.pending = nil
	d.lastLF = false
	defer func() {
		if r := recover(); r != nil {
			switch e := r.(type) {
			case ioError:
				err = e.err
			case errParse:
				err = &ParseError{Tag: d.tag, Msg: e.msg}
				if !d.lastLF {
					d.discardLine()
				}
			default:
				panic(r)
			}
		}
	}()
	d.n = 0
	if a != nil && a.UTF8 {
		d.expect(')', `")"`)
	}
	d.crlf()
	return nil
}

// SkipAppend refuses the pending APPEND message: a synchronizing literal that was not
// accepted is never sent; an accepted or non-synchronizing one is read and discarded.
func (d *Decoder) SkipAppend() error {
	a := d.pending
	if a == nil {
		return nil
	}
	if a.Sync {
		d.pending = nil
		return nil
	}
	if _, err := io.CopyN(io.Discard, d.r, a.Size); err != nil {
		d.pending = nil
		return err
	}
	return d.EndAppend()
}

// ParseSeqSet parses a sequence-set such as "1:4,7,9:*".
func ParseSeqSet(s string) (SeqSet, error) {
	d := NewDecoder(bufio.NewReader(strings.NewReader(s+"\r\n")), nil)
	var set SeqSet
	err := d.run(func() { set = d.seqSet(); d.crlf() })
	return set, err
}

// run calls f, turning parser panics into errors.
func (d *Decoder) run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			switch e := r.(type) {
			case ioError:
				err = e.err
			case errParse:
				err = &ParseError{Msg: e.msg}
			case *ParseError:
				err = e
			default:
				panic(r)
			}
		}
	}()
	f()
	return nil
}
