package main

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"postern/pkg/imap"
	"postern/pkg/mime"
)

// searchNeeds says what the criteria look at beyond the index.
type searchNeeds struct {
	sent    bool // SENTBEFORE, SENTON, SENTSINCE: the cached Date
	header  bool // FROM, TO, CC, BCC, SUBJECT, HEADER: the parsed header
	text    bool // BODY, TEXT: the cached text, else the file
	modseq  bool
	matcher map[*imap.SearchKey]*mime.Matcher
}

func (n *searchNeeds) scan(k *imap.SearchKey) {
	switch k.Op {
	case "SENTBEFORE", "SENTON", "SENTSINCE":
		n.sent = true
	case "FROM", "TO", "CC", "BCC", "SUBJECT", "HEADER":
		n.header = true
		n.matcher[k] = mime.NewMatcher(k.Str)
	case "BODY", "TEXT":
		n.text = true
		n.matcher[k] = mime.NewMatcher(k.Str)
	case "MODSEQ":
		n.modseq = true
	}
	for _, c := range k.Keys {
		n.scan(c)
	}
}

// candidate is one message being searched, with what has been loaded for it.
type candidate struct {
	seq      int
	m        *message
	name     string    // the file's name in cur/ when the search began
	sent     time.Time // the day of the Date header, zero when it has none
	header   []byte    // folded header text from the cache
	body     []byte    // folded body text from the cache
	hasTxt   bool
	msg      *mime.Message // parsed file, when the cache was not enough
	file     *os.File
	failed   bool
	vanished bool // its file was gone: expunged meanwhile
}

// runSearch evaluates the search criteria of c (SEARCH, SORT, THREAD) over the view:
// matched[i] tells whether cands[i] matches. For a charset it does not take, it answers
// NO itself and returns false.
func (s *Session) runSearch(c *imap.Command) (cands []*candidate, matched []bool, need searchNeeds, ok bool) {
	req := c.Search
	switch req.Charset {
	case "", "US-ASCII", "UTF-8":
	default:
		// RFC 3501 §6.4.4: BADCHARSET lists what we take.
		s.no(c, "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset")
		return nil, nil, need, false
	}
	need = searchNeeds{matcher: map[*imap.SearchKey]*mime.Matcher{}}
	need.scan(req.Key)
	if need.modseq {
		s.enableCondstore()
	}
	mb := s.mb
	mb.mu.RLock()
	cands = make([]*candidate, 0, len(s.view))
	for i, uid := range s.view {
		if m := mb.lookup(uid); m != nil {
			cd := &candidate{seq: i + 1, m: m}
			if need.header || need.text {
				// Taken now: parse runs inside a read transaction of the index,
				// where waiting for mb.mu would deadlock with a writer that holds
				// mb.mu and waits for the transaction to end (bolt remaps).
				cd.name = mb.curName(m)
			}
			cands = append(cands, cd)
		}
	}
	mb.mu.RUnlock()
	n := len(s.view)
	var maxUID uint32
	if n > 0 {
		maxUID = s.view[n-1]
	}
	ev := evaluator{s: s, need: &need, nseq: uint32(n), maxUID: maxUID, now: time.Now()}

	matched = make([]bool, len(cands))
	if need.sent {
		cache := s.cacheFor(entriesOf(cands))
		for _, cd := range cands {
			if c := cache[cd.m.uid]; c != nil && c.sent != 0 {
				cd.sent = c.sentDate()
			}
		}
	}
	if need.text || need.header {
		// The cached text is read in place inside one read transaction, and the
		// messages are searched in parallel.
		var missing map[uint32]cacheRecord
		var mu sync.Mutex
		mb.acct.db.View(func(tx *bolt.Tx) error {
			var tb *bolt.Bucket
			if b := tx.Bucket([]byte(mb.key)); b != nil {
				tb = b.Bucket(bucketText)
			}
			if tb != nil && need.text {
				for _, cd := range cands {
					if v := tb.Get(uidKey(cd.m.uid)); v != nil {
						cd.header, cd.body, cd.hasTxt = splitText(v)
					}
				}
			}
			if testHookSearchTx != nil {
				testHookSearchTx(mb)
			}
			parallel(len(cands), func(i int) {
				cd := cands[i]
				matched[i] = ev.eval(req.Key, cd)
				if cd.file != nil {
					if need.text && !cd.hasTxt && cd.msg != nil {
						if t := textRecord(cd.msg); t != nil {
							mu.Lock()
							if missing == nil {
								missing = map[uint32]cacheRecord{}
							}
							missing[cd.m.uid] = cacheRecord{text: t}
							mu.Unlock()
						}
					}
					cd.file.Close()
					cd.file, cd.msg = nil, nil
				}
				cd.header, cd.body = nil, nil
			})
			return nil
		})
		mb.saveCache(missing)
	} else {
		for i, cd := range cands {
			matched[i] = ev.eval(req.Key, cd)
		}
	}
	return cands, matched, need, true
}

func (s *Session) search(c *imap.Command) {
	cands, matched, need, ok := s.runSearch(c)
	if !ok {
		return
	}
	// Messages of the view that the index no longer has.
	expunged := len(cands) < len(s.view)
	req := c.Search
	var nums []uint32
	var modseqs []uint64
	for _, cd := range cands {
		expunged = expunged || cd.vanished
	}
	for i, cd := range cands {
		if !matched[i] {
			continue
		}
		if c.UID {
			nums = append(nums, cd.m.uid)
		} else {
			nums = append(nums, uint32(cd.seq))
		}
		modseqs = append(modseqs, cd.m.modseq)
	}
	// MODSEQ is the highest mod-sequence of the messages the response returns (RFC
	// 7162 §3.1.5): with RETURN (MIN) or (MAX) alone, that of the one message; with MIN
	// and MAX, the higher of those two (RFC 4731 §3.2); else of every match.
	var modseq uint64
	if ret := req.Return; len(modseqs) > 0 && (req.ESearch || s.rev2) && (has(ret, "MIN") || has(ret, "MAX")) && !has(ret, "ALL") && !has(ret, "COUNT") {
		if has(ret, "MIN") {
			modseq = modseqs[0]
		}
		if has(ret, "MAX") {
			modseq = max(modseq, modseqs[len(modseqs)-1])
		}
	} else {
		for _, ms := range modseqs {
			modseq = max(modseq, ms)
		}
	}
	s.saveResult(req, cands, matched)
	s.writeSearch(c, nums, modseq, need.modseq)
	s.update(c.UID)
	if expunged {
		// Messages the client still sees were expunged by another session and could
		// not be searched: EXPUNGEISSUED tells it (RFC 5530 §3, RFC 2180 §4.1.3).
		s.tagged(c.Tag, "OK", "[EXPUNGEISSUED] SEARCH completed, some messages were expunged meanwhile")
		return
	}
	s.tagged(c.Tag, "OK", "SEARCH completed")
}

// saveResult keeps the matches of a SEARCH or SORT with RETURN (SAVE) as UIDs, for
// "$" (SEARCHRES, RFC 5182 §2.1; for SORT, RFC 5267 §3.2).
func (s *Session) saveResult(req *imap.SearchRequest, cands []*candidate, matched []bool) {
	if !has(req.Return, "SAVE") {
		return
	}
	s.saved = s.saved[:0]
	for i, cd := range cands {
		if matched[i] {
			s.saved = append(s.saved, cd.m.uid)
		}
	}
}

// testHookSearchTx, set by tests only, runs inside the search's read transaction of
// the index, before the messages are searched.
var testHookSearchTx func(mb *Mailbox)

func entriesOf(cands []*candidate) []fetchEntry {
	e := make([]fetchEntry, len(cands))
	for i, cd := range cands {
		e[i] = fetchEntry{seq: cd.seq, m: cd.m}
	}
	return e
}

// writeSearch writes the result: ESEARCH (RFC 4731) when asked for with RETURN or for
// IMAP4rev2 clients (RFC 9051 §7.3.4), the SEARCH response of RFC 3501 otherwise.
func (s *Session) writeSearch(c *imap.Command, nums []uint32, modseq uint64, withModseq bool) {
	req := c.Search
	if !req.ESearch && !s.rev2 {
		b := append(s.buf[:0], "* SEARCH"...)
		for _, x := range nums {
			b = append(b, ' ')
			b = strconv.AppendUint(b, uint64(x), 10)
		}
		if withModseq && len(nums) > 0 {
			// RFC 7162 §3.1.5.
			b = append(b, " (MODSEQ "...)
			b = strconv.AppendUint(b, modseq, 10)
			b = append(b, ')')
		}
		s.buf = append(b, "\r\n"...)
		s.w.Write(s.buf)
		return
	}
	opts := req.Return
	if len(opts) == 0 {
		opts = []string{"ALL"}
	}
	if len(opts) == 1 && opts[0] == "SAVE" {
		// RFC 5182 §2.1: SAVE alone answers nothing.
		return
	}
	if has(opts, "SAVE") && !has(opts, "MIN") && !has(opts, "MAX") && !has(opts, "ALL") && !has(opts, "COUNT") {
		return
	}
	b := append(s.buf[:0], "* ESEARCH (TAG "...)
	b = imap.AppendString(b, c.Tag)
	b = append(b, ')')
	if c.UID {
		b = append(b, " UID"...)
	}
	if len(nums) > 0 {
		if has(opts, "MIN") {
			b = append(b, " MIN "...)
			b = strconv.AppendUint(b, uint64(nums[0]), 10)
		}
		if has(opts, "MAX") {
			b = append(b, " MAX "...)
			b = strconv.AppendUint(b, uint64(nums[len(nums)-1]), 10)
		}
		if has(opts, "ALL") {
			b = append(b, " ALL "...)
			b = imap.AppendUIDSet(b, nums)
		}
	}
	if has(opts, "COUNT") {
		b = append(b, " COUNT "...)
		b = strconv.AppendInt(b, int64(len(nums)), 10)
	}
	if withModseq && len(nums) > 0 {
		b = append(b, " MODSEQ "...)
		b = strconv.AppendUint(b, modseq, 10)
	}
	s.buf = append(b, "\r\n"...)
	s.w.Write(s.buf)
}

// parallel calls f(0..n-1) on as many goroutines as there are CPUs.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// evaluator decides whether a message matches search criteria (RFC 3501 §6.4.4).
type evaluator struct {
	s      *Session
	need   *searchNeeds
	nseq   uint32
	maxUID uint32
	now    time.Time
}

// day returns the date of t, the part SEARCH compares ("disregarding time and
// timezone").
func day(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func (e *evaluator) eval(k *imap.SearchKey, cd *candidate) bool {
	m := cd.m
	switch k.Op {
	case "AND":
		for _, c := range k.Keys {
			if !e.eval(c, cd) {
				return false
			}
		}
		return true
	case "OR":
		return e.eval(k.Keys[0], cd) || e.eval(k.Keys[1], cd)
	case "NOT":
		return !e.eval(k.Keys[0], cd)
	case "ALL":
		return true
	case "SEQSET", "UID":
		if k.Set.IsSearchRes() {
			// "$" names the same messages as a sequence set and as a UID set.
			_, ok := slices.BinarySearch(e.s.saved, m.uid)
			return ok
		}
		if k.Op == "UID" {
			return k.Set.Contains(m.uid, e.maxUID)
		}
		return k.Set.Contains(uint32(cd.seq), e.nseq)
	case "ANSWERED":
		return m.flags&flagAnswered != 0
	case "DELETED":
		return m.flags&flagDeleted != 0
	case "DRAFT":
		return m.flags&flagDraft != 0
	case "FLAGGED":
		return m.flags&flagFlagged != 0
	case "SEEN":
		return m.flags&flagSeen != 0
	case "UNANSWERED":
		return m.flags&flagAnswered == 0
	case "UNDELETED":
		return m.flags&flagDeleted == 0
	case "UNDRAFT":
		return m.flags&flagDraft == 0
	case "UNFLAGGED":
		return m.flags&flagFlagged == 0
	case "UNSEEN":
		return m.flags&flagSeen == 0
	case "RECENT":
		return e.s.isRecent(m.uid)
	case "NEW":
		return e.s.isRecent(m.uid) && m.flags&flagSeen == 0
	case "OLD":
		return !e.s.isRecent(m.uid)
	case "SAVEDATESUPPORTED":
		// RFC 8514 §4.2: every folder keeps save dates.
		return true
	case "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE":
		// RFC 8514 §4.2, compared as BEFORE, ON and SINCE compare; a message whose
		// save date is not known (indexed before it was kept) is taken as saved
		// at its internal date.
		t := m.saved
		if t == 0 {
			t = m.idate
		}
		d := day(time.Unix(t, 0))
		switch k.Op {
		case "SAVEDBEFORE":
			return d.Before(k.Date)
		case "SAVEDON":
			return d.Equal(k.Date)
		default:
			return !d.Before(k.Date)
		}
	case "EMAILID":
		// RFC 8474 §6.
		return emailID(m.base) == k.Str
	case "THREADID":
		return false
	case "KEYWORD":
		return m.hasFlag(k.Str)
	case "UNKEYWORD":
		return !m.hasFlag(k.Str)
	case "LARGER":
		return m.size > k.Num
	case "SMALLER":
		return m.size < k.Num
	case "MODSEQ":
		return m.modseq >= uint64(k.Num)
	case "BEFORE":
		return day(time.Unix(m.idate, 0)).Before(k.Date)
	case "ON":
		return day(time.Unix(m.idate, 0)).Equal(k.Date)
	case "SINCE":
		return !day(time.Unix(m.idate, 0)).Before(k.Date)
	case "SENTBEFORE", "SENTON", "SENTSINCE":
		if cd.sent.IsZero() {
			return false
		}
		d := cd.sent
		switch k.Op {
		case "SENTBEFORE":
			return d.Before(k.Date)
		case "SENTON":
			return d.Equal(k.Date)
		default:
			return !d.Before(k.Date)
		}
	case "FROM", "TO", "CC", "BCC", "SUBJECT", "HEADER":
		msg := e.parse(cd)
		if msg == nil {
			return false
		}
		name := k.Field
		if k.Op != "HEADER" {
			name = strings.ToLower(k.Op)
		}
		return msg.HeaderContains(name, e.need.matcher[k])
	case "BODY", "TEXT":
		mt := e.need.matcher[k]
		if cd.hasTxt {
			if k.Op == "TEXT" && mt.MatchFolded(cd.header) {
				return true
			}
			return mt.MatchFolded(cd.body)
		}
		msg := e.parse(cd)
		if msg == nil {
			return false
		}
		ok, err := msg.Contains(mt, k.Op == "TEXT")
		return err == nil && ok
	}
	return false
}

// parse opens and parses the candidate's file once.
func (e *evaluator) parse(cd *candidate) *mime.Message {
	if cd.msg != nil || cd.failed {
		return cd.msg
	}
	f, err := e.s.mb.openName(cd.name, cd.m.base)
	if err != nil {
		cd.failed = true
		// No file: expunged since the search began.
		cd.vanished = errors.Is(err, fs.ErrNotExist)
		return nil
	}
	msg, err := parseFile(f)
	if err != nil {
		f.Close()
		cd.failed = true
		return nil
	}
	cd.file, cd.msg = f, msg
	return msg
}
