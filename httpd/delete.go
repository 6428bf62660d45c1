package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"postern/pkg/control"
)

// The account page's "delete my account". authd's user.del removes the account from
// users.db (and ends its web tokens) but no mail: the Maildir's files are owned by vmail
// (local writes tmp/ and new/, imapd owns cur/ and the index), which authd and httpd are
// not. So httpd removes the mail first as the user, through imapd like any mail client:
// it expunges every message of every folder and deletes every folder but INBOX; imapd
// unlinks the files. Then it asks authd to delete the account, which writes the audit
// entry (the user, from the browser's address), and ends the user's sessions here.
//
// The last administrator may not delete their own account this way: the panel would be
// left without anyone to run it. They make another administrator first (or use mailctl).

// accountDelete answers POST /account/delete: the current password ("current") checked
// by authd with its throttling, and "confirm" the account's address typed again.
func (s *Server) accountDelete(w http.ResponseWriter, r *http.Request, sess *session) {
	fail := func(status int, msg string) { s.renderAccount(w, r, sess, accountData{Error: msg}, status) }
	cur := r.PostFormValue("current")
	if !strings.EqualFold(strings.TrimSpace(r.PostFormValue("confirm")), sess.user) {
		fail(http.StatusBadRequest, "Type your address to confirm that the account is to be deleted.")
		return
	}
	if status, msg := s.checkPassword(r, sess, cur, "The password is wrong; the account is not deleted."); status != 0 {
		fail(status, msg)
		return
	}
	if last, err := s.lastAdmin(r.Context(), sess.user); err != nil {
		fail(http.StatusServiceUnavailable, "The account service is unavailable; try again later.")
		return
	} else if last {
		fail(http.StatusConflict, "You are the last administrator: make another account an administrator first.")
		return
	}
	n, err := s.removeAllMail(sess)
	if err != nil {
		s.log.Error("account deletion: removing the mail", "user", sess.user, "removed", n, "err", err)
		fail(http.StatusBadGateway, "Your mail could not all be removed, so the account is not deleted: "+err.Error())
		return
	}
	if err := s.control(r.Context(), "authd", control.UserDel, control.UserRequest{Origin: origin(r, sess), Address: sess.user}, nil); err != nil {
		s.log.Error("account deletion: authd user.del", "user", sess.user, "err", err)
		fail(http.StatusBadGateway, "Your mail is removed, but the account could not be deleted: "+err.Error())
		return
	}
	for _, e := range s.sessions.removeUser(sess.user) {
		e.pool.close()
	}
	s.log.Info("account deleted by its user", "user", sess.user, "messages", n, "client", clientIP(r))
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// lastAdmin reports whether user is an administrator and no other enabled account is.
func (s *Server) lastAdmin(ctx context.Context, user string) (bool, error) {
	acct, err := s.auth.Account(ctx, user)
	if err != nil || !acct.Admin {
		return false, err
	}
	var ul control.UserListResult
	if err := s.control(ctx, "authd", control.UserList, control.ListRequest{}, &ul); err != nil {
		return false, err
	}
	for _, u := range ul.Users {
		if u.Admin && !u.Disabled && !strings.EqualFold(u.Address, user) {
			return false, nil
		}
	}
	return true, nil
}

// removeAllMail expunges every message of the session's user and deletes their folders
// but INBOX, over a connection of its own, and returns the number of messages removed.
func (s *Server) removeAllMail(sess *session) (int, error) {
	c, err := s.dialIMAP(sess, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	folders, err := c.List("", "*", nil).Collect()
	if err != nil {
		return 0, fmt.Errorf("listing the folders: %w", err)
	}
	// Children before their parents.
	sort.Slice(folders, func(i, j int) bool { return len(folders[i].Mailbox) > len(folders[j].Mailbox) })
	n := 0
	for _, f := range folders {
		if selectable(f) {
			k, err := expungeAll(c, f.Mailbox)
			n += k
			if err != nil {
				return n, err
			}
		}
		if strings.EqualFold(f.Mailbox, "INBOX") {
			continue
		}
		if err := c.Delete(f.Mailbox).Wait(); err != nil {
			return n, fmt.Errorf("deleting the folder %s: %w", f.Mailbox, err)
		}
	}
	c.Logout().Wait()
	return n, nil
}

// expungeAll marks every message of a folder \Deleted and expunges them.
func expungeAll(c *imapclient.Client, mailbox string) (int, error) {
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("selecting %s: %w", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return 0, nil
	}
	all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}} // 1:*
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := c.Store(all, store, nil).Close(); err != nil {
		return 0, fmt.Errorf("marking the messages of %s deleted: %w", mailbox, err)
	}
	ex, err := c.Expunge().Collect()
	if err != nil {
		return len(ex), fmt.Errorf("expunging %s: %w", mailbox, err)
	}
	if len(ex) == 0 && sel.NumMessages > 0 {
		return 0, errors.New("imapd expunged nothing in " + mailbox)
	}
	return len(ex), nil
}
