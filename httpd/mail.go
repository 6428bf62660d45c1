package main

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/charset"
)

// pageSize is the number of messages on a page of the message list.
const pageSize = 50

// maxInline bounds the inline (cid:) images put into a message body as data: URLs.
const maxInline = 8 << 20

// mailRoutes adds the webmail's pages.
func (s *Server) mailRoutes(mux *http.ServeMux) {
	mux.Handle("GET /mail", s.authed(s.listPage))
	mux.Handle("GET /mail/msg", s.authed(s.messagePage))
	mux.Handle("GET /mail/body", s.authed(s.messageBody))
	mux.Handle("GET /mail/part", s.authed(s.messagePart))
	mux.Handle("POST /mail/images", s.authed(s.imagesAllow))
	mux.Handle("POST /mail/act", s.authed(s.act))
	mux.Handle("POST /mail/folder", s.authed(s.folderAct))
	mux.Handle("GET /mail/compose", s.authed(s.composePage))
	mux.Handle("POST /mail/send", s.authed(s.send))
	mux.Handle("GET /mail/events", s.authed(s.events))
}

// folder is a line of the folder list.
type folder struct {
	Name          string // the IMAP name
	Label         string // its last level
	Depth         int
	Unread, Total uint32
	Use           string // special use: Junk, Trash, Sent, Drafts, Archive; "" for none
}

// folders lists the account's folders with their counts (LIST-STATUS, RFC 5819) and
// special uses (RFC 6154).
func folders(c *imapConn) ([]folder, error) {
	list, err := c.List("", "*", &imap.ListOptions{
		ReturnStatus:     &imap.StatusOptions{NumMessages: true, NumUnseen: true},
		ReturnSpecialUse: true,
	}).Collect()
	if err != nil {
		return nil, fmt.Errorf("listing the folders: %w", err)
	}
	var out []folder
	for _, l := range list {
		if !selectable(l) {
			continue
		}
		f := folder{Name: l.Mailbox, Label: l.Mailbox}
		if l.Delim != 0 {
			parts := strings.Split(l.Mailbox, string(l.Delim))
			f.Label, f.Depth = parts[len(parts)-1], len(parts)-1
		}
		if l.Status != nil {
			if l.Status.NumMessages != nil {
				f.Total = *l.Status.NumMessages
			}
			if l.Status.NumUnseen != nil {
				f.Unread = *l.Status.NumUnseen
			}
		}
		for _, a := range l.Attrs {
			switch a {
			case imap.MailboxAttrJunk, imap.MailboxAttrTrash, imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrArchive:
				f.Use = strings.TrimPrefix(string(a), `\`)
			}
		}
		out = append(out, f)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Name == "INBOX") != (out[j].Name == "INBOX") {
			return out[i].Name == "INBOX"
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// specialFolder is the folder with the special use (Junk, Trash, Sent, Drafts), or the
// folder of that name.
func specialFolder(fs []folder, use string) string {
	for _, f := range fs {
		if f.Use == use {
			return f.Name
		}
	}
	return use
}

// selectFolder selects name unless the connection has it selected already and imapd
// announced no new or expunged message since; c.view then describes the selection.
func selectFolder(c *imapConn, name string) (*imapclient.SelectedMailbox, error) {
	if mb := c.Mailbox(); mb != nil && mb.Name == name && c.view.name == name &&
		!c.changed.Load() && mb.NumMessages == c.view.exists {
		return mb, nil
	}
	c.view = folderView{}
	c.changed.Store(false)
	data, err := c.Select(name, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("selecting %s: %w", name, err)
	}
	c.view = folderView{name: name, uidValidity: data.UIDValidity, uidNext: uint32(data.UIDNext), exists: data.NumMessages}
	return c.Mailbox(), nil
}

// base is what every page of the webmail shows: the user, the CSRF token for its forms,
// the folders.
type base struct {
	User    string
	CSRF    string
	Folders []folder
	Folder  string // the current folder
	Notice  string
	Error   string
}

// msgRow is a line of the message list.
type msgRow struct {
	UID                     imap.UID
	From, Subject           string
	Date                    time.Time
	Size                    int64
	Seen, Flagged, Answered bool
	Draft                   bool
	Depth                   int    // in an open thread: how deep in it the message replies, up to maxDepth
	Href                    string // where a click on it leads: the message, or a draft's compose page
}

// maxDepth is the deepest indentation of a message in an open thread (style.css).
const maxDepth = 8

// href is where a click on a message of folder leads.
func (m msgRow) href(folder string) string {
	if m.Draft {
		return "/mail/compose?mode=draft&f=" + url.QueryEscape(folder) + "&uid=" + strconv.FormatUint(uint64(m.UID), 10)
	}
	return "/mail/msg?f=" + url.QueryEscape(folder) + "&uid=" + strconv.FormatUint(uint64(m.UID), 10)
}

// threadRow is a conversation in the threaded list: its first message's subject, its
// latest arrival's sender and date, and, when it is open, its messages in thread order.
type threadRow struct {
	ID            imap.UID // the UID of its first message, which open= names
	Subject, From string
	Date          time.Time
	Count, Unread int
	Flagged       bool
	Latest        msgRow // the message a click on a one-message thread opens
	UIDs          string // all its messages, comma separated, for the checkbox
	Open          bool
	Msgs          []msgRow
}

// listData fills templates/list.html.
type listData struct {
	base
	Rows        []msgRow
	Threads     []threadRow
	Threaded    bool
	Open        imap.UID
	Page, Pages int
	Total       int
	Sort        string
	Rev         bool
	Query       string
	Use         string
	Sorts       []string
}

// Toggle is the URL of the list's first page in the other view (threads or list).
func (d listData) Toggle() string {
	d.Threaded = !d.Threaded
	return d.Link(1, 0)
}

// Reversed is the URL of the list's first page in the opposite order.
func (d listData) Reversed() string {
	d.Rev = !d.Rev
	return d.Link(1, 0)
}

// Link is the URL of the list as it is, with page and open set as given (0: none).
func (d listData) Link(page int, open imap.UID) string {
	v := url.Values{"f": {d.Folder}}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if d.Threaded {
		v.Set("view", "threads")
	} else {
		v.Set("view", "list")
		v.Set("sort", d.Sort)
	}
	if !d.Rev {
		v.Set("rev", "0")
	}
	if d.Query != "" {
		v.Set("q", d.Query)
	}
	if open != 0 {
		v.Set("open", strconv.FormatUint(uint64(open), 10))
	}
	return "/mail?" + v.Encode()
}

// sortKeys are the orders of the message list, by their names in URLs.
var sortKeys = map[string]imapclient.SortKey{
	"date": imapclient.SortKeyDate, "arrival": imapclient.SortKeyArrival, "from": imapclient.SortKeyFrom,
	"subject": imapclient.SortKeySubject, "size": imapclient.SortKeySize,
}

// listPage shows a page of a folder's messages, sorted by imapd (SORT, RFC 5256), or
// those that match a search (SEARCH TEXT: headers and body, through imapd's index);
// or, with view=threads (which the session remembers until view=list), a page of its
// conversations (THREAD=REFERENCES, RFC 5256 §3), latest arrival first, one of them
// open.
func (s *Server) listPage(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	switch q.Get("view") {
	case "threads":
		sess.threads.Store(true)
	case "list":
		sess.threads.Store(false)
	}
	d := listData{base: s.base(r, sess), Sort: q.Get("sort"), Rev: q.Get("rev") != "0", Query: strings.TrimSpace(q.Get("q")),
		Page: max(atoi(q.Get("page")), 1), Sorts: []string{"date", "from", "subject", "size"},
		Threaded: sess.threads.Load(), Open: uidParam(q.Get("open"))}
	if _, ok := sortKeys[d.Sort]; !ok {
		d.Sort = "date"
	}
	err := s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		fs, err := folders(c)
		if err != nil {
			return err
		}
		d.Folders = fs
		for _, f := range fs {
			if f.Name == d.Folder {
				d.Use = f.Use
			}
		}
		if _, err := selectFolder(c, d.Folder); err != nil {
			return err
		}
		o, err := s.listOrder(c, sess.user, &d)
		if err != nil {
			return err
		}
		if d.Threaded {
			return threadPage(c, &d, o.threads)
		}
		d.Total = len(o.uids)
		d.Pages = max((len(o.uids)+pageSize-1)/pageSize, 1)
		d.Page = min(d.Page, d.Pages)
		from := (d.Page - 1) * pageSize
		page := o.uids[from:min(from+pageSize, len(o.uids))]
		d.Rows, err = rows(c, page)
		return err
	})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, http.StatusOK, "list.html", d)
}

// listOrder returns the folder's messages in the list's order (d.Sort, d.Rev) or its
// threads, from the order cache when the folder is as it was (listcache.go); a search
// is asked of imapd each time.
func (s *Server) listOrder(c *imapConn, user string, d *listData) (*order, error) {
	criteria := &imap.SearchCriteria{}
	if d.Query != "" {
		criteria.Text = []string{d.Query}
	}
	cached := d.Query == "" && c.view.name == d.Folder
	get := func(name string, build func() (*order, error)) (*order, error) {
		k := orderKey{user: user, view: c.view, order: name}
		if cached {
			if o := s.orders.get(k); o != nil {
				return o, nil
			}
		}
		o, err := build()
		if err == nil && cached {
			s.orders.put(k, o)
		}
		return o, err
	}
	sorted := func(key string, rev bool) (*order, error) {
		name := key
		if rev {
			name += "-r"
		}
		return get(name, func() (*order, error) {
			uids, err := c.UIDSort(&imapclient.SortOptions{SearchCriteria: criteria,
				SortCriteria: []imapclient.SortCriterion{{Key: sortKeys[key], Reverse: rev}}}).Wait()
			if err != nil {
				return nil, fmt.Errorf("sorting %s: %w", d.Folder, err)
			}
			return &order{uids: uids}, nil
		})
	}
	if !d.Threaded {
		return sorted(d.Sort, d.Rev)
	}
	return get("threads", func() (*order, error) {
		data, err := c.UIDThread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: criteria}).Wait()
		if err != nil {
			return nil, fmt.Errorf("threading %s: %w", d.Folder, err)
		}
		return &order{threads: makeThreads(data)}, nil
	})
}

// thread is a conversation of the order cache: its messages in thread order (depth
// first, as RFC 5256 §4 nests them) with their depths, and its latest arrival (the
// highest UID: UIDs ascend as messages arrive, RFC 9051 §2.3.1.1).
type thread struct {
	uids   []uint32
	depths []int
	latest uint32
}

// makeThreads flattens THREAD's answer into threads ordered by their latest arrival,
// oldest first (THREAD orders them by their first message's date instead, RFC 5256
// §3, but a conversation that goes on should come back up). A thread whose root is
// missing (a dummy, RFC 5256 §4) shows its children one level up.
func makeThreads(data []imapclient.ThreadData) []thread {
	var walk func(t *thread, d imapclient.ThreadData, depth int)
	walk = func(t *thread, d imapclient.ThreadData, depth int) {
		for _, u := range d.Chain {
			t.uids = append(t.uids, u)
			t.depths = append(t.depths, depth)
			t.latest = max(t.latest, u)
			depth++
		}
		for _, sub := range d.SubThreads {
			walk(t, sub, depth)
		}
	}
	out := make([]thread, 0, len(data))
	for _, d := range data {
		var t thread
		walk(&t, d, 0)
		if len(t.uids) > 0 {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].latest < out[j].latest })
	return out
}

// threadPage fills d with a page of threads, latest arrival first unless d.Rev is
// off, and the messages of the open one.
func threadPage(c *imapConn, d *listData, threads []thread) error {
	d.Total = len(threads)
	d.Pages = max((len(threads)+pageSize-1)/pageSize, 1)
	d.Page = min(d.Page, d.Pages)
	from := (d.Page - 1) * pageSize
	page := make([]thread, 0, pageSize)
	for i := from; i < min(from+pageSize, len(threads)); i++ {
		if d.Rev {
			page = append(page, threads[len(threads)-1-i])
		} else {
			page = append(page, threads[i])
		}
	}
	var uids []uint32
	for _, t := range page {
		uids = append(uids, t.uids...)
	}
	byUID, err := fetchRows(c, uids)
	if err != nil {
		return err
	}
	for _, t := range page {
		tr := threadRow{ID: imap.UID(t.uids[0]), Open: d.Open == imap.UID(t.uids[0])}
		ids := make([]string, 0, len(t.uids))
		for i, u := range t.uids {
			m, ok := byUID[imap.UID(u)]
			if !ok {
				continue // expunged since
			}
			m.Depth = min(t.depths[i], maxDepth)
			m.Href = m.href(d.Folder)
			ids = append(ids, strconv.FormatUint(uint64(u), 10))
			if tr.Count == 0 {
				tr.Subject = m.Subject
			}
			if tr.Count == 0 || m.UID > tr.Latest.UID {
				tr.Latest = m
			}
			tr.Count++
			if !m.Seen {
				tr.Unread++
			}
			tr.Flagged = tr.Flagged || m.Flagged
			if tr.Open {
				tr.Msgs = append(tr.Msgs, m)
			}
		}
		if tr.Count == 0 {
			continue
		}
		tr.From, tr.Date, tr.UIDs = tr.Latest.From, tr.Latest.Date, strings.Join(ids, ",")
		d.Threads = append(d.Threads, tr)
	}
	return nil
}

// rows fetches the list lines of the messages uids, in that order.
func rows(c *imapConn, uids []uint32) ([]msgRow, error) {
	byUID, err := fetchRows(c, uids)
	if err != nil {
		return nil, err
	}
	out := make([]msgRow, 0, len(uids))
	for _, u := range uids {
		if row, ok := byUID[imap.UID(u)]; ok {
			out = append(out, row)
		}
	}
	return out, nil
}

// fetchRows fetches the list lines of the messages uids; expunged ones are absent.
func fetchRows(c *imapConn, uids []uint32) (map[imap.UID]msgRow, error) {
	byUID := map[imap.UID]msgRow{}
	if len(uids) == 0 {
		return byUID, nil
	}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	msgs, err := c.Fetch(set, &imap.FetchOptions{UID: true, Envelope: true, Flags: true, RFC822Size: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetching the message list: %w", err)
	}
	for _, m := range msgs {
		row := msgRow{UID: m.UID, Size: m.RFC822Size}
		if e := m.Envelope; e != nil {
			row.Subject, row.Date = e.Subject, e.Date
			if len(e.From) > 0 {
				row.From = displayAddr(e.From[0])
			}
		}
		row.Seen = slices.Contains(m.Flags, imap.FlagSeen)
		row.Flagged = slices.Contains(m.Flags, imap.FlagFlagged)
		row.Answered = slices.Contains(m.Flags, imap.FlagAnswered)
		row.Draft = slices.Contains(m.Flags, imap.FlagDraft)
		byUID[m.UID] = row
	}
	return byUID, nil
}

// displayAddr is a name, else the address.
func displayAddr(a imap.Address) string {
	if a.Name != "" {
		return a.Name
	}
	return a.Addr()
}

// formatAddrs writes addresses as a header would.
func formatAddrs(as []imap.Address) string {
	var parts []string
	for _, a := range as {
		if a.IsGroupStart() || a.IsGroupEnd() {
			continue
		}
		if a.Name != "" {
			parts = append(parts, mime.QEncoding.Encode("utf-8", a.Name)+" <"+a.Addr()+">")
		} else {
			parts = append(parts, a.Addr())
		}
	}
	return strings.Join(parts, ", ")
}

// plainAddrs writes addresses for display: Name <addr>, undecoded names kept as they are.
func plainAddrs(as []imap.Address) string {
	var parts []string
	for _, a := range as {
		if a.IsGroupStart() || a.IsGroupEnd() {
			continue
		}
		if a.Name != "" {
			parts = append(parts, a.Name+" <"+a.Addr()+">")
		} else {
			parts = append(parts, a.Addr())
		}
	}
	return strings.Join(parts, ", ")
}

// base fills the part every page has.
func (s *Server) base(r *http.Request, sess *session) base {
	f := r.URL.Query().Get("f")
	if f == "" {
		f = "INBOX"
	}
	return base{User: sess.user, CSRF: sess.csrf, Folder: f, Notice: r.URL.Query().Get("notice")}
}

// fail answers a request that IMAP or SMTP could not serve.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	var imapErr *imap.Error
	status := http.StatusBadGateway
	msg := "The mail server did not answer; try again."
	switch {
	case errors.As(err, &imapErr):
		status, msg = http.StatusBadRequest, "The mail server refused: "+imapErr.Text
	case errors.Is(err, errSessionClosed):
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	case errors.Is(err, context.Canceled):
		return
	}
	s.log.Warn("webmail request failed", "user", sess.user, "path", r.URL.Path, "err", err)
	s.render(w, status, "error.html", struct {
		base
		Message string
	}{base{User: sess.user, CSRF: sess.csrf, Folder: "INBOX"}, msg})
}

// uidParam is the message's UID from the query, 0 when absent or bad.
func uidParam(v string) imap.UID {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0
	}
	return imap.UID(n)
}

// partInfo is a part of a message: an attachment, or a text to show.
type partInfo struct {
	Path   string // 1.2 ...
	Name   string
	Type   string
	Size   int64
	ID     string // Content-ID without <>
	single *imap.BodyStructureSinglePart
	path   []int
}

// structure sorts a message's parts: the text to show (HTML preferred), the inline
// images, and the attachments.
func structure(bs imap.BodyStructure) (text *partInfo, inline, attachments []partInfo) {
	var plain, html *partInfo
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		sp, ok := part.(*imap.BodyStructureSinglePart)
		if !ok {
			return true
		}
		p := partInfo{Path: joinPath(path), Name: sp.Filename(), Type: sp.MediaType(), Size: int64(sp.Size),
			ID: strings.Trim(sp.ID, "<> "), single: sp, path: slices.Clone(path)}
		disp := ""
		if d := sp.Disposition(); d != nil {
			disp = strings.ToLower(d.Value)
		}
		switch {
		case disp != "attachment" && p.Name == "" && p.Type == "text/html" && html == nil:
			html = &p
		case disp != "attachment" && p.Name == "" && p.Type == "text/plain" && plain == nil:
			plain = &p
		case disp != "attachment" && p.ID != "" && inlineImageTypes[p.Type]:
			inline = append(inline, p)
		default:
			if p.Name == "" {
				p.Name = "part-" + p.Path
				if p.Type == "message/rfc822" {
					p.Name += ".eml"
				}
			}
			attachments = append(attachments, p)
		}
		return true
	})
	text = html
	if text == nil {
		text = plain
	}
	return text, inline, attachments
}

func joinPath(path []int) string {
	s := make([]string, len(path))
	for i, n := range path {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}

func splitPath(s string) ([]int, bool) {
	var out []int
	for _, f := range strings.Split(s, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || n > 10000 {
			return nil, false
		}
		out = append(out, n)
	}
	return out, len(out) > 0 && len(out) < 50
}

// msgData fills templates/msg.html.
type msgData struct {
	base
	UID                         imap.UID
	Subject, From, To, Cc, Date string
	Attachments                 []partInfo
	Flagged, Seen               bool
	Images                      bool // remote images allowed for this view
	Use                         string
	// Remote says the body refers to remote images; Sender is the From: address,
	// Authenticated whether this host authenticated it (authenticatedFrom), Trusted
	// whether the user allows the images of that sender.
	Remote, Authenticated, Trusted bool
	Sender                         string
}

// fetchMessage fetches what the message page and body need: envelope, flags, structure.
func fetchMessage(c *imapConn, uid imap.UID) (*imapclient.FetchMessageBuffer, error) {
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, Envelope: true, Flags: true,
		RFC822Size: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("fetching message %d: %w", uid, err)
	}
	if len(msgs) == 0 || msgs[0].BodyStructure == nil {
		return nil, errNoMessage
	}
	return msgs[0], nil
}

var errNoMessage = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "No such message (it may have been moved or deleted)"}

// messagePage shows a message: its header, its body in a sandboxed frame
// (messageBody), its attachments. Opening it marks it read.
func (s *Server) messagePage(w http.ResponseWriter, r *http.Request, sess *session) {
	d := msgData{base: s.base(r, sess), UID: uidParam(r.URL.Query().Get("uid")), Images: r.URL.Query().Get("images") == "1"}
	err := s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		fs, err := folders(c)
		if err != nil {
			return err
		}
		d.Folders = fs
		for _, f := range fs {
			if f.Name == d.Folder {
				d.Use = f.Use
			}
		}
		if _, err := selectFolder(c, d.Folder); err != nil {
			return err
		}
		m, err := fetchMessage(c, d.UID)
		if err != nil {
			return err
		}
		if e := m.Envelope; e != nil {
			d.Subject, d.From, d.To, d.Cc = e.Subject, plainAddrs(e.From), plainAddrs(e.To), plainAddrs(e.Cc)
			if !e.Date.IsZero() {
				d.Date = e.Date.Format("Mon, 2 Jan 2006 15:04 -0700")
			}
		}
		d.Flagged = slices.Contains(m.Flags, imap.FlagFlagged)
		d.Seen = true
		_, _, d.Attachments = structure(m.BodyStructure)
		if err := s.remoteImages(r.Context(), c, sess, m, &d); err != nil {
			return err
		}
		if !slices.Contains(m.Flags, imap.FlagSeen) {
			return c.Store(imap.UIDSetNum(d.UID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, http.StatusOK, "msg.html", d)
}

// remoteImages fills the remote image fields of d for message m: whether its body has
// remote images (which loads the body for the frame's request, bodycache.go) and, when
// it has and they are not allowed already, whether its sender is authenticated and
// trusted by the user, which allows them.
func (s *Server) remoteImages(ctx context.Context, c *imapConn, sess *session, m *imapclient.FetchMessageBuffer, d *msgData) error {
	if d.Images {
		return nil
	}
	if text, _, _ := structure(m.BodyStructure); text == nil || text.Type != "text/html" {
		return nil
	}
	body, err := s.loadBody(c, sess.user, m.UID, m.BodyStructure)
	if err != nil || !body.remote {
		return err
	}
	d.Remote = true
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "Authentication-Results"}, Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(m.UID), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{hdr}}).Collect()
	if err != nil || len(msgs) == 0 {
		return cmp(err, errNoMessage)
	}
	d.Sender, d.Authenticated = authenticatedFrom(msgs[0].FindBodySection(hdr), s.cfg.AuthservID())
	if !d.Authenticated {
		return nil
	}
	senders, err := s.imageSenders(ctx, sess, "", "")
	if err != nil {
		// Not fatal: the images stay blocked, as for an unknown sender.
		s.log.Warn("asking authd for the image senders", "user", sess.user, "err", err)
		return nil
	}
	d.Trusted = slices.Contains(senders, d.Sender)
	d.Images = d.Trusted
	return nil
}

// bodyData fills templates/body.html.
type bodyData struct {
	HTML   template.HTML // sanitized by cleanHTML, shown by showHTML
	Text   string
	IsHTML bool
	Remote bool // the message has remote images, blocked
}

// messageBody serves the body of a message as the document of the sandboxed frame of
// the message page: HTML sanitized (cleanHTML, kept in the body cache) under bodyCSP, or plain text.
func (s *Server) messageBody(w http.ResponseWriter, r *http.Request, sess *session) {
	f, uid := r.URL.Query().Get("f"), uidParam(r.URL.Query().Get("uid"))
	images := r.URL.Query().Get("images") == "1"
	var d bodyData
	err := s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		if _, err := selectFolder(c, f); err != nil {
			return err
		}
		b, ok := s.cachedBody(c, sess.user, uid) // the message page loaded it, usually
		if !ok {
			m, err := fetchMessage(c, uid)
			if err != nil {
				return err
			}
			if b, err = s.loadBody(c, sess.user, uid, m.BodyStructure); err != nil {
				return err
			}
		}
		d = b.data(images)
		return nil
	})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	csp := bodyCSP
	if images {
		csp = bodyCSPImages
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Frame-Options", "SAMEORIGIN")
	s.render(w, http.StatusOK, "body.html", d)
}

// decodeCharset turns a text part into UTF-8.
func decodeCharset(b []byte, label string) (string, error) {
	if label == "" || strings.EqualFold(label, "utf-8") || strings.EqualFold(label, "us-ascii") {
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	r, err := charset.Reader(label, strings.NewReader(string(b)))
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil // unknown charset: show what there is
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("decoding %s text: %w", label, err)
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), nil
}

// safeTypes are the attachment types sent with their own Content-Type; any other is
// sent as application/octet-stream. Every attachment is a download (Content-Disposition:
// attachment) in a sandbox, never a page of this site.
var safeTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "application/pdf": true,
	"text/plain": true, "application/zip": true, "message/rfc822": true}

// messagePart downloads a part of a message (an attachment).
func (s *Server) messagePart(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	f, uid := q.Get("f"), uidParam(q.Get("uid"))
	path, ok := splitPath(q.Get("part"))
	if !ok {
		http.Error(w, "bad part", http.StatusBadRequest)
		return
	}
	var data []byte
	var name, typ string
	err := s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		if _, err := selectFolder(c, f); err != nil {
			return err
		}
		m, err := fetchMessage(c, uid)
		if err != nil {
			return err
		}
		want := joinPath(path)
		var found *partInfo
		_, inline, atts := structure(m.BodyStructure)
		for _, p := range append(atts, inline...) {
			if p.Path == want {
				found = &p
			}
		}
		if found == nil {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "No such attachment"}
		}
		name, typ = found.Name, found.Type
		sec := &imap.FetchItemBinarySection{Part: path, Peek: true}
		if found.Type == "message/rfc822" {
			// BINARY of a message part is not allowed (RFC 3516 §4.2); its bytes are
			// the same as BODY's.
			bsec := &imap.FetchItemBodySection{Part: path, Peek: true}
			msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{bsec}}).Collect()
			if err != nil || len(msgs) == 0 {
				return cmp(err, errNoMessage)
			}
			data = msgs[0].FindBodySection(bsec)
			return nil
		}
		msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BinarySection: []*imap.FetchItemBinarySection{sec}}).Collect()
		if err != nil || len(msgs) == 0 {
			return cmp(err, errNoMessage)
		}
		data = msgs[0].FindBinarySection(sec)
		return nil
	})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	if !safeTypes[typ] {
		typ = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", typ)
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	if disp == "" { // a name that cannot be put in the header
		disp = "attachment"
	}
	h.Set("Content-Disposition", disp)
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// cmp returns err, or def when err is nil.
func cmp(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// act applies an action to the selected messages: move, delete (to Trash, or for good
// from Trash), junk and not junk (moves into and out of Junk, through which imapd trains
// spamd), read, unread, flag, unflag.
func (s *Server) act(w http.ResponseWriter, r *http.Request, sess *session) {
	f, op := r.PostFormValue("f"), r.PostFormValue("op")
	var set imap.UIDSet
	for _, v := range r.PostForm["uid"] {
		for _, v := range strings.Split(v, ",") { // a thread's checkbox: its messages
			if u := uidParam(v); u != 0 {
				set.AddNum(u)
			}
		}
	}
	back := safeNext(r.PostFormValue("back"))
	if len(set) == 0 {
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	err := s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		fs, err := folders(c)
		if err != nil {
			return err
		}
		if _, err := selectFolder(c, f); err != nil {
			return err
		}
		store := func(op imap.StoreFlagsOp, flag imap.Flag) error {
			return c.Store(set, &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{flag}}, nil).Close()
		}
		move := func(to string) error {
			if to == "" || to == f {
				return nil
			}
			_, err := c.Move(set, to).Wait()
			return err
		}
		switch op {
		case "read":
			return store(imap.StoreFlagsAdd, imap.FlagSeen)
		case "unread":
			return store(imap.StoreFlagsDel, imap.FlagSeen)
		case "flag":
			return store(imap.StoreFlagsAdd, imap.FlagFlagged)
		case "unflag":
			return store(imap.StoreFlagsDel, imap.FlagFlagged)
		case "move":
			return move(r.PostFormValue("to"))
		case "junk":
			return move(specialFolder(fs, "Junk"))
		case "notjunk":
			return move("INBOX")
		case "delete":
			trash := specialFolder(fs, "Trash")
			if f != trash {
				return move(trash)
			}
			if err := store(imap.StoreFlagsAdd, imap.FlagDeleted); err != nil {
				return err
			}
			return c.UIDExpunge(set).Close() // RFC 4315 §2.1: only these messages
		}
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown action"}
	})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// folderAct creates, renames or deletes a folder.
func (s *Server) folderAct(w http.ResponseWriter, r *http.Request, sess *session) {
	op, name, to := r.PostFormValue("op"), strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("to"))
	back := "/mail?f=" + url.QueryEscape(name)
	err := s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		if name == "" {
			return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "A folder needs a name"}
		}
		if mb := c.Mailbox(); mb != nil {
			if err := c.Unselect().Wait(); err != nil {
				return err
			}
		}
		switch op {
		case "create":
			return c.Create(name, nil).Wait()
		case "rename":
			if to == "" {
				return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "The new name is empty"}
			}
			back = "/mail?f=" + url.QueryEscape(to)
			return c.Rename(name, to, nil).Wait()
		case "delete":
			back = "/mail"
			return c.Delete(name).Wait()
		}
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown folder action"}
	})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}
