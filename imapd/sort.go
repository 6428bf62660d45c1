package main

import (
	"slices"
	"strconv"

	"postern/pkg/imap"
	"postern/pkg/imapsort"
)

// sortCmd runs SORT (RFC 5256 §3, with the DISPLAYFROM and DISPLAYTO keys of RFC 5957)
// and, with RETURN (...), ESORT (RFC 5267 §3). The keys come from the message cache,
// so sorting reads no message file.
func (s *Session) sortCmd(c *imap.Command) {
	cands, matched, need, ok := s.runSearch(c)
	if !ok {
		return
	}
	msgs, modseq := s.sortInput(cands, matched, c.UID)
	crit := make([]imapsort.Criterion, len(c.Sort.Criteria))
	for i, k := range c.Sort.Criteria {
		crit[i] = imapsort.Criterion{Key: k.Key, Reverse: k.Reverse}
	}
	nums := imapsort.Sort(msgs, crit)
	s.saveResult(c.Search, cands, matched)
	if c.Search.ESearch {
		// RFC 5267 §3.1: an ESEARCH response; MIN and MAX are the first and last
		// message in sort order, ALL lists them in sort order.
		s.writeSearch(c, nums, modseq, need.modseq)
	} else {
		b := append(s.buf[:0], "* SORT"...)
		for _, n := range nums {
			b = append(b, ' ')
			b = strconv.AppendUint(b, uint64(n), 10)
		}
		if need.modseq && len(nums) > 0 {
			// RFC 7162 §3.1.5: SORT reports the highest mod-sequence as SEARCH does.
			b = append(b, " (MODSEQ "...)
			b = strconv.AppendUint(b, modseq, 10)
			b = append(b, ')')
		}
		s.buf = append(b, "\r\n"...)
		s.w.Write(s.buf)
	}
	s.update(c.UID)
	s.tagged(c.Tag, "OK", "SORT completed")
}

// sortInput returns the matching candidates as imapsort messages, in mailbox order,
// numbered by UID or sequence number, and their highest mod-sequence.
func (s *Session) sortInput(cands []*candidate, matched []bool, uid bool) ([]imapsort.Message, uint64) {
	var entries []fetchEntry
	for i, cd := range cands {
		if matched[i] {
			entries = append(entries, fetchEntry{seq: cd.seq, m: cd.m})
		}
	}
	cache := s.cacheOf(entries, true)
	msgs := make([]imapsort.Message, len(entries))
	var modseq uint64
	for i, e := range entries {
		m := e.m
		msgs[i] = imapsort.Message{Num: uint32(e.seq), Arrival: m.idate, Size: m.size}
		if uid {
			msgs[i].Num = m.uid
		}
		if c := cache[m.uid]; c != nil {
			msgs[i].Sent, msgs[i].Keys = c.sent, c.keys
		}
		modseq = max(modseq, m.modseq)
	}
	return msgs, modseq
}

// threadCmd runs THREAD (RFC 5256 §4) with the ORDEREDSUBJECT or REFERENCES algorithm.
func (s *Session) threadCmd(c *imap.Command) {
	if !slices.Contains([]string{imapsort.OrderedSubject, imapsort.References}, c.Thread) {
		s.tagged(c.Tag, "BAD", "Unknown thread algorithm "+c.Thread)
		return
	}
	cands, matched, _, ok := s.runSearch(c)
	if !ok {
		return
	}
	msgs, _ := s.sortInput(cands, matched, c.UID)
	b := append(s.buf[:0], "* THREAD"...)
	if len(msgs) > 0 {
		b = append(b, ' ')
		b = imapsort.AppendThreads(b, imapsort.Thread(msgs, c.Thread))
	}
	s.buf = append(b, "\r\n"...)
	s.w.Write(s.buf)
	s.update(c.UID)
	s.tagged(c.Tag, "OK", "THREAD completed")
}
