package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"postern/pkg/audit"
	"postern/pkg/auth"
	"postern/pkg/clientconfig"
	"postern/pkg/config"
	"postern/pkg/control"
	"postern/pkg/ipc"
	"postern/pkg/mtasts"
	"postern/pkg/stats"
)

// The admin panel and the account page call the control sockets of authd and qmgr, the
// operations mailctl uses, so that the two never disagree; every change names the web
// user and the browser's address (control.Origin) for the daemons' audit logs.

// controlTimeout bounds one call to a control socket.
const controlTimeout = 30 * time.Second

// control makes one request to a daemon's control socket.
func (s *Server) control(ctx context.Context, daemon, op string, req, resp any) error {
	cl := ipc.NewClient(s.cfg.ControlSocket(daemon))
	cl.Timeout = controlTimeout
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	_, err := cl.Call(ctx, op, req, resp)
	return err
}

// origin names the web user and the browser in a change request.
func origin(r *http.Request, sess *session) control.Origin {
	return control.Origin{Actor: sess.user, RemoteIP: clientIP(r)}
}

// adminRoutes adds the admin panel and the account page.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.Handle("GET /admin", s.admin(s.adminPage))
	mux.Handle("GET /admin/queue", s.admin(s.queuePage))
	mux.Handle("GET /admin/dkim", s.admin(s.dkimPage))
	mux.Handle("POST /admin/do", s.admin(s.adminDo))
	mux.Handle("GET /account", s.authed(s.accountPage))
	mux.Handle("POST /account/password", s.authed(s.accountPassword))
	mux.Handle("POST /account/apppassword", s.authed(s.accountAppPassword))
	mux.Handle("POST /account/images", s.authed(s.accountImages))
	mux.Handle("POST /account/vacation", s.authed(s.accountVacation))
	mux.Handle("GET /account/export", s.authed(s.accountExport))
	mux.Handle("POST /account/delete", s.authed(s.accountDelete))
	mux.Handle("GET /account/mobileconfig", s.authed(func(w http.ResponseWriter, r *http.Request, sess *session) {
		clientconfig.ServeMobileConfig(w, clientconfig.FromConfig(s.cfg), sess.user, "")
	}))
}

// publicRoutes adds what httpd serves without a session: the MTA-STS policy of each
// domain (RFC 8461 §3.2) and the mail clients' autoconfiguration.
func (s *Server) publicRoutes(mux *http.ServeMux) {
	known := s.auth.LocalDomain
	sts := &mtasts.Handler{MX: s.cfg.Hostname, Known: known, Log: s.log}
	mux.Handle("GET "+mtasts.PolicyPath, sts)
	cc := &clientconfig.Handler{Settings: clientconfig.FromConfig(s.cfg), Known: known, Log: s.log}
	mux.Handle("GET "+clientconfig.AutoconfigPath, cc)
	mux.Handle("GET "+clientconfig.WellKnownAutoconfigPath, cc)
	// Clients spell the path in both cases.
	mux.Handle("POST "+clientconfig.AutodiscoverPath, cc)
	mux.Handle("POST /Autodiscover/Autodiscover.xml", cc)
}

// admin wraps h for administrators: a logged-in user whom authd calls an admin (asked
// at every request, so that taking the flag away takes effect at once); others get 403.
func (s *Server) admin(h authedHandler) http.Handler {
	return s.authed(func(w http.ResponseWriter, r *http.Request, sess *session) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		acct, err := s.auth.Account(ctx, sess.user)
		if err != nil {
			s.log.Error("asking authd whether a user is an admin", "user", sess.user, "err", err)
			http.Error(w, "the account service is unavailable", http.StatusServiceUnavailable)
			return
		}
		if !acct.Admin || acct.Disabled {
			s.log.Warn("admin page refused: not an administrator", "user", sess.user, "path", r.URL.Path, "client", clientIP(r))
			http.Error(w, "forbidden: administrators only", http.StatusForbidden)
			return
		}
		h(w, r, sess)
	})
}

// adminData fills templates/admin.html.
type adminData struct {
	User, CSRF, Notice, Error string
	Domains                   []control.Domain
	Users                     []control.User
	Aliases                   []control.Alias
	Queue                     []control.QueueEntry
	Charts                    []chart
	Totals                    []stats.Counts
	Audit                     []audit.Entry
	// Problems are the parts of the page that could not be filled (a daemon down).
	Problems []string
}

func (s *Server) adminPage(w http.ResponseWriter, r *http.Request, sess *session) {
	d := adminData{User: sess.user, CSRF: sess.csrf, Notice: r.URL.Query().Get("notice"), Error: r.URL.Query().Get("error")}
	ctx := r.Context()
	ask := func(daemon, op string, req, resp any) {
		if err := s.control(ctx, daemon, op, req, resp); err != nil {
			d.Problems = append(d.Problems, fmt.Sprintf("%s %s: %v", daemon, op, err))
		}
	}
	var dl control.DomainListResult
	ask("authd", control.DomainList, nil, &dl)
	d.Domains = dl.Domains
	var ul control.UserListResult
	ask("authd", control.UserList, control.ListRequest{}, &ul)
	d.Users = ul.Users
	var al control.AliasListResult
	ask("authd", control.AliasList, control.ListRequest{}, &al)
	d.Aliases = al.Aliases
	var ql control.QueueListResult
	ask("qmgr", control.QueueList, nil, &ql)
	d.Queue = ql.Messages
	var st control.StatsResult
	ask("qmgr", control.Stats, control.StatsRequest{Hours: stats.HourKeep, Days: 30}, &st)
	if len(st.Hours) > 0 {
		d.Charts = append(d.Charts, newChart("Last 48 hours, per hour", st.Hours, "15h"))
		d.Charts = append(d.Charts, newChart("Last 30 days, per day", st.Days, "2 Jan"))
		d.Totals = []stats.Counts{stats.Sum(st.Hours), stats.Sum(st.Days)}
	}
	var aa, qa control.AuditResult
	ask("authd", control.AuditList, control.AuditRequest{Limit: 200}, &aa)
	ask("qmgr", control.AuditList, control.AuditRequest{Limit: 200}, &qa)
	d.Audit = audit.Merge(200, aa.Entries, qa.Entries)
	// Newest first on the page.
	sort.SliceStable(d.Audit, func(i, j int) bool { return d.Audit[i].Time.After(d.Audit[j].Time) })
	s.render(w, http.StatusOK, "admin.html", d)
}

// queuePage shows one queued message: envelope, recipients, header section.
func (s *Server) queuePage(w http.ResponseWriter, r *http.Request, sess *session) {
	var res control.QueueShowResult
	if err := s.control(r.Context(), "qmgr", control.QueueShow, control.IDsRequest{IDs: []string{strings.ToUpper(r.URL.Query().Get("id"))}}, &res); err != nil {
		status := http.StatusBadGateway
		if ipc.IsCode(err, "notfound") || ipc.IsCode(err, "invalid") {
			status = http.StatusNotFound
		}
		http.Error(w, "queue show: "+err.Error(), status)
		return
	}
	s.render(w, http.StatusOK, "queue.html", struct {
		User, CSRF string
		Show       control.QueueShowResult
	}{sess.user, sess.csrf, res})
}

// adminDo applies one change of the panel's forms, then goes back to the panel with a
// notice or an error.
func (s *Server) adminDo(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx, o := r.Context(), origin(r, sess)
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	op, addr := f("op"), f("address")
	var err error
	var notice string
	page := "/admin" // where to go back to
	switch op {
	case "domain.add":
		err = s.control(ctx, "authd", control.DomainAdd, control.DomainRequest{Origin: o, Name: f("name")}, nil)
		notice = "Domain " + f("name") + " added."
	case "domain.del":
		err = s.control(ctx, "authd", control.DomainDel, control.DomainRequest{Origin: o, Name: f("name"), Force: f("force") == "1"}, nil)
		notice = "Domain " + f("name") + " deleted."
	case "user.add", "user.quota":
		quota := int64(-1)
		if q := f("quota"); q != "" || op == "user.quota" {
			var sz config.Size
			if e := sz.UnmarshalTOML(orDefault(q, "0")); e != nil {
				err = fmt.Errorf("quota %q: %v", q, e)
				break
			}
			quota = int64(sz)
		}
		if op == "user.add" {
			err = s.control(ctx, "authd", control.UserAdd, control.UserRequest{Origin: o, Address: addr, Password: r.PostFormValue("password"), Quota: quota}, nil)
			notice = "Account " + addr + " created."
		} else {
			err = s.control(ctx, "authd", control.UserQuota, control.UserRequest{Origin: o, Address: addr, Quota: quota}, nil)
			notice = "Quota of " + addr + " set."
		}
	case "user.passwd":
		err = s.control(ctx, "authd", control.UserPasswd, control.UserRequest{Origin: o, Address: addr, Password: r.PostFormValue("password")}, nil)
		notice = "Password of " + addr + " reset."
	case "user.disable", "user.enable":
		err = s.control(ctx, "authd", control.UserDisable, control.UserDisableRequest{Origin: o, Address: addr, Disabled: op == "user.disable"}, nil)
		notice = "Account " + addr + map[bool]string{true: " disabled.", false: " enabled."}[op == "user.disable"]
	case "user.admin", "user.unadmin":
		if op == "user.unadmin" && strings.EqualFold(addr, sess.user) {
			err = errors.New("you cannot take your own administrator rights away here; use mailctl user admin --off")
			break
		}
		err = s.control(ctx, "authd", control.UserAdmin, control.UserAdminRequest{Origin: o, Address: addr, Admin: op == "user.admin"}, nil)
		notice = "Administrator rights of " + addr + " changed."
	case "user.del":
		err = s.control(ctx, "authd", control.UserDel, control.UserRequest{Origin: o, Address: addr}, nil)
		notice = "Account " + addr + " deleted (its mail stays on disk)."
	case "alias.add":
		targets := strings.FieldsFunc(f("targets"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
		err = s.control(ctx, "authd", control.AliasAdd, control.Alias{Origin: o, Address: addr, Targets: targets}, nil)
		notice = "Alias " + addr + " added."
	case "alias.del":
		err = s.control(ctx, "authd", control.AliasDel, control.Alias{Origin: o, Address: addr}, nil)
		notice = "Alias " + addr + " deleted."
	case control.DKIMGenerate:
		var k control.DKIMKey
		err = s.control(ctx, "authd", control.DKIMGenerate, control.DKIMRequest{Origin: o, Domain: f("domain"), Selector: f("selector"), Algorithm: f("algorithm")}, &k)
		notice = fmt.Sprintf("Key %s of %s created: publish its record; mail is signed with it from now on.", k.Selector, k.Domain)
		page = "/admin/dkim"
	case control.DKIMRemove:
		err = s.control(ctx, "authd", control.DKIMRemove, control.DKIMRequest{Origin: o, Domain: f("domain"), Selector: f("selector")}, nil)
		notice = fmt.Sprintf("Key %s of %s removed: mail is no longer signed with it.", f("selector"), f("domain"))
		page = "/admin/dkim"
	case control.QueueFlush, control.QueueHold, control.QueueRelease, control.QueueDelete:
		var ids []string
		for _, id := range r.PostForm["id"] {
			ids = append(ids, strings.ToUpper(strings.TrimSpace(id)))
		}
		if op != control.QueueFlush && len(ids) == 0 {
			err = errors.New("no message selected")
			break
		}
		var n control.CountResult
		err = s.control(ctx, "qmgr", op, control.IDsRequest{Origin: o, IDs: ids}, &n)
		notice = fmt.Sprintf("%s: %d messages.", op, n.Count)
	default:
		http.Error(w, "unknown operation", http.StatusBadRequest)
		return
	}
	q := url.Values{}
	if err != nil {
		q.Set("error", err.Error())
	} else {
		q.Set("notice", notice)
	}
	http.Redirect(w, r, page+"?"+q.Encode(), http.StatusSeeOther)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// --- the statistics, drawn as inline SVG ---

// series are the counts drawn, with their colours.
var series = []struct {
	kind  stats.Kind
	color string
}{
	{stats.Received, "#0b57d0"}, {stats.Delivered, "#188038"}, {stats.Deferred, "#e37400"},
	{stats.Bounced, "#c5221f"}, {stats.Rejected, "#7627bb"}, {stats.Junk, "#5f6368"},
}

// chart is one statistics chart: a polyline per kind over the periods.
type chart struct {
	Title  string
	Width  int
	Height int
	Max    int64
	Lines  []chartLine
	Labels []chartLabel
}

type chartLine struct {
	Name, Color string
	Points      string // SVG polyline points
	Total       int64
}

type chartLabel struct {
	X    int
	Text string
}

// newChart lays out periods (oldest first) in a 600×200 plot, labelling every few.
func newChart(title string, ps []stats.Period, layout string) chart {
	const w, h, left, bottom = 600, 200, 40, 20
	c := chart{Title: title, Width: w + left, Height: h + bottom}
	for _, p := range ps {
		for _, s := range series {
			c.Max = max(c.Max, p.Counts.Get(s.kind))
		}
	}
	scale := float64(h-10) / float64(max(c.Max, 1))
	step := float64(w) / float64(max(len(ps)-1, 1))
	for _, s := range series {
		var pts []string
		var total int64
		for i, p := range ps {
			v := p.Counts.Get(s.kind)
			total += v
			pts = append(pts, fmt.Sprintf("%d,%d", left+int(float64(i)*step), h-int(float64(v)*scale)))
		}
		c.Lines = append(c.Lines, chartLine{Name: stats.Names[s.kind], Color: s.color, Points: strings.Join(pts, " "), Total: total})
	}
	every := max(len(ps)/8, 1)
	for i := 0; i < len(ps); i += every {
		c.Labels = append(c.Labels, chartLabel{X: left + int(float64(i)*step), Text: ps[i].Start.Local().Format(layout)})
	}
	return c
}

// --- the account page ---

// accountData fills templates/account.html.
type accountData struct {
	User, CSRF, Notice, Error string
	AppPasswords              []control.AppPassword
	// NewAppPassword is the app password just made, shown this once.
	NewAppPassword *control.AppPassword
	Admin          bool
	// ImageSenders are the senders whose remote images the user allowed.
	ImageSenders []string
	// Vacation is the out-of-office reply (sieve.go).
	Vacation vacationState
}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.renderAccount(w, r, sess, accountData{Notice: r.URL.Query().Get("notice"), Error: r.URL.Query().Get("error")}, http.StatusOK)
}

func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, sess *session, d accountData, status int) {
	d.User, d.CSRF = sess.user, sess.csrf
	var list control.AppPasswordListResult
	if err := s.control(r.Context(), "authd", control.AppPasswordList, control.AppPasswordRequest{Address: sess.user}, &list); err != nil {
		d.Error = strings.TrimSpace(d.Error + " App passwords: " + err.Error())
	}
	d.AppPasswords = list.AppPasswords
	if senders, err := s.imageSenders(r.Context(), sess, "", ""); err != nil {
		d.Error = strings.TrimSpace(d.Error + " Image senders: " + err.Error())
	} else {
		d.ImageSenders = senders
	}
	if acct, err := s.auth.Account(r.Context(), sess.user); err == nil {
		d.Admin = acct.Admin
	}
	d.Vacation = s.loadVacation(r.Context(), sess)
	s.render(w, status, "account.html", d)
}

// maxPassword is the longest password the account page takes, in octets.
const maxPassword = 1024

// checkPassword asks authd, with its throttling, whether password is the session
// user's own password (an app password is not enough to change the account): status 0
// when it is, else the HTTP status and the message to show, wrong's when it is wrong.
// A password over maxPassword octets is refused before authd is asked.
func (s *Server) checkPassword(r *http.Request, sess *session, password, wrong string) (status int, msg string) {
	if len(password) > maxPassword {
		return http.StatusBadRequest, "The password is too long."
	}
	v, err := s.auth.Verify(r.Context(), auth.VerifyRequest{User: sess.user, Password: password, RemoteAddr: clientIP(r)})
	switch {
	case err != nil:
		return http.StatusServiceUnavailable, "The account service is unavailable; try again later."
	case v.Throttled:
		return http.StatusTooManyRequests, "Too many failed attempts; try again later."
	case !v.OK || v.AppPassword != "":
		return http.StatusForbidden, wrong
	}
	return 0, ""
}

// accountPassword changes the user's password: the current one is checked by authd
// (with its throttling) first.
func (s *Server) accountPassword(w http.ResponseWriter, r *http.Request, sess *session) {
	cur, pw, again := r.PostFormValue("current"), r.PostFormValue("password"), r.PostFormValue("again")
	fail := func(status int, msg string) { s.renderAccount(w, r, sess, accountData{Error: msg}, status) }
	switch {
	case pw == "" || pw != again:
		fail(http.StatusBadRequest, "The new password is empty, or its two copies differ.")
		return
	case len(pw) > maxPassword:
		fail(http.StatusBadRequest, "The password is too long.")
		return
	}
	if status, msg := s.checkPassword(r, sess, cur, "The current password is wrong."); status != 0 {
		fail(status, msg)
		return
	}
	if err := s.control(r.Context(), "authd", control.UserPasswd, control.UserRequest{Origin: origin(r, sess), Address: sess.user, Password: pw}, nil); err != nil {
		fail(http.StatusBadRequest, "The password was not changed: "+err.Error())
		return
	}
	s.log.Info("password changed on the account page", "user", sess.user, "client", clientIP(r))
	http.Redirect(w, r, "/account?notice="+url.QueryEscape("Your password is changed."), http.StatusSeeOther)
}

// accountAppPassword makes (op=add, name) or revokes (op=revoke, name) one of the user's
// app passwords. A new one is shown on the page this once.
func (s *Server) accountAppPassword(w http.ResponseWriter, r *http.Request, sess *session) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	req := control.AppPasswordRequest{Origin: origin(r, sess), Address: sess.user, Name: name}
	switch r.PostFormValue("op") {
	case "add":
		var ap control.AppPassword
		if err := s.control(r.Context(), "authd", control.AppPasswordAdd, req, &ap); err != nil {
			s.renderAccount(w, r, sess, accountData{Error: "No app password made: " + err.Error()}, http.StatusBadRequest)
			return
		}
		// Rendered, not redirected: the password is in no URL and no later page.
		s.renderAccount(w, r, sess, accountData{NewAppPassword: &ap}, http.StatusOK)
	case "revoke":
		if err := s.control(r.Context(), "authd", control.AppPasswordRevoke, req, nil); err != nil {
			s.renderAccount(w, r, sess, accountData{Error: "Not revoked: " + err.Error()}, http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "/account?notice="+url.QueryEscape("App password “"+name+"” revoked."), http.StatusSeeOther)
	default:
		http.Error(w, "unknown operation", http.StatusBadRequest)
	}
}
