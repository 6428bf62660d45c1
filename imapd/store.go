package main

import (
	"postern/pkg/imap"
)

// storeCmd runs STORE and UID STORE (RFC 3501 §6.4.6) with UNCHANGEDSINCE (RFC 7162
// §3.1.3). All changes go to the index in one transaction.
func (s *Session) storeCmd(c *imap.Command) {
	if s.readOnly {
		s.no(c, "[READ-ONLY] Mailbox is read-only")
		return
	}
	idx, ok := s.resolve(c.Set, c.UID)
	if !ok {
		s.tagged(c.Tag, "BAD", "Invalid message sequence number")
		return
	}
	st := c.Store
	fc, err := parseFlags(st.Flags)
	if err != nil {
		s.tagged(c.Tag, "BAD", err.Error())
		return
	}
	fc.mode = st.Mode
	if st.HasUnchangedSince {
		s.enableCondstore()
	}
	uids := s.uidsOf(idx)
	// Changes by others first, so that our own need not be reported twice.
	s.update(c.UID)
	res, err := s.mb.store(uids, fc, st.UnchangedSince, st.HasUnchangedSince)
	if err != nil {
		s.mailboxError(c, err)
		return
	}
	if len(res.changed) > 0 {
		s.mb.changed(s)
	}
	// RFC 7162 §3.1.3: with UNCHANGEDSINCE the FETCH responses (with MODSEQ) go out
	// even for FLAGS.SILENT.
	if !st.Silent || st.HasUnchangedSince {
		for _, m := range res.changed {
			if i, ok := s.viewIndex(m.uid); ok {
				s.writeFlags(i+1, m)
			}
		}
	}
	if res.before == s.seenModseq {
		s.seenModseq = res.after
	}
	s.update(c.UID)
	if len(res.modified) > 0 {
		// RFC 7162 §3.1.3: the messages not changed because they were modified
		// since UNCHANGEDSINCE.
		var nums []uint32
		for _, u := range res.modified {
			if c.UID {
				nums = append(nums, u)
			} else if i, ok := s.viewIndex(u); ok {
				nums = append(nums, uint32(i+1))
			}
		}
		s.tagged(c.Tag, "OK", "[MODIFIED "+string(imap.AppendUIDSet(nil, nums))+"] Conditional STORE failed")
		return
	}
	s.tagged(c.Tag, "OK", "STORE completed")
}
