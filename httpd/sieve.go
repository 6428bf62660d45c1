package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"postern/pkg/auth"
	"postern/pkg/sieve"
)

// The out-of-office reply of the account page is a Sieve vacation rule (RFC 5230) in the
// user's active script, which httpd changes the way a user's own Sieve editor does:
// over ManageSieve (RFC 5804) with sieved, logged in as the user with the session's web
// token (auth.WebMechanism, which sieved takes from httpd's user only, as imapd does).
// httpd writes no file; sieved checks and stores the script. The rule is a marked block
// of the active script (sieve.SetManagedVacation), so the user's own filters, made with
// any client, stay as they are; a user without an active script gets one of the page's
// own, named managedScript.

// managedScript is the name of the script the page makes for a user who has no active
// one.
const managedScript = "postern-vacation"

// Limits of the form.
const (
	maxVacationSubject = 200
	maxVacationMessage = 8 << 10
	sieveTimeout       = 20 * time.Second
	maxSieveLiteral    = 1 << 20
)

// errNoSieve is the error when sieved is not configured to be reached from here.
var errNoSieve = errors.New("the Sieve service (sieved) is not running here")

// sieveClient is a ManageSieve session with sieved.
type sieveClient struct {
	conn net.Conn
	r    *bufio.Reader
}

// sieveNo is a NO or BYE answer of sieved, with its text.
type sieveNo struct{ text string }

func (e *sieveNo) Error() string { return e.text }

// dialSieve logs in to sieved as the session's user.
func (s *Server) dialSieve(ctx context.Context, sess *session) (*sieveClient, error) {
	if s.sieveAddr == "" {
		return nil, errNoSieve
	}
	d := net.Dialer{Timeout: sieveTimeout}
	conn, err := d.DialContext(ctx, "tcp", s.sieveAddr) // loopback, see localAddr
	if err != nil {
		return nil, fmt.Errorf("connecting to sieved at %s: %w", s.sieveAddr, err)
	}
	conn.SetDeadline(time.Now().Add(sieveTimeout))
	c := &sieveClient{conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.response(); err != nil { // the greeting: capabilities and OK
		conn.Close()
		return nil, fmt.Errorf("sieved's greeting: %w", err)
	}
	resp := base64.StdEncoding.EncodeToString(auth.WebResponse(sess.user, sess.token))
	if _, err := c.cmd("AUTHENTICATE", auth.WebMechanism, resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("logging in to sieved: %w", err)
	}
	return c, nil
}

// Close logs out.
func (c *sieveClient) Close() {
	c.cmd("LOGOUT")
	c.conn.Close()
}

// cmd sends a command whose arguments go as non-synchronizing literals (RFC 5804 §4),
// which hold any text, and reads its response: the lines before OK.
func (c *sieveClient) cmd(name string, args ...string) ([][]string, error) {
	var b strings.Builder
	b.WriteString(name)
	for _, a := range args {
		fmt.Fprintf(&b, " {%d+}\r\n%s", len(a), a)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return nil, err
	}
	return c.response()
}

// response reads lines up to OK (nil error), NO or BYE (a *sieveNo).
func (c *sieveClient) response() ([][]string, error) {
	var lines [][]string
	for len(lines) < 10000 {
		l, err := c.line()
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			switch strings.ToUpper(l[0]) {
			case "OK":
				return lines, nil
			case "NO", "BYE":
				return nil, &sieveNo{text: l[len(l)-1]}
			}
		}
		lines = append(lines, l)
	}
	return nil, errors.New("sieved's response is too long")
}

// line reads one line of a response as its words: atoms, quoted strings and literals
// (RFC 5804 §4), a response code in parentheses as one word.
func (c *sieveClient) line() ([]string, error) {
	var words []string
	for {
		ch, err := c.r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch {
		case ch == '\n':
			return words, nil
		case ch == '\r' || ch == ' ':
		case ch == '"':
			var w strings.Builder
			for {
				ch, err := c.r.ReadByte()
				if err != nil {
					return nil, err
				}
				if ch == '"' {
					break
				}
				if ch == '\\' {
					if ch, err = c.r.ReadByte(); err != nil {
						return nil, err
					}
				}
				if w.Len() > maxSieveLiteral {
					return nil, errors.New("sieved's string is too long")
				}
				w.WriteByte(ch)
			}
			words = append(words, w.String())
		case ch == '{':
			spec, err := c.r.ReadString('}')
			if err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSuffix(spec, "}"), "+"))
			if err != nil || n < 0 || n > maxSieveLiteral {
				return nil, fmt.Errorf("sieved sent a bad literal {%s", spec)
			}
			if crlf, err := c.r.ReadString('\n'); err != nil || strings.TrimSpace(crlf) != "" {
				return nil, errors.New("sieved sent a literal without its line end")
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				return nil, err
			}
			words = append(words, string(buf))
		case ch == '(':
			code, err := c.r.ReadString(')')
			if err != nil {
				return nil, err
			}
			words = append(words, "("+code)
		default:
			var w strings.Builder
			w.WriteByte(ch)
			for {
				next, err := c.r.Peek(1)
				if err != nil || next[0] == ' ' || next[0] == '\r' || next[0] == '\n' {
					break
				}
				c.r.ReadByte()
				w.WriteByte(next[0])
				if w.Len() > 1024 {
					return nil, errors.New("sieved's atom is too long")
				}
			}
			words = append(words, w.String())
		}
	}
}

// active returns the name and text of the user's active script; "" when there is none.
func (c *sieveClient) active() (string, []byte, error) {
	lines, err := c.cmd("LISTSCRIPTS")
	if err != nil {
		return "", nil, fmt.Errorf("listing the scripts: %w", err)
	}
	for _, l := range lines {
		if len(l) == 2 && strings.EqualFold(l[1], "ACTIVE") {
			got, err := c.cmd("GETSCRIPT", l[0])
			if err != nil {
				return "", nil, fmt.Errorf("reading the script %q: %w", l[0], err)
			}
			if len(got) != 1 || len(got[0]) != 1 {
				return "", nil, fmt.Errorf("reading the script %q: unexpected answer", l[0])
			}
			return l[0], []byte(got[0][0]), nil
		}
	}
	return "", nil, nil
}

// vacationState is the out-of-office reply shown on the account page.
type vacationState struct {
	On bool
	sieve.ManagedVacation
	// Unavailable says why the reply cannot be shown or changed now; Disabled that this
	// host runs no sieved.
	Unavailable string
	Disabled    bool
	// Zone is the time zone of this host's clock now, in which local, running the
	// script, tells the day (sieve.ManagedVacation's First and Last).
	Zone string
}

// loadVacation reads the user's reply from the active script.
func (s *Server) loadVacation(ctx context.Context, sess *session) vacationState {
	st := vacationState{ManagedVacation: sieve.ManagedVacation{Days: 7}, Zone: time.Now().Format("MST, UTC-07:00")}
	ctx, cancel := context.WithTimeout(ctx, sieveTimeout)
	defer cancel()
	c, err := s.dialSieve(ctx, sess)
	if errors.Is(err, errNoSieve) {
		st.Disabled = true
		return st
	}
	if err != nil {
		s.log.Warn("out-of-office reply unavailable", "user", sess.user, "err", err)
		st.Unavailable = "The out-of-office reply cannot be read now; try again later."
		return st
	}
	defer c.Close()
	_, text, err := c.active()
	if err != nil {
		s.log.Warn("out-of-office reply unavailable", "user", sess.user, "err", err)
		st.Unavailable = "The out-of-office reply cannot be read now; try again later."
		return st
	}
	if v, ok := sieve.GetManagedVacation(text); ok {
		st.On, st.ManagedVacation = true, v
	}
	return st
}

// accountVacation sets (op=set, with subject, message, days and optional first and
// last days) or clears (op=clear) the user's out-of-office reply.
func (s *Server) accountVacation(w http.ResponseWriter, r *http.Request, sess *session) {
	fail := func(status int, msg string) { s.renderAccount(w, r, sess, accountData{Error: msg}, status) }
	var v *sieve.ManagedVacation
	switch r.PostFormValue("op") {
	case "set":
		days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("days")))
		if err != nil || days < sieve.MinVacationDays || days > sieve.MaxVacationDays {
			fail(http.StatusBadRequest, fmt.Sprintf("Answer each sender once every %d to %d days.", sieve.MinVacationDays, sieve.MaxVacationDays))
			return
		}
		v = &sieve.ManagedVacation{Subject: strings.TrimSpace(r.PostFormValue("subject")), Message: r.PostFormValue("message"), Days: days,
			First: strings.TrimSpace(r.PostFormValue("first")), Last: strings.TrimSpace(r.PostFormValue("last"))}
		if err := sieve.CheckVacationDates(v.First, v.Last); err != nil {
			fail(http.StatusBadRequest, "Check the first and last days of the reply: "+err.Error()+".")
			return
		}
		switch {
		case strings.TrimSpace(v.Message) == "":
			fail(http.StatusBadRequest, "The out-of-office reply needs a message.")
			return
		case len(v.Message) > maxVacationMessage || len(v.Subject) > maxVacationSubject:
			fail(http.StatusBadRequest, "The subject or the message is too long.")
			return
		}
	case "clear":
	default:
		http.Error(w, "unknown operation", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), sieveTimeout)
	defer cancel()
	c, err := s.dialSieve(ctx, sess)
	if err != nil {
		s.log.Warn("out-of-office reply not changed", "user", sess.user, "err", err)
		fail(http.StatusServiceUnavailable, "The out-of-office reply cannot be changed now; try again later.")
		return
	}
	defer c.Close()
	name, text, err := c.active()
	if err != nil {
		s.log.Warn("out-of-office reply not changed", "user", sess.user, "err", err)
		fail(http.StatusServiceUnavailable, "The out-of-office reply cannot be changed now; try again later.")
		return
	}
	notice := "Your out-of-office reply is off."
	if v != nil {
		notice = "Your out-of-office reply is on."
	}
	if v == nil && name == "" {
		http.Redirect(w, r, "/account?notice="+url.QueryEscape(notice)+"#vacation", http.StatusSeeOther)
		return
	}
	out, err := sieve.SetManagedVacation(text, v)
	if errors.Is(err, sieve.ErrOwnVacation) {
		fail(http.StatusConflict, "Your own Sieve filters have a vacation rule already; change it in your Sieve editor, or remove it there first.")
		return
	}
	if err != nil {
		fail(http.StatusConflict, "Your active Sieve script cannot take the reply: "+err.Error())
		return
	}
	newScript := name == ""
	if newScript {
		name = managedScript
	}
	if _, err := c.cmd("PUTSCRIPT", name, string(out)); err != nil {
		s.log.Warn("out-of-office reply not stored", "user", sess.user, "script", name, "err", err)
		fail(http.StatusBadRequest, "The out-of-office reply was not stored: "+err.Error())
		return
	}
	if newScript {
		if _, err := c.cmd("SETACTIVE", name); err != nil {
			s.log.Warn("out-of-office reply not activated", "user", sess.user, "script", name, "err", err)
			fail(http.StatusBadRequest, "The out-of-office reply was not turned on: "+err.Error())
			return
		}
	}
	s.log.Info("out-of-office reply changed on the account page", "user", sess.user, "on", v != nil, "script", name)
	http.Redirect(w, r, "/account?notice="+url.QueryEscape(notice)+"#vacation", http.StatusSeeOther)
}
