package main

import (
	"archive/zip"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"postern/pkg/mbox"
)

// The account page's "export all my mail": a zip of one mboxrd file per folder, written
// to the browser as it is fetched from imapd over a connection of its own (UID FETCH
// BODY.PEEK[] in batches of exportBatch, each message's literal copied through the mbox
// writer as it arrives), so that a mailbox of any size takes constant memory. The zip is
// streamed too: archive/zip writes each entry's sizes after its data.

// exportBatch is the number of messages of one FETCH.
const exportBatch = 100

// accountExport answers GET /account/export.
func (s *Server) accountExport(w http.ResponseWriter, r *http.Request, sess *session) {
	c, err := s.dialIMAP(sess, nil)
	if err != nil {
		s.log.Error("mail export: connecting to imapd", "user", sess.user, "err", err)
		http.Error(w, "the mail service is unavailable; try again later", http.StatusServiceUnavailable)
		return
	}
	defer c.Close()
	folders, err := c.List("", "*", nil).Collect()
	if err != nil {
		s.log.Error("mail export: listing the folders", "user", sess.user, "err", err)
		http.Error(w, "the mail service is unavailable; try again later", http.StatusServiceUnavailable)
		return
	}
	name := fmt.Sprintf("mail-%s-%s.zip", strings.ReplaceAll(sess.user, "@", "_at_"), time.Now().UTC().Format("20060102"))
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	zw := zip.NewWriter(w)
	n := 0
	for _, f := range folders {
		if !selectable(f) {
			continue
		}
		k, err := exportFolder(c, zw, f)
		n += k
		if err != nil {
			// The status line is sent: all that is left is to break the download, so
			// that the browser does not keep a zip that lacks mail.
			s.log.Error("mail export failed", "user", sess.user, "folder", f.Mailbox, "messages", n, "client", clientIP(r), "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	if err := zw.Close(); err != nil {
		s.log.Warn("mail export: finishing the zip", "user", sess.user, "err", err)
		panic(http.ErrAbortHandler)
	}
	c.Logout().Wait()
	s.log.Info("mail exported", "user", sess.user, "folders", len(folders), "messages", n, "client", clientIP(r))
}

// selectable tells whether a folder of a LIST answer holds messages: it is neither
// \Noselect nor \NonExistent (RFC 9051 §7.3.1).
func selectable(f *imap.ListData) bool {
	return !hasAttr(f.Attrs, imap.MailboxAttrNoSelect) && !hasAttr(f.Attrs, imap.MailboxAttrNonExistent)
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// exportNameFix makes a folder name's part safe as a path element of the zip.
var exportNameFix = strings.NewReplacer("/", "_", "\\", "_", "\x00", "_")

// exportPath is the name in the zip of a folder's mbox: its hierarchy as directories,
// with no empty, "." or ".." part.
func exportPath(f *imap.ListData) string {
	parts := []string{f.Mailbox}
	if f.Delim != 0 {
		parts = strings.Split(f.Mailbox, string(f.Delim))
	}
	for i, p := range parts {
		p = exportNameFix.Replace(p)
		if p == "" || p == "." || p == ".." {
			p = "_" + p
		}
		parts[i] = p
	}
	return path.Join(parts...) + ".mbox"
}

// exportFolder writes one folder as an mbox entry of zw and returns the number of
// messages written.
func exportFolder(c *imapclient.Client, zw *zip.Writer, f *imap.ListData) (int, error) {
	sel, err := c.Select(f.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return 0, fmt.Errorf("examining %s: %w", f.Mailbox, err)
	}
	ew, err := zw.Create(exportPath(f))
	if err != nil {
		return 0, fmt.Errorf("adding %s to the zip: %w", f.Mailbox, err)
	}
	mw := mbox.NewWriter(ew)
	n := 0
	for first := uint32(1); first <= sel.NumMessages; first += exportBatch {
		last := min(first+exportBatch-1, sel.NumMessages)
		// The UIDs and arrival dates of the batch first (small), so that each From_
		// line is written before its message's literal is read.
		var seqs imap.SeqSet
		seqs.AddRange(first, last)
		meta, err := c.Fetch(seqs, &imap.FetchOptions{UID: true, InternalDate: true}).Collect()
		if err != nil {
			return n, fmt.Errorf("fetching the UIDs of %s %d:%d: %w", f.Mailbox, first, last, err)
		}
		dates := make(map[imap.UID]time.Time, len(meta))
		bySeq := make(map[uint32]time.Time, len(meta))
		var uids imap.UIDSet
		for _, m := range meta {
			dates[m.UID], bySeq[m.SeqNum] = m.InternalDate, m.InternalDate
			uids.AddNum(m.UID)
		}
		if len(uids) == 0 {
			continue
		}
		body := &imap.FetchItemBodySection{Peek: true}
		cmd := c.Fetch(uids, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{body}})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			var uid imap.UID
			for item := msg.Next(); item != nil; item = msg.Next() {
				switch it := item.(type) {
				case imapclient.FetchItemDataUID:
					uid = it.UID
				case imapclient.FetchItemDataBodySection:
					if it.Literal == nil {
						continue
					}
					date, ok := dates[uid] // the UID may come after the body
					if !ok {
						date = bySeq[msg.SeqNum]
					}
					if err := mw.WriteMessage("", date, it.Literal); err != nil {
						cmd.Close()
						return n, fmt.Errorf("exporting %s UID %d: %w", f.Mailbox, uid, err)
					}
					n++
				}
			}
		}
		if err := cmd.Close(); err != nil {
			return n, fmt.Errorf("fetching the messages of %s: %w", f.Mailbox, err)
		}
	}
	if err := mw.Flush(); err != nil {
		return n, fmt.Errorf("writing %s to the zip: %w", f.Mailbox, err)
	}
	return n, nil
}
