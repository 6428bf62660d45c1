// Package imap is the IMAP wire format (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2): a
// Decoder that reads client commands with bounded memory into Command values, the
// encoders of strings, mailbox names and dates that responses need (AppendString,
// AppendNString, AppendAString, AppendMailbox, AppendDateTime), modified UTF-7 for
// mailbox names (EncodeUTF7, DecodeUTF7), and sequence sets (SeqSet).
//
// It knows the syntax of the commands and extensions imapd offers: LITERAL+/LITERAL-
// (RFC 7888), SASL-IR (RFC 4959), ENABLE (RFC 5161), UIDPLUS (RFC 4315), MOVE (RFC
// 6851), IDLE (RFC 2177), ID (RFC 2971), ESEARCH (RFC 4731), LIST-EXTENDED (RFC 5258),
// LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154), BINARY (RFC 3516), CONDSTORE (RFC
// 7162) with QRESYNC, OBJECTID (RFC 8474), COMPRESS (RFC 4978), UTF8=ACCEPT (RFC 6855), SAVEDATE (RFC 8514), NOTIFY (RFC 5465), SORT and THREAD (RFC 5256), ESORT (RFC 5267) and SORT=DISPLAY (RFC 5957). What the commands mean is imapd's business; ENVELOPE and BODYSTRUCTURE are
// rendered by structure.go from pkg/mime.
package imap

import (
	"strconv"
	"time"
)

// Command is one parsed client command. Name is upper case; for "UID FETCH" and the
// other UID commands Name is the command after UID and UID is true. Only the fields of
// the command's own arguments are set.
type Command struct {
	Tag  string
	Name string
	UID  bool

	// Mailbox is the mailbox argument exactly as sent (modified UTF-7 for IMAP4rev1
	// clients, UTF-8 for IMAP4rev2): SELECT, EXAMINE, CREATE, DELETE, RENAME (old
	// name), SUBSCRIBE, UNSUBSCRIBE, STATUS, APPEND, COPY, MOVE; the reference name
	// of LIST and LSUB.
	Mailbox string
	// NewName is RENAME's new name.
	NewName string

	User, Password string // LOGIN

	Mechanism       string // AUTHENTICATE, upper case
	InitialResponse string // SASL-IR initial response (base64, "=" for empty), "" if none

	Capabilities []string // ENABLE, upper case
	CondStore    bool     // SELECT/EXAMINE (CONDSTORE)
	SpecialUse   []string // CREATE ... (USE (...)) (RFC 6154 §3)

	Set         SeqSet // FETCH, STORE, COPY, MOVE, UID EXPUNGE
	StatusItems []string
	List        *ListRequest // LIST, LSUB
	Append      *AppendRequest
	Search      *SearchRequest // SEARCH, and the search part of SORT and THREAD
	Fetch       *FetchRequest
	Store       *StoreRequest
	// ID holds the client's ID parameters (RFC 2971), nil for NIL.
	ID [][2]string

	// Sort holds SORT's criteria (RFC 5256 §3).
	Sort *SortRequest
	// Thread is THREAD's algorithm, upper case (RFC 5256 §4).
	Thread string
	// QResync holds SELECT/EXAMINE's QRESYNC parameter (RFC 7162 §3.2.5), nil if none.
	QResync *QResync
	// Compress is COMPRESS's mechanism, upper case (RFC 4978).
	Compress string
	// Notify holds the arguments of NOTIFY (RFC 5465).
	Notify *NotifyRequest
}

// NotifyRequest holds the arguments of NOTIFY (RFC 5465 §3): NONE, or SET with the
// event groups, and STATUS when the client asked for the initial STATUS responses.
type NotifyRequest struct {
	None   bool
	Status bool
	Groups []NotifyGroup
}

// NotifyGroup is one event group: its mailbox filter (SELECTED, SELECTED-DELAYED,
// INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES, upper case), the mailboxes of
// SUBTREE and MAILBOXES as sent, and the events as sent (nil for NONE); FetchAtts are
// those given with MessageNew.
type NotifyGroup struct {
	Filter    string
	Mailboxes []string
	Events    []string
	FetchAtts []FetchItem
}

// QResync is the QRESYNC parameter of SELECT and EXAMINE (RFC 7162 §3.2.5): what the
// client knew of the mailbox when it last had it selected.
type QResync struct {
	UIDValidity uint32
	ModSeq      uint64
	// KnownUIDs limits what the server reports; nil when not given.
	KnownUIDs SeqSet
	// KnownSeqs and KnownSeqUIDs are the seq-match-data: message numbers and the UIDs
	// they had; nil when not given.
	KnownSeqs, KnownSeqUIDs SeqSet
}

// ListRequest holds the arguments of LIST (RFC 3501 §6.3.8, RFC 5258) and LSUB.
type ListRequest struct {
	Patterns []string
	// Extended is true when the client used RFC 5258 syntax (selection or return
	// options, several patterns).
	Extended bool
	// Selection options (SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE), upper case.
	Selection []string
	// Return options (SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS), upper case; nil when
	// no RETURN was given.
	Return []string
	// StatusItems are the items of RETURN (STATUS (...)) (RFC 5819).
	StatusItems []string
}

// AppendRequest holds the arguments of APPEND before its message (RFC 3501 §6.3.11).
type AppendRequest struct {
	Flags []string
	// Date is the internal date to give the message; zero when not given.
	Date time.Time
	// Size is the length of the message literal.
	Size int64
	// Binary is set for a literal8 (~{n}, RFC 3516 §4.2).
	Binary bool
	// UTF8 is set for the UTF8 (~{n}...) form of RFC 6855 §4.
	UTF8 bool
	// Sync is set for a synchronizing literal not yet accepted.
	Sync bool
}

// SearchRequest holds the arguments of SEARCH.
type SearchRequest struct {
	// Charset is the CHARSET argument, upper case, "" when absent.
	Charset string
	// ESearch is set when RETURN (...) was given (RFC 4731 §3); Return then holds the
	// options (MIN, MAX, ALL, COUNT, and SAVE of SEARCHRES, RFC 5182), empty meaning
	// ALL.
	ESearch bool
	Return  []string
	// Key is the criteria: one key, or an AND of several.
	Key *SearchKey
}

// SortRequest holds the sort criteria of SORT (RFC 5256 §3); its return options (ESORT,
// RFC 5267 §3), charset and search keys are in the command's Search.
type SortRequest struct {
	Criteria []SortCriterion
}

// SortCriterion is one sort key: ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO, or
// DISPLAYFROM, DISPLAYTO (RFC 5957), upper case; Reverse is set for REVERSE.
type SortCriterion struct {
	Key     string
	Reverse bool
}

// SearchKey is a node of the search criteria (RFC 3501 §6.4.4). Op is the key in upper
// case; "AND" is a parenthesized list (or the implicit list at the top), "SEQSET" a
// bare sequence set.
type SearchKey struct {
	Op    string
	Str   string    // BCC BODY CC FROM SUBJECT TEXT TO, HEADER's value, KEYWORD's flag, EMAILID, THREADID
	Field string    // HEADER's field name
	Date  time.Time // BEFORE ON SINCE SENT* SAVED* (UTC midnight)
	Num   int64     // LARGER SMALLER MODSEQ
	Set   SeqSet    // SEQSET UID
	Keys  []*SearchKey
}

// FetchRequest holds the arguments of FETCH.
type FetchRequest struct {
	Items []FetchItem
	// ChangedSince is the CHANGEDSINCE modifier (RFC 7162 §3.1.4), 0 when absent.
	ChangedSince uint64
	// Vanished is the VANISHED modifier of UID FETCH (RFC 7162 §3.2.6).
	Vanished bool
}

// FetchItem is one fetch attribute. Name is upper case; sections are named "BODY[]",
// "BINARY[]" and "BINARY.SIZE[]" with the details in Section.
type FetchItem struct {
	Name    string
	Section *BodySection
}

// BodySection is the section and partial range of BODY[...], BODY.PEEK[...], BINARY[...]
// or BINARY.SIZE[...].
type BodySection struct {
	Peek   bool
	Binary bool // BINARY or BINARY.PEEK or BINARY.SIZE
	Size   bool // BINARY.SIZE
	// Part is the part number path, empty for the whole message.
	Part []int
	// Specifier is "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME".
	Specifier string
	// Fields are HEADER.FIELDS (.NOT)'s field names, upper case.
	Fields []string
	// Partial is set for <Offset.Count>.
	Partial       bool
	Offset, Count int64
}

// AppendName appends the item's name as the FETCH response gives it: "BODY[1.TEXT]",
// "BODY[HEADER.FIELDS (FROM TO)]<0>" (a partial range shows its origin only, RFC 3501
// §7.4.2), "BINARY[2]", "BINARY.SIZE[2]". BODY.PEEK answers as BODY.
func (s *BodySection) AppendName(b []byte) []byte {
	switch {
	case s.Size:
		b = append(b, "BINARY.SIZE["...)
	case s.Binary:
		b = append(b, "BINARY["...)
	default:
		b = append(b, "BODY["...)
	}
	for i, p := range s.Part {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	if s.Specifier != "" {
		if len(s.Part) > 0 {
			b = append(b, '.')
		}
		b = append(b, s.Specifier...)
		if len(s.Fields) > 0 {
			b = append(b, " ("...)
			for i, f := range s.Fields {
				if i > 0 {
					b = append(b, ' ')
				}
				b = AppendAString(b, f)
			}
			b = append(b, ')')
		}
	}
	b = append(b, ']')
	if s.Partial {
		b = append(b, '<')
		b = strconv.AppendInt(b, s.Offset, 10)
		b = append(b, '>')
	}
	return b
}

// Store modes.
const (
	StoreReplace = 0
	StoreAdd     = 1
	StoreRemove  = -1
)

// StoreRequest holds the arguments of STORE (RFC 3501 §6.4.6, RFC 7162 §3.1.3).
type StoreRequest struct {
	Mode   int // StoreReplace, StoreAdd or StoreRemove
	Silent bool
	Flags  []string
	// UnchangedSince is the UNCHANGEDSINCE modifier; valid when HasUnchangedSince.
	UnchangedSince    uint64
	HasUnchangedSince bool
}

// SeqRange is a range of message numbers or UIDs; 0 stands for "*", the largest one in
// use. Start may be greater than Stop: "4:2" means 2:4 (RFC 3501 §9, seq-range).
type SeqRange struct{ Start, Stop uint32 }

// SeqSet is a sequence set (RFC 3501 §9). The set "$" (SEARCHRES, RFC 5182) is the one
// range {SearchRes, SearchRes}; see IsSearchRes.
type SeqSet []SeqRange

// SearchRes marks the saved search result "$" in a SeqSet.
const SearchRes = 0xffffffff

// IsSearchRes reports whether the set is "$", the result saved by SEARCH RETURN (SAVE).
func (s SeqSet) IsSearchRes() bool { return len(s) == 1 && s[0].Start == SearchRes }

// Bounds returns the range with "*" replaced by star and Start <= Stop.
func (r SeqRange) Bounds(star uint32) (lo, hi uint32) {
	lo, hi = r.Start, r.Stop
	if lo == 0 {
		lo = star
	}
	if hi == 0 {
		hi = star
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi
}

// Contains reports whether n is in the set, "*" standing for star.
func (s SeqSet) Contains(n, star uint32) bool {
	for _, r := range s {
		if lo, hi := r.Bounds(star); lo <= n && n <= hi {
			return true
		}
	}
	return false
}

// Max returns the largest number the set names, "*" standing for star.
func (s SeqSet) Max(star uint32) uint32 {
	var m uint32
	for _, r := range s {
		if _, hi := r.Bounds(star); hi > m {
			m = hi
		}
	}
	return m
}

// String formats the set as the client would send it.
func (s SeqSet) String() string { return string(s.Append(nil)) }

// Append appends the set in its wire form.
func (s SeqSet) Append(b []byte) []byte {
	num := func(b []byte, n uint32) []byte {
		if n == 0 {
			return append(b, '*')
		}
		return strconv.AppendUint(b, uint64(n), 10)
	}
	if s.IsSearchRes() {
		return append(b, '$')
	}
	for i, r := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = num(b, r.Start)
		if r.Stop != r.Start {
			b = append(b, ':')
			b = num(b, r.Stop)
		}
	}
	return b
}

// AppendUIDSet appends a sorted list of numbers as a compact sequence set ("1:3,7"), as
// COPYUID, ESEARCH ALL and the like need.
func AppendUIDSet(b []byte, nums []uint32) []byte {
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(nums[i]), 10)
		if j > i {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(nums[j]), 10)
		}
		i = j + 1
	}
	return b
}
