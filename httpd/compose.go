package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/microcosm-cc/bluemonday"

	"postern/pkg/auth"
)

// composeData fills templates/compose.html.
type composeData struct {
	base
	From                  []string // the addresses the user may send as (authd's rule)
	Selected              string
	To, Cc, Bcc, Subject  string
	Body                  string
	InReplyTo, References string
	FwdFolder             string
	FwdUID                imap.UID
	Draft                 imap.UID // the draft this resumes, replaced when saved or sent
	// Kept are the attachments of the resumed draft, carried into what is saved or
	// sent unless their remove box is ticked (form field "drop", by part path).
	Kept []partInfo
	// Inline are the images of the resumed draft's text (parts with a Content-ID that
	// its HTML shows as cid: URLs, RFC 2392), kept as Kept are; Body shows each where
	// the draft had it as its imageMarker.
	Inline []partInfo
}

// composePage shows the compose form: blank, or a reply, reply to all, forward, or a
// draft resumed (mode reply, all, forward or draft; f and uid name the message).
func (s *Server) composePage(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	d := composeData{base: s.base(r, sess), To: q.Get("to")}
	mode, uid := q.Get("mode"), uidParam(q.Get("uid"))
	from, err := s.sendAs(r.Context(), sess)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	d.From, d.Selected = from, from[0]
	err = s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		fs, err := folders(c)
		if err != nil {
			return err
		}
		d.Folders = fs
		if uid == 0 || mode == "" {
			return nil
		}
		if _, err := selectFolder(c, d.Folder); err != nil {
			return err
		}
		m, err := fetchMessage(c, uid)
		if err != nil {
			return err
		}
		e := m.Envelope
		if e == nil {
			return errNoMessage
		}
		hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"References", "Bcc"}, Peek: true}
		text, _, _ := structure(m.BodyStructure)
		opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{hdr}}
		var tsec *imap.FetchItemBinarySection
		if text != nil {
			tsec = &imap.FetchItemBinarySection{Part: text.path, Peek: true}
			opts.BinarySection = []*imap.FetchItemBinarySection{tsec}
		}
		msgs, err := c.Fetch(imap.UIDSetNum(uid), opts).Collect()
		if err != nil || len(msgs) == 0 {
			return cmp(err, errNoMessage)
		}
		h, _ := mail.ReadMessage(io.MultiReader(bytes.NewReader(msgs[0].FindBodySection(hdr)), strings.NewReader("\r\n")))
		var body string
		if text != nil {
			body, err = decodeCharset(msgs[0].FindBinarySection(tsec), text.single.Params["charset"])
			if err != nil {
				return err
			}
			if text.Type == "text/html" {
				if mode == "draft" {
					body = markImages(body)
				}
				body = htmlToText(body)
			}
		}
		own := func(a imap.Address) bool { return slices.Contains(from, strings.ToLower(a.Addr())) }
		switch mode {
		case "reply", "all":
			to := e.ReplyTo
			if len(to) == 0 {
				to = e.From
			}
			d.To = plainAddrs(to)
			if mode == "all" {
				var more, cc []imap.Address
				for _, a := range e.To {
					if !own(a) {
						more = append(more, a)
					}
				}
				for _, a := range e.Cc {
					if !own(a) {
						cc = append(cc, a)
					}
				}
				if len(more) > 0 {
					d.To += ", " + plainAddrs(more)
				}
				d.Cc = plainAddrs(cc)
			}
			d.Subject = prefixed("Re: ", e.Subject)
			if e.MessageID != "" {
				d.InReplyTo = "<" + e.MessageID + ">"
				refs := ""
				if h != nil {
					refs = strings.TrimSpace(h.Header.Get("References"))
				}
				d.References = strings.TrimSpace(refs + " " + d.InReplyTo)
			}
			d.Body = "\n\n" + fmt.Sprintf("On %s, %s wrote:\n", e.Date.Format("Mon, 2 Jan 2006 15:04"), plainAddrs(e.From)) + quote(body)
			// Answer from the address the message came to, when it is one of ours.
			for _, a := range append(slices.Clone(e.To), e.Cc...) {
				if own(a) {
					d.Selected = strings.ToLower(a.Addr())
					break
				}
			}
		case "forward":
			d.Subject = prefixed("Fwd: ", e.Subject)
			d.FwdFolder, d.FwdUID = d.Folder, uid
			d.Body = "\n\n-------- Forwarded message (attached) --------\nFrom: " + plainAddrs(e.From) + "\nSubject: " + e.Subject + "\n\n" + body
		case "draft":
			d.Draft = uid
			_, d.Inline, d.Kept = structure(m.BodyStructure)
			for _, ps := range [][]partInfo{d.Kept, d.Inline} {
				for i, k := range ps {
					if strings.EqualFold(k.single.Encoding, "base64") {
						ps[i].Size = k.Size * 3 / 4 // about the decoded size: base64 is 4 octets for 3
					}
				}
			}
			d.To, d.Cc, d.Subject, d.Body = plainAddrs(e.To), plainAddrs(e.Cc), e.Subject, body
			if h != nil {
				d.Bcc = h.Header.Get("Bcc")
				d.References = h.Header.Get("References")
			}
			if len(e.InReplyTo) > 0 {
				d.InReplyTo = "<" + e.InReplyTo[0] + ">"
			}
			if len(e.From) > 0 && slices.Contains(from, strings.ToLower(e.From[0].Addr())) {
				d.Selected = strings.ToLower(e.From[0].Addr())
			}
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	s.render(w, http.StatusOK, "compose.html", d)
}

// prefixed puts p before subject unless it is there already.
func prefixed(p, subject string) string {
	if strings.HasPrefix(strings.ToLower(subject), strings.ToLower(p)) {
		return subject
	}
	return p + subject
}

// quote prefixes every line with "> ".
func quote(s string) string {
	s = strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	return "> " + strings.ReplaceAll(s, "\n", "\n> ") + "\n"
}

var (
	textPolicy = bluemonday.StrictPolicy()
	blockEnd   = regexp.MustCompile(`(?i)</(p|div|tr|h[1-6]|li)>|<br\s*/?>`)
	blankLines = regexp.MustCompile(`\n{3,}`)
)

// cidImg is an image of an HTML body that shows a part of the message (a cid: URL,
// RFC 2392).
var cidImg = regexp.MustCompile(`(?i)<img\b[^>]*?\bsrc\s*=\s*["']?cid:([^"'\s>]+)[^>]*>`)

// imageMarker is how the compose form's text holds an image of the draft's text, by
// its Content-ID, where the draft shows it: sending makes the marker of a kept image
// that image again (htmlText).
func imageMarker(id string) string { return "[image cid:" + id + "]" }

// markImages replaces the cid: images of an HTML body by their imageMarkers, before
// htmlToText.
func markImages(s string) string {
	return cidImg.ReplaceAllStringFunc(s, func(m string) string {
		return html.EscapeString(imageMarker(unescapeCID(cidImg.FindStringSubmatch(m)[1])))
	})
}

// htmlText is the HTML version of the text of a message with images (RFC 2387): the
// text as typed, each imageMarker of one of the images made that image (a cid: URL,
// RFC 2392), and after the text the images that have no marker in it (the user took it
// out, or the draft was plain text), so that every image sent is shown.
func htmlText(text string, images []keptPart) string {
	out := html.EscapeString(text)
	var after strings.Builder
	for _, k := range images {
		img := `<img src="cid:` + html.EscapeString(url.PathEscape(k.ID)) + `" alt="` + html.EscapeString(k.Name) + `">`
		if m := html.EscapeString(imageMarker(k.ID)); strings.Contains(out, m) {
			out = strings.ReplaceAll(out, m, img)
		} else {
			after.WriteString("<p>" + img + "</p>\r\n")
		}
	}
	return "<!doctype html>\r\n<html><head><meta charset=\"utf-8\"></head><body>\r\n<div style=\"white-space: pre-wrap\">" + out + "</div>\r\n" +
		after.String() + "</body></html>\r\n"
}

// htmlToText is the text of an HTML body, for quoting in a reply.
func htmlToText(s string) string {
	s = blockEnd.ReplaceAllString(s, "$0\n")
	s = html.UnescapeString(textPolicy.Sanitize(s))
	return blankLines.ReplaceAllString(strings.TrimSpace(s), "\n\n")
}

// sendAs asks authd which addresses the user may send as.
func (s *Server) sendAs(ctx context.Context, sess *session) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := s.auth.SendAs(ctx, sess.user)
	if err != nil {
		return nil, fmt.Errorf("asking authd for the sending addresses: %w", err)
	}
	if len(r.Addresses) == 0 {
		return []string{sess.user}, nil
	}
	return r.Addresses, nil
}

// send sends the composed message through smtpd (submission, as the user), then files
// a copy in Sent; or, with action=save, stores it in Drafts. A resumed draft is removed
// once its successor is stored.
func (s *Server) send(w http.ResponseWriter, r *http.Request, sess *session) {
	if err := r.ParseMultipartForm(s.maxUpload); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		http.Error(w, "the message is too large or malformed", http.StatusRequestEntityTooLarge)
		return
	}
	v := r.PostFormValue
	save := v("action") == "save"
	allowed, err := s.sendAs(r.Context(), sess)
	if err != nil {
		s.fail(w, r, sess, err)
		return
	}
	d := composeData{base: base{User: sess.user, CSRF: sess.csrf, Folder: "INBOX"}, From: allowed, Selected: v("from"),
		To: v("to"), Cc: v("cc"), Bcc: v("bcc"), Subject: v("subject"), Body: v("body"),
		InReplyTo: v("in_reply_to"), References: v("references"), FwdFolder: v("fwd_f"), FwdUID: uidParam(v("fwd_uid")),
		Draft: uidParam(v("draft"))}
	again := func(msg string) {
		s.withIMAP(r.Context(), sess, func(c *imapConn) error {
			d.Folders, _ = folders(c)
			return nil
		})
		d.Error = msg
		s.render(w, http.StatusBadRequest, "compose.html", d)
	}
	if !slices.Contains(allowed, strings.ToLower(d.Selected)) {
		again("You may not send from " + d.Selected + ".")
		return
	}
	var rcpts []string
	var to, cc, bcc []*mail.Address
	for _, f := range []struct {
		list *[]*mail.Address
		v    string
	}{{&to, d.To}, {&cc, d.Cc}, {&bcc, d.Bcc}} {
		if strings.TrimSpace(f.v) == "" {
			continue
		}
		as, err := mail.ParseAddressList(f.v)
		if err != nil {
			again("Check the recipients: " + err.Error())
			return
		}
		*f.list = as
		for _, a := range as {
			rcpts = append(rcpts, a.Address)
		}
	}
	if len(rcpts) == 0 && !save {
		again("Add a recipient.")
		return
	}
	var files []*multipart.FileHeader
	if r.MultipartForm != nil {
		files = r.MultipartForm.File["attach"]
	}
	drop := map[string]bool{}
	for _, p := range r.PostForm["drop"] {
		drop[p] = true
	}
	var msg []byte
	err = s.withIMAP(r.Context(), sess, func(c *imapConn) error {
		fs, err := folders(c)
		if err != nil {
			return err
		}
		drafts := specialFolder(fs, "Drafts")
		var fwd []byte
		if d.FwdUID != 0 {
			if _, err := selectFolder(c, d.FwdFolder); err != nil {
				return err
			}
			sec := &imap.FetchItemBodySection{Peek: true}
			msgs, err := c.Fetch(imap.UIDSetNum(d.FwdUID), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
			if err != nil || len(msgs) == 0 {
				return cmp(err, errNoMessage)
			}
			fwd = msgs[0].FindBodySection(sec)
		}
		var kept []keptPart
		if d.Draft != 0 {
			// The attachments of the resumed draft, streamed from imapd into the new
			// message as it is written: the draft is never held whole.
			if kept, err = draftParts(c, drafts, d.Draft, drop); err != nil {
				return err
			}
		}
		msg, err = buildMessage(s.cfg.Hostname, d, to, cc, bcc, save, files, fwd, kept)
		if err != nil {
			return err
		}
		if !save {
			if err := s.submit(sess, d.Selected, rcpts, msg); err != nil {
				return err
			}
		}
		box, flags := specialFolder(fs, "Sent"), []imap.Flag{imap.FlagSeen}
		if save {
			box, flags = specialFolder(fs, "Drafts"), []imap.Flag{imap.FlagSeen, imap.FlagDraft}
		}
		if err := appendMessage(c, box, flags, msg); err != nil {
			return err
		}
		if d.Draft != 0 {
			if _, err := selectFolder(c, drafts); err != nil {
				return err
			}
			set := imap.UIDSetNum(d.Draft)
			if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return err
			}
			return c.UIDExpunge(set).Close()
		}
		return nil
	})
	var se *submitError
	switch {
	case errors.As(err, &se):
		again("The mail server refused the message: " + se.Error())
		return
	case err != nil:
		s.fail(w, r, sess, err)
		return
	}
	notice := "Message sent."
	if save {
		notice = "Draft saved."
	}
	s.log.Info("webmail message stored", "user", sess.user, "sent", !save, "recipients", len(rcpts))
	http.Redirect(w, r, "/mail?f=INBOX&notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

// appendMessage stores msg in box with flags.
func appendMessage(c *imapConn, box string, flags []imap.Flag, msg []byte) error {
	cmd := c.Append(box, int64(len(msg)), &imap.AppendOptions{Flags: flags, Time: time.Now()})
	if _, err := cmd.Write(msg); err != nil {
		cmd.Close()
		return fmt.Errorf("storing the message in %s: %w", box, err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("storing the message in %s: %w", box, err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("storing the message in %s: %w", box, err)
	}
	return nil
}

// buildMessage writes the message (RFC 5322, MIME): the text, and as attachments those
// kept from a resumed draft, the uploaded files and the forwarded message. The images
// kept from the text of a resumed draft go with the text in a multipart/related part
// (RFC 2387) whose root is the text as plain text and as HTML (htmlText), which shows
// them by their Content-IDs. A draft keeps its Bcc header; a sent message does not
// carry it (RFC 5322 §3.6.3 leaves that to the sender; recipients must not see it).
func buildMessage(hostname string, d composeData, to, cc, bcc []*mail.Address, draft bool, files []*multipart.FileHeader, fwd []byte, kept []keptPart) ([]byte, error) {
	var h gomail.Header
	h.SetDate(time.Now())
	h.SetAddressList("From", []*gomail.Address{{Address: d.Selected}})
	conv := func(as []*mail.Address) []*gomail.Address {
		out := make([]*gomail.Address, len(as))
		for i, a := range as {
			out[i] = &gomail.Address{Name: a.Name, Address: a.Address}
		}
		return out
	}
	if len(to) > 0 {
		h.SetAddressList("To", conv(to))
	}
	if len(cc) > 0 {
		h.SetAddressList("Cc", conv(cc))
	}
	if draft && len(bcc) > 0 {
		h.SetAddressList("Bcc", conv(bcc))
	}
	h.SetSubject(d.Subject)
	if err := h.GenerateMessageIDWithHostname(hostname); err != nil {
		return nil, fmt.Errorf("making a Message-ID: %w", err)
	}
	if id := msgID.FindString(d.InReplyTo); id != "" {
		h.Set("In-Reply-To", id)
	}
	if refs := msgID.FindAllString(d.References, 50); len(refs) > 0 {
		h.Set("References", strings.Join(refs, " "))
	}
	body := strings.ReplaceAll(strings.ReplaceAll(d.Body, "\r\n", "\n"), "\n", "\r\n")
	var atts, images []keptPart
	for _, k := range kept {
		if k.ID != "" {
			images = append(images, k)
		} else {
			atts = append(atts, k)
		}
	}
	var b bytes.Buffer
	mixed := len(files) > 0 || fwd != nil || len(atts) > 0
	if !mixed && len(images) == 0 {
		w, err := gomail.CreateSingleInlineWriter(&b, h)
		if err != nil {
			return nil, err
		}
		io.WriteString(w, body)
		if err := w.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	// RFC 2387 §3.1: the type parameter of multipart/related names its root's type.
	related := func(h *message.Header) {
		h.SetContentType("multipart/related", map[string]string{"type": "multipart/alternative"})
	}
	top := h.Header.Copy()
	if mixed {
		top.Set("Content-Type", "multipart/mixed")
	} else {
		related(&top)
	}
	mw, err := message.CreateWriter(&b, top)
	if err != nil {
		return nil, err
	}
	switch {
	case len(images) > 0 && mixed:
		var rh message.Header
		related(&rh)
		rw, err := mw.CreatePart(rh)
		if err != nil {
			return nil, err
		}
		if err := writeRelated(rw, body, images); err != nil {
			return nil, err
		}
		if err := rw.Close(); err != nil {
			return nil, err
		}
	case len(images) > 0:
		if err := writeRelated(mw, body, images); err != nil {
			return nil, err
		}
	default:
		if err := writePart(mw, textHeader("text/plain"), func(w io.Writer) error { _, err := io.WriteString(w, body); return err }); err != nil {
			return nil, err
		}
	}
	for _, k := range atts {
		var ah gomail.AttachmentHeader
		ah.SetContentType(k.Type, k.Params) // its charset, if any, with it
		if k.Type == "message/rfc822" {
			ah.Set("Content-Transfer-Encoding", "8bit") // RFC 2046 §5.2.1: no base64 for message/rfc822
		}
		ah.SetFilename(k.Name)
		if err := writePart(mw, attachmentHeader(ah), k.write); err != nil {
			return nil, fmt.Errorf("attaching %s from the draft: %w", k.Name, err)
		}
	}
	for _, fh := range files {
		var ah gomail.AttachmentHeader
		ct := fh.Header.Get("Content-Type")
		if ct == "" {
			ct = "application/octet-stream"
		}
		ah.Set("Content-Type", ct)
		ah.SetFilename(fh.Filename)
		f, err := fh.Open()
		if err != nil {
			return nil, fmt.Errorf("reading the upload %s: %w", fh.Filename, err)
		}
		err = writePart(mw, attachmentHeader(ah), func(w io.Writer) error { _, err := io.Copy(w, f); return err })
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("attaching %s: %w", fh.Filename, err)
		}
	}
	if fwd != nil {
		var ah gomail.AttachmentHeader
		ah.Set("Content-Type", "message/rfc822")
		ah.Set("Content-Transfer-Encoding", "8bit") // RFC 2046 §5.2.1: no base64 for message/rfc822
		ah.SetFilename("forwarded.eml")
		if err := writePart(mw, attachmentHeader(ah), func(w io.Writer) error { _, err := w.Write(fwd); return err }); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeRelated writes the parts of a multipart/related rw: its root, the text as
// plain text and as HTML (multipart/alternative, RFC 2046 §5.1.4, simplest first),
// then the images, each with its Content-ID (RFC 2045 §7), which the HTML names.
func writeRelated(rw *message.Writer, text string, images []keptPart) error {
	var ah message.Header
	ah.Set("Content-Type", "multipart/alternative")
	alt, err := rw.CreatePart(ah)
	if err != nil {
		return err
	}
	for _, v := range []struct{ typ, text string }{{"text/plain", text}, {"text/html", htmlText(text, images)}} {
		if err := writePart(alt, textHeader(v.typ), func(w io.Writer) error { _, err := io.WriteString(w, v.text); return err }); err != nil {
			return err
		}
	}
	if err := alt.Close(); err != nil {
		return err
	}
	for _, k := range images {
		var ih message.Header
		ih.SetContentType(k.Type, k.Params)
		ih.Set("Content-ID", "<"+k.ID+">")
		disp := map[string]string{}
		if k.Name != "" {
			disp["filename"] = k.Name
		}
		ih.SetContentDisposition("inline", disp)
		ih.Set("Content-Transfer-Encoding", "base64")
		if err := writePart(rw, ih, k.write); err != nil {
			return fmt.Errorf("putting image %s of the draft in the text: %w", k.ID, err)
		}
	}
	return nil
}

// textHeader is the header of a part of the text, of type typ (text/plain, text/html).
func textHeader(typ string) message.Header {
	var th message.Header
	th.SetContentType(typ, map[string]string{"charset": "utf-8"})
	th.SetContentDisposition("inline", nil)
	th.Set("Content-Transfer-Encoding", "quoted-printable")
	return th
}

// attachmentHeader is ah's header, encoded in base64 unless it says otherwise.
func attachmentHeader(ah gomail.AttachmentHeader) message.Header {
	if !ah.Has("Content-Transfer-Encoding") {
		ah.Set("Content-Transfer-Encoding", "base64")
	}
	return ah.Header
}

// writePart writes a part of the multipart mw with header h, its body written by write
// (and encoded as h's Content-Transfer-Encoding says).
func writePart(mw *message.Writer, h message.Header, write func(io.Writer) error) error {
	pw, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	err = write(pw)
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	return err
}

// keptPart is an attachment, or an image of the text, of a resumed draft that goes
// into its successor: write copies its content (decoded) from imapd.
type keptPart struct {
	Name, Type string
	Params     map[string]string // of Content-Type, but the name
	ID         string            // an image's Content-ID, without its angle brackets; "" for an attachment
	write      func(io.Writer) error
}

// draftParts selects the folder drafts and returns the attachments and the images of
// the text of the draft uid, but those whose part path is in drop, each written by
// streaming it from imapd (streamPart) while drafts stays selected.
func draftParts(c *imapConn, drafts string, uid imap.UID, drop map[string]bool) ([]keptPart, error) {
	if _, err := selectFolder(c, drafts); err != nil {
		return nil, err
	}
	m, err := fetchMessage(c, uid)
	if err != nil {
		return nil, err
	}
	_, images, atts := structure(m.BodyStructure)
	for i := range atts {
		atts[i].ID = "" // an attachment, though it may have a Content-ID
	}
	var out []keptPart
	for _, p := range append(atts, images...) {
		if drop[p.Path] {
			continue
		}
		params := map[string]string{}
		for k, v := range p.single.Params {
			if k != "name" {
				params[k] = v
			}
		}
		out = append(out, keptPart{Name: p.Name, Type: p.Type, Params: params, ID: p.ID, write: func(w io.Writer) error {
			return streamPart(c, uid, p.path, p.Type == "message/rfc822", w)
		}})
	}
	return out, nil
}

// streamPart copies the part path of message uid, in the selected folder, to w as it
// comes from imapd: decoded (BINARY, RFC 3516), or for a message/rfc822 part as it is
// (BODY: RFC 3516 §4.2 allows no BINARY of a message part).
func streamPart(c *imapConn, uid imap.UID, path []int, message bool, w io.Writer) error {
	opts := &imap.FetchOptions{UID: true}
	if message {
		opts.BodySection = []*imap.FetchItemBodySection{{Part: path, Peek: true}}
	} else {
		opts.BinarySection = []*imap.FetchItemBinarySection{{Part: path, Peek: true}}
	}
	cmd := c.Fetch(imap.UIDSetNum(uid), opts)
	found := false
	var copyErr error
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for item := m.Next(); item != nil; item = m.Next() {
			var lit imap.LiteralReader
			switch it := item.(type) {
			case imapclient.FetchItemDataBinarySection:
				lit = it.Literal
			case imapclient.FetchItemDataBodySection:
				lit = it.Literal
			}
			if lit != nil && !found {
				found = true
				_, copyErr = io.Copy(w, lit) // what is left unread is discarded by Next
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetching part %s of message %d: %w", joinPath(path), uid, err)
	}
	if copyErr != nil {
		return fmt.Errorf("copying part %s of message %d: %w", joinPath(path), uid, copyErr)
	}
	if !found {
		return errNoMessage
	}
	return nil
}

// msgID matches a message identifier (RFC 5322 §3.6.4).
var msgID = regexp.MustCompile(`<[^<>\s]+@[^<>\s]+>`)

// submitError is smtpd's refusal of a message (a 4xx or 5xx reply), for the user.
type submitError struct{ err error }

func (e *submitError) Error() string { return e.err.Error() }
func (e *submitError) Unwrap() error { return e.err }

// webAuth is the client side of auth.WebMechanism for net/smtp.
type webAuth struct{ user, token string }

func (a webAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return auth.WebMechanism, auth.WebResponse(a.user, a.token), nil
}

func (a webAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return auth.WebResponse(a.user, a.token), nil
	}
	return nil, nil
}

// submit hands the message to smtpd's submission listener, logged in as the user with
// the session's token, so that every policy of submission (sending addresses, rates,
// sizes, DKIM signing) applies as to any mail client.
func (s *Server) submit(sess *session, from string, rcpts []string, msg []byte) error {
	if s.submitAddr == "" {
		return errors.New("smtpd has no submission listener that httpd can reach")
	}
	conn, err := net.DialTimeout("tcp", s.submitAddr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("connecting to smtpd at %s: %w", s.submitAddr, err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	host, _, _ := net.SplitHostPort(s.submitAddr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting of smtpd: %w", err)
	}
	defer c.Close()
	refused := func(err error) error {
		var te *textproto.Error // a reply of smtpd
		if errors.As(err, &te) {
			return &submitError{err}
		}
		return err
	}
	if err := c.Hello(s.cfg.Hostname); err != nil {
		return fmt.Errorf("EHLO to smtpd: %w", err)
	}
	if err := c.Auth(webAuth{sess.user, sess.token}); err != nil {
		return fmt.Errorf("logging in to smtpd with the web session token: %w", err)
	}
	if err := c.Mail(from); err != nil {
		return refused(err)
	}
	for _, rc := range rcpts {
		if err := c.Rcpt(rc); err != nil {
			return refused(fmt.Errorf("%s: %w", rc, err))
		}
	}
	wc, err := c.Data()
	if err != nil {
		return refused(err)
	}
	if _, err := wc.Write(msg); err != nil {
		return fmt.Errorf("sending the message to smtpd: %w", err)
	}
	if err := wc.Close(); err != nil {
		return refused(err)
	}
	return c.Quit()
}
