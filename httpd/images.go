package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"postern/pkg/auth"
)

// Remote images of a message are blocked until the user allows them: for that message
// (the page's images=1), or for every message from its sender. The senders so trusted
// are a preference of the account that authd keeps in users.db (auth.OpWebImages),
// since httpd writes nothing: the choice follows the user to every session and device.
//
// A From: address is anybody's to write, so trusting a sender by it alone would let a
// forger have the images of any trusted sender loaded (and learn that the message was
// read). The images of a trusted sender are therefore shown only when the message's
// From: is authenticated: the Authentication-Results field that this host's spamd added
// at delivery (authserv-id ours; cleanup removes such fields that come with a message,
// RFC 8601 §5) says dmarc=pass for the From: domain, or a dkim=pass whose d= is that
// domain, or an spf=pass whose MAIL FROM domain is that domain.

// authenticatedFrom returns the address of a message's From: field, lower case, and
// whether this host authenticated it (see above). hdr is the message's header section
// with its From: and Authentication-Results fields (other fields are ignored);
// authservID is this host's authserv-id.
func authenticatedFrom(hdr []byte, authservID string) (from string, ok bool) {
	m, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n\r\n")))
	if err != nil {
		return "", false
	}
	list, err := mail.ParseAddressList(m.Header.Get("From"))
	if err != nil || len(list) != 1 {
		return "", false // RFC 7489 §6.6.1: several authors are left to local policy; not trusted
	}
	from = strings.ToLower(list[0].Address)
	at := strings.LastIndexByte(from, '@')
	if at < 0 || authservID == "" {
		return from, false
	}
	domain := strings.TrimSuffix(from[at+1:], ".")
	// The topmost field of ours is the one spamd added at this delivery (RFC 8601 §5:
	// fields are added at the top).
	for _, v := range m.Header["Authentication-Results"] {
		id, results, err := authres.Parse(v)
		if err != nil || !strings.EqualFold(strings.TrimSuffix(id, "."), strings.TrimSuffix(authservID, ".")) {
			continue
		}
		for _, r := range results {
			switch r := r.(type) {
			case *authres.DMARCResult:
				ok = ok || r.Value == authres.ResultPass && strings.EqualFold(r.From, domain)
			case *authres.DKIMResult:
				ok = ok || r.Value == authres.ResultPass && strings.EqualFold(r.Domain, domain)
			case *authres.SPFResult:
				mf := r.From
				if i := strings.LastIndexByte(mf, '@'); i >= 0 {
					mf = mf[i+1:]
				}
				ok = ok || r.Value == authres.ResultPass && r.From != "" && strings.EqualFold(mf, domain)
			}
		}
		return from, ok
	}
	return from, false
}

// imageSenders asks authd for the session user's image senders, and with allow or
// forget changes them first.
func (s *Server) imageSenders(ctx context.Context, sess *session, allow, forget string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.auth.WebImages(ctx, auth.WebImagesRequest{User: sess.user, Token: sess.token, Allow: allow, Forget: forget})
}

// imagesAllow serves the message page's "Always show images from sender": the sender
// joins the user's image senders, and the message is shown again.
func (s *Server) imagesAllow(w http.ResponseWriter, r *http.Request, sess *session) {
	f, uid, sender := r.PostFormValue("f"), uidParam(r.PostFormValue("uid")), strings.TrimSpace(r.PostFormValue("sender"))
	back := "/mail/msg?f=" + url.QueryEscape(f) + "&uid=" + strconv.FormatUint(uint64(uid), 10)
	if _, err := s.imageSenders(r.Context(), sess, sender, ""); err != nil {
		http.Redirect(w, r, back+"&notice="+url.QueryEscape("Not allowed: "+err.Error()), http.StatusSeeOther)
		return
	}
	s.log.Info("webmail: remote images allowed for a sender", "user", sess.user, "sender", sender)
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// accountImages serves the account page's list of image senders: op=forget removes one.
func (s *Server) accountImages(w http.ResponseWriter, r *http.Request, sess *session) {
	sender := strings.TrimSpace(r.PostFormValue("sender"))
	if r.PostFormValue("op") != "forget" || sender == "" {
		http.Error(w, "unknown operation", http.StatusBadRequest)
		return
	}
	if _, err := s.imageSenders(r.Context(), sess, "", sender); err != nil {
		s.renderAccount(w, r, sess, accountData{Error: "Not removed: " + err.Error()}, http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, "/account?notice="+url.QueryEscape("Images from "+sender+" are blocked again."), http.StatusSeeOther)
}
