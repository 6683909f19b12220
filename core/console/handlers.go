package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// maxForm bounds a form body (the configuration editor's is the largest: one file).
const maxForm = 2 << 20

// page is what every template gets.
type page struct {
	L       map[string]string
	Lang    string
	Path    string
	Active  string
	Title   string
	S       *session
	CSRF    string
	Nav     []navItem
	Flash   string
	Error   string
	Domain  string
	Version string
	OIDC    bool
	Data    any
}

type navItem struct {
	Path, Key, Title string
}

var funcs = template.FuncMap{
	"since": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"days": func(t time.Time) int { return int(time.Until(t).Hours() / 24) },
	"expired": func(t time.Time) bool {
		return time.Now().After(t)
	},
	"ms": func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + " ms" },
	"op": func(b byte) string { return string(b) },
	// dict passes the labels and a certificate chain to the "chain" template.
	"dict": func(l map[string]string, certs []protocol.CertInfo) map[string]any {
		return map[string]any{"L": l, "Certs": certs}
	},
	"lastID": func(es []AuditEntry) int64 {
		if len(es) < 100 {
			return 0
		}
		return es[len(es)-1].ID
	},
	"join": strings.Join,
	"members": func(m map[event.Domain]int) string {
		keys := make([]string, 0, len(m))
		for d := range m {
			keys = append(keys, string(d))
		}
		slices.Sort(keys)
		var b strings.Builder
		for i, d := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s: %d", d, m[event.Domain(d)])
		}
		return b.String()
	},
}

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(assetFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.loginLocal)
	m.HandleFunc("GET /oidc/login", c.oidcStart)
	m.HandleFunc("GET "+CallbackPath, c.oidcCallback)
	m.HandleFunc("POST /logout", c.auth(RoleViewer, c.logout))
	m.HandleFunc("GET /{$}", c.auth(RoleViewer, c.overview))
	if c.cfg.Backend.Partners != nil {
		m.HandleFunc("GET /partners", c.auth(RoleViewer, c.partnersPage))
		m.HandleFunc("POST /partners/check", c.auth(RoleViewer, c.partnersCheck))
	}
	if c.cfg.Backend.Rooms != nil {
		m.HandleFunc("GET /rooms", c.auth(RoleViewer, c.roomsPage))
		m.HandleFunc("GET /keypackages", c.auth(RoleViewer, c.keyPackagesPage))
	}
	if c.cfg.Backend.DeadLetters != nil {
		m.HandleFunc("GET /deadletters", c.auth(RoleViewer, c.deadLettersPage))
		m.HandleFunc("GET /deadletters/{seq}", c.auth(RoleViewer, c.deadLetterPage))
		m.HandleFunc("POST /deadletters/{seq}/replay", c.auth(RoleOperator, c.deadLetterAction))
		m.HandleFunc("POST /deadletters/{seq}/discard", c.auth(RoleOperator, c.deadLetterAction))
	}
	if c.cfg.Backend.Config != nil {
		m.HandleFunc("GET /config", c.auth(RoleViewer, c.configPage))
		m.HandleFunc("POST /config/check", c.auth(RoleOperator, c.configCheck))
		m.HandleFunc("POST /config/apply", c.auth(RoleOperator, c.configApply))
		m.HandleFunc("POST /config/rollback", c.auth(RoleOperator, c.configRollback))
	}
	m.HandleFunc("GET /audit", c.auth(RoleViewer, c.auditPage))
	m.HandleFunc("GET /s/{name}", c.auth(RoleViewer, c.sectionPage))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "message", nil, page{Error: messages[language(w, r)]["notfound"]})
	})
	c.mux = m
	c.api = c.apiRoutes()
}

type handler func(w http.ResponseWriter, r *http.Request, s *session)

// auth admits requests with a valid session whose role is at least min; a POST also needs the
// session's CSRF token. Anything else is redirected to sign-in or refused.
func (c *Console) auth(min Role, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.sessionOf(r)
		if s == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.met.refused.WithLabelValues("session").Inc()
			c.render(w, r, http.StatusUnauthorized, "message", nil, page{Error: messages[language(w, r)]["csrf"]})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil || !equalToken(r.PostForm.Get("csrf"), s.CSRF) {
				c.met.refused.WithLabelValues("csrf").Inc()
				c.audit(r.Context(), s.Actor(), "refused.csrf", r.URL.Path, "no valid CSRF token", "", "")
				c.render(w, r, http.StatusForbidden, "message", s, page{Error: messages[language(w, r)]["csrf"]})
				return
			}
		}
		if min == RoleOperator && s.Role != RoleOperator {
			c.met.refused.WithLabelValues("role").Inc()
			c.audit(r.Context(), s.Actor(), "refused.role", r.URL.Path, "role "+string(s.Role), "", "")
			c.render(w, r, http.StatusForbidden, "message", s, page{Error: messages[language(w, r)]["forbidden"]})
			return
		}
		h(w, r, s)
	}
}

// render executes a page template. A template error is logged and answered with 500; the
// output is buffered so that a failure never sends half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, p page) {
	lang := language(w, r)
	p.L, p.Lang, p.Path, p.S = messages[lang], lang, r.URL.Path, s
	p.Domain, p.Version, p.OIDC = c.cfg.Backend.Domain, c.cfg.Backend.Version, c.oidc != nil
	if s != nil {
		p.CSRF = s.CSRF
		p.Nav = c.nav(lang)
	}
	if p.Title == "" {
		p.Title = p.L[name]
	}
	if p.Active == "" {
		p.Active = name
	}
	t, ok := c.pages[name]
	if !ok {
		c.log.Error("console: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console: rendering", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) nav(lang string) []navItem {
	L := messages[lang]
	b := c.cfg.Backend
	items := []navItem{{"/", "overview", L["overview"]}}
	if b.Partners != nil {
		items = append(items, navItem{"/partners", "partners", L["partners"]})
	}
	if b.Rooms != nil {
		items = append(items, navItem{"/rooms", "rooms", L["rooms"]}, navItem{"/keypackages", "keypackages", L["keypackages"]})
	}
	if b.DeadLetters != nil {
		items = append(items, navItem{"/deadletters", "deadletters", L["deadletters"]})
	}
	if b.Config != nil {
		items = append(items, navItem{"/config", "config", L["config"]})
	}
	for _, s := range b.Sections {
		t := s.Title[lang]
		if t == "" {
			t = s.Title["en"]
		}
		items = append(items, navItem{"/s/" + s.Path, "s:" + s.Path, t})
	}
	return append(items, navItem{"/audit", "audit", L["audit"]})
}

// Sign-in and sign-out.

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if s := c.sessionOf(r); s != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", nil, page{CSRF: preToken(w, r), Data: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) loginLocal(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	L := messages[language(w, r)]
	pre := preToken(w, r)
	if err := r.ParseForm(); err != nil || !equalToken(r.PostForm.Get("csrf"), pre) {
		c.met.refused.WithLabelValues("csrf").Inc()
		c.render(w, r, http.StatusForbidden, "login", nil, page{CSRF: pre, Error: L["csrf"]})
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("username"))
	next := safeNext(r.PostForm.Get("next"))
	keys := []string{"user:" + strings.ToLower(name), "ip:" + clientIP(r)}
	if wait := c.limiter.blocked(keys...); wait > 0 {
		c.met.logins.WithLabelValues("local", "throttled").Inc()
		c.audit(r.Context(), "local:"+clip(name, 64), "login.throttled", "", "from "+clientIP(r), "", "")
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		c.render(w, r, http.StatusTooManyRequests, "login", nil,
			page{CSRF: pre, Data: next, Error: fmt.Sprintf("%s %d s.", L["login_throttled"], int(wait.Seconds())+1)})
		return
	}
	role, ok, err := c.verifyLocal(r.Context(), name, r.PostForm.Get("password"))
	if err != nil {
		c.log.Error("console: local sign-in", "err", err)
	}
	if !ok {
		c.limiter.fail(keys...)
		c.met.logins.WithLabelValues("local", "failed").Inc()
		c.audit(r.Context(), "local:"+clip(name, 64), "login.failed", "", "from "+clientIP(r), "", "")
		c.render(w, r, http.StatusUnauthorized, "login", nil, page{CSRF: pre, Data: next, Error: L["login_failed"]})
		return
	}
	c.limiter.reset(keys[0])
	if _, err := c.newSession(r.Context(), w, r, name, "local", role); err != nil {
		c.log.Error("console: session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c.met.logins.WithLabelValues("local", "ok").Inc()
	c.audit(r.Context(), "local:"+name, "login", "", "role "+string(role), "", "")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// safeNext keeps a post-sign-in target on this console (a path, never another host).
func safeNext(n string) string {
	if n == "" || !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.HasPrefix(n, "/\\") || len(n) > 512 {
		return "/"
	}
	return n
}

func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		http.NotFound(w, r)
		return
	}
	http.Redirect(w, r, c.oidc.start(w, c.cfg.Now()), http.StatusSeeOther)
}

func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if c.oidc == nil {
		http.NotFound(w, r)
		return
	}
	L := messages[language(w, r)]
	id, err := c.oidc.finish(r.Context(), r, c.cfg.Now())
	// The binding cookie is used once.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: CallbackPath, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if err != nil {
		outcome := "failed"
		msg := L["login_error"] + " " + err.Error()
		if errors.Is(err, errNoGroup) {
			outcome, msg = "no_group", L["login_group"]
		}
		c.met.logins.WithLabelValues("oidc", outcome).Inc()
		c.audit(r.Context(), "oidc:"+id.subject, "login."+outcome, "", clip(err.Error(), 256), "", "")
		c.render(w, r, http.StatusForbidden, "login", nil, page{CSRF: preToken(w, r), Data: "/", Error: msg})
		return
	}
	if _, err := c.newSession(r.Context(), w, r, id.subject, "oidc", id.role); err != nil {
		c.log.Error("console: session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c.met.logins.WithLabelValues("oidc", "ok").Inc()
	c.audit(r.Context(), "oidc:"+id.subject, "login", "", "role "+string(id.role), "", "")
	// A page of our own continues to the overview: a redirect chain that began at the identity
	// provider would count as cross-site, and the new SameSite=Strict cookie would not be sent.
	c.render(w, r, http.StatusOK, "continue", nil, page{Data: "/"})
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	c.endSession(w, r, s)
	c.audit(r.Context(), s.Actor(), "logout", "", "", "", "")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// Views.

type overviewData struct {
	Ready     bool
	State     string
	Checks    []checkRow
	Rates     []rateRow
	DLQ       int64
	Backlog   int
	Partners  []PartnerInfo
	RatesNote bool
}

type checkRow struct {
	Name, Error string
	OK          bool
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	d := overviewData{DLQ: -1, Backlog: -1}
	if h := c.cfg.Backend.Health; h != nil {
		rd := h.Check(ctx)
		d.Ready, d.State = rd.Ready, rd.State
		for _, ch := range rd.Checks {
			d.Checks = append(d.Checks, checkRow{Name: ch.Name, OK: ch.OK, Error: ch.Error})
		}
	}
	if p := c.cfg.Backend.Partners; p != nil {
		d.Partners = p.Partners(ctx)
	}
	if dl := c.cfg.Backend.DeadLetters; dl != nil {
		if n, err := dl.DeadLetterCount(ctx); err == nil {
			d.DLQ = int64(n)
		}
	}
	if rs := c.cfg.Backend.Rooms; rs != nil {
		if bl, err := rs.Backlog(ctx); err == nil {
			d.Backlog = 0
			for _, b := range bl {
				d.Backlog += b.Pending
			}
		}
	}
	if c.rates != nil {
		d.Rates = c.rates.current()
		d.RatesNote = len(d.Rates) == 0
	}
	c.render(w, r, http.StatusOK, "overview", s, page{Data: d})
}

type partnerRow struct {
	PartnerInfo
	Check *protocol.CheckResult
}

type partnersData struct {
	Own      []protocol.CertInfo
	Partners []partnerRow
}

func (c *Console) partnersPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderPartners(w, r, s, "", "")
}

func (c *Console) renderPartners(w http.ResponseWriter, r *http.Request, s *session, flash, errMsg string) {
	p := c.cfg.Backend.Partners
	d := partnersData{Own: p.Own()}
	c.mu.Lock()
	checks := make(map[event.Domain]protocol.CheckResult, len(c.checks))
	for k, v := range c.checks {
		checks[k] = v
	}
	c.mu.Unlock()
	for _, pi := range p.Partners(r.Context()) {
		row := partnerRow{PartnerInfo: pi}
		if ch, ok := checks[pi.Domain]; ok {
			row.Check = &ch
		}
		d.Partners = append(d.Partners, row)
	}
	c.render(w, r, http.StatusOK, "partners", s, page{Data: d, Flash: flash, Error: errMsg})
}

func (c *Console) partnersCheck(w http.ResponseWriter, r *http.Request, s *session) {
	dom := event.Domain(r.PostForm.Get("domain"))
	res := c.checkPartner(r.Context(), dom, s.Actor())
	flash, errMsg := "", ""
	if res.OK() {
		flash = string(res.Domain) + ": " + messages[language(w, r)]["ok"]
	} else {
		errMsg = string(res.Domain) + ": " + res.Error
	}
	c.renderPartners(w, r, s, flash, errMsg)
}

// checkPartner runs a partner check, remembers and audits it.
func (c *Console) checkPartner(ctx context.Context, d event.Domain, actor string) protocol.CheckResult {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res := c.cfg.Backend.Partners.Check(ctx, d)
	known := false
	for _, p := range c.cfg.Backend.Partners.Partners(ctx) {
		known = known || p.Domain == res.Domain
	}
	if known {
		c.mu.Lock()
		c.checks[res.Domain] = res
		c.mu.Unlock()
	}
	outcome := "ok"
	if !res.OK() {
		outcome = clip(res.Error, 256)
	}
	c.met.actions.WithLabelValues("partner_check").Inc()
	c.audit(ctx, actor, "partner.check", string(d), outcome, "", "")
	return res
}

type roomsData struct {
	Rooms   any
	Backlog []protocol.Backlog
	Err     string
}

func (c *Console) roomsPage(w http.ResponseWriter, r *http.Request, s *session) {
	rs := c.cfg.Backend.Rooms
	var d roomsData
	rooms, err := rs.Rooms(r.Context())
	if err != nil {
		d.Err = err.Error()
	}
	d.Rooms = rooms
	if d.Backlog, err = rs.Backlog(r.Context()); err != nil {
		d.Err = err.Error()
	}
	c.render(w, r, http.StatusOK, "rooms", s, page{Data: d, Error: d.Err})
}

func (c *Console) keyPackagesPage(w http.ResponseWriter, r *http.Request, s *session) {
	stock, err := c.cfg.Backend.Rooms.KeyPackages(r.Context())
	p := page{Data: stock}
	if err != nil {
		p.Error = err.Error()
	}
	c.render(w, r, http.StatusOK, "keypackages", s, p)
}

const deadLetterPage = 100

type deadLettersData struct {
	Items []bus.DeadLetter
	Next  uint64
}

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderDeadLetters(w, r, s, "", "")
}

func (c *Console) renderDeadLetters(w http.ResponseWriter, r *http.Request, s *session, flash, errMsg string) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	items, err := c.cfg.Backend.DeadLetters.ListDeadLetters(r.Context(), after, deadLetterPage)
	if err != nil && errMsg == "" {
		errMsg = err.Error()
	}
	d := deadLettersData{Items: items}
	if len(items) == deadLetterPage {
		d.Next = items[len(items)-1].Seq
	}
	c.render(w, r, http.StatusOK, "deadletters", s, page{Data: d, Flash: flash, Error: errMsg})
}

func (c *Console) deadLetterPage(w http.ResponseWriter, r *http.Request, s *session) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		c.render(w, r, http.StatusNotFound, "message", s, page{Error: messages[language(w, r)]["notfound"]})
		return
	}
	dl, err := c.cfg.Backend.DeadLetters.GetDeadLetter(r.Context(), seq)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, bus.ErrDeadLetterNotFound) {
			status = http.StatusNotFound
		}
		c.render(w, r, status, "message", s, page{Error: err.Error(), Active: "deadletters"})
		return
	}
	c.render(w, r, http.StatusOK, "deadletter", s, page{Data: dl, Active: "deadletters"})
}

func (c *Console) deadLetterAction(w http.ResponseWriter, r *http.Request, s *session) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	L := messages[language(w, r)]
	if err != nil {
		c.render(w, r, http.StatusNotFound, "message", s, page{Error: L["notfound"]})
		return
	}
	replay := strings.HasSuffix(r.URL.Path, "/replay")
	if !replay && r.PostForm.Get("confirm") != "yes" {
		// Discarding cannot be undone: the form asks for an explicit confirmation.
		r.URL.RawQuery = ""
		c.renderDeadLetters(w, r, s, "", L["needconfirm"])
		return
	}
	flash, errMsg := "", ""
	var action string
	if replay {
		action = "dlq.replay"
		err = c.replay(r.Context(), seq)
		flash = L["replayed"]
	} else {
		action = "dlq.discard"
		err = c.discard(r.Context(), seq)
		flash = L["discarded"]
	}
	outcome := "ok"
	if err != nil {
		flash, errMsg, outcome = "", err.Error(), clip(err.Error(), 256)
	}
	c.audit(r.Context(), s.Actor(), action, strconv.FormatUint(seq, 10), outcome, "", "")
	r.URL.RawQuery = ""
	c.renderDeadLetters(w, r, s, flash, errMsg)
}

func (c *Console) replay(ctx context.Context, seq uint64) error {
	c.met.actions.WithLabelValues("dlq_replay").Inc()
	return c.cfg.Backend.DeadLetters.ReplayDeadLetter(ctx, seq)
}

func (c *Console) discard(ctx context.Context, seq uint64) error {
	c.met.actions.WithLabelValues("dlq_discard").Inc()
	return c.cfg.Backend.DeadLetters.DiscardDeadLetter(ctx, seq)
}

// Configuration.

type configData struct {
	Effective string
	File      ConfigFile
	NoFile    bool
	Text      string // the text in the editor
	Base      string // the file version the edit began from
	Check     *ConfigCheck
	Lines     []numberedLine // the edited text with error lines marked
	Applied   *ConfigApply
	Versions  []ConfigVersion
	Redacted  string
	Operator  bool
}

type numberedLine struct {
	N    int
	Text string
	Bad  bool
}

func (c *Console) configPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderConfig(w, r, s, configData{}, "", "")
}

func (c *Console) renderConfig(w http.ResponseWriter, r *http.Request, s *session, d configData, flash, errMsg string) {
	ed := c.cfg.Backend.Config
	d.Operator = s.Role == RoleOperator
	if eff, err := ed.Effective(); err == nil {
		d.Effective = string(eff)
	} else if errMsg == "" {
		errMsg = err.Error()
	}
	f, err := ed.File()
	switch {
	case errors.Is(err, ErrNoConfigFile):
		d.NoFile = true
	case err != nil:
		if errMsg == "" {
			errMsg = err.Error()
		}
	default:
		d.File, d.Redacted = f, f.Placeholder
		if d.Text == "" {
			d.Text, d.Base = string(f.Text), f.Version
		}
	}
	if vs, err := ed.Versions(); err == nil {
		d.Versions = vs
	}
	status := http.StatusOK
	if d.Check != nil && len(d.Check.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	c.render(w, r, status, "config", s, page{Data: d, Flash: flash, Error: errMsg})
}

func (c *Console) configCheck(w http.ResponseWriter, r *http.Request, s *session) {
	text := normaliseText(r.PostForm.Get("text"))
	d := configData{Text: text, Base: r.PostForm.Get("base")}
	chk, err := c.cfg.Backend.Config.Check([]byte(text))
	if err != nil {
		c.renderConfig(w, r, s, d, "", err.Error())
		return
	}
	d.Check = &chk
	if len(chk.Errors) > 0 {
		d.Lines = markLines(text, chk.Errors)
	}
	c.met.actions.WithLabelValues("config_check").Inc()
	c.renderConfig(w, r, s, d, "", "")
}

func (c *Console) configApply(w http.ResponseWriter, r *http.Request, s *session) {
	L := messages[language(w, r)]
	text := normaliseText(r.PostForm.Get("text"))
	base := r.PostForm.Get("base")
	res, err := c.cfg.Backend.Config.Apply(r.Context(), []byte(text), base)
	c.met.actions.WithLabelValues("config_apply").Inc()
	d := configData{Text: text, Base: base}
	switch {
	case errors.Is(err, ErrConfigChanged):
		c.audit(r.Context(), s.Actor(), "config.apply", "", "refused: changed since the edit began", "", "")
		c.renderConfig(w, r, s, d, "", L["changedsince"])
		return
	case err != nil:
		c.audit(r.Context(), s.Actor(), "config.apply", "", "failed: "+clip(err.Error(), 256), "", "")
		c.renderConfig(w, r, s, d, "", err.Error())
		return
	case len(res.Errors) > 0:
		d.Check, d.Lines = &res.ConfigCheck, markLines(text, res.Errors)
		c.audit(r.Context(), s.Actor(), "config.apply", "", "refused: invalid", "", "")
		c.renderConfig(w, r, s, d, "", "")
		return
	}
	c.auditConfig(r.Context(), s.Actor(), "config.apply", res)
	flash, errMsg := L["applied"], ""
	if res.ReloadError != "" {
		flash, errMsg = "", L["reloadfailed"]+" "+res.ReloadError
	}
	c.renderConfig(w, r, s, configData{Applied: &res}, flash, errMsg)
}

func (c *Console) configRollback(w http.ResponseWriter, r *http.Request, s *session) {
	L := messages[language(w, r)]
	id := r.PostForm.Get("version")
	res, err := c.cfg.Backend.Config.Rollback(r.Context(), id)
	c.met.actions.WithLabelValues("config_rollback").Inc()
	if err != nil {
		c.audit(r.Context(), s.Actor(), "config.rollback", id, "failed: "+clip(err.Error(), 256), "", "")
		c.renderConfig(w, r, s, configData{}, "", err.Error())
		return
	}
	if len(res.Errors) > 0 {
		c.audit(r.Context(), s.Actor(), "config.rollback", id, "refused: invalid", "", "")
		c.renderConfig(w, r, s, configData{Check: &res.ConfigCheck}, "", L["errors"])
		return
	}
	c.auditConfig(r.Context(), s.Actor(), "config.rollback", res)
	flash, errMsg := L["applied"], ""
	if res.ReloadError != "" {
		flash, errMsg = "", L["reloadfailed"]+" "+res.ReloadError
	}
	c.renderConfig(w, r, s, configData{Applied: &res}, flash, errMsg)
}

// auditConfig records a configuration change with the changed lines before and after (both
// redacted).
func (c *Console) auditConfig(ctx context.Context, actor, action string, res ConfigApply) {
	var before, after strings.Builder
	for _, l := range res.Diff {
		switch l.Op {
		case '-':
			fmt.Fprintf(&before, "%d: %s\n", l.Old, l.Text)
		case '+':
			fmt.Fprintf(&after, "%d: %s\n", l.New, l.Text)
		}
	}
	outcome := "applied " + strings.Join(res.Applied, ", ")
	if len(res.Restart) > 0 {
		outcome += "; needs restart " + strings.Join(res.Restart, ", ")
	}
	if res.ReloadError != "" {
		outcome += "; reload failed: " + res.ReloadError
	}
	c.audit(ctx, actor, action, res.Version, clip(outcome, 1024), before.String(), after.String())
}

func normaliseText(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func markLines(text string, errs []ConfigError) []numberedLine {
	bad := map[int]bool{}
	for _, e := range errs {
		bad[e.Line] = true
	}
	var out []numberedLine
	for i, l := range splitLines([]byte(text)) {
		out = append(out, numberedLine{N: i + 1, Text: l, Bad: bad[i+1]})
	}
	return out
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	entries, err := c.AuditLog(r.Context(), before, 100)
	p := page{Data: entries}
	if err != nil {
		p.Error = err.Error()
	}
	c.render(w, r, http.StatusOK, "audit", s, p)
}

func (c *Console) sectionPage(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	i := slices.IndexFunc(c.cfg.Backend.Sections, func(x Section) bool { return x.Path == name })
	if i < 0 {
		c.render(w, r, http.StatusNotFound, "message", s, page{Error: messages[language(w, r)]["notfound"]})
		return
	}
	sec := c.cfg.Backend.Sections[i]
	lang := language(w, r)
	title := sec.Title[lang]
	if title == "" {
		title = sec.Title["en"]
	}
	p := page{Title: title, Active: "s:" + sec.Path}
	if sec.Load == nil {
		p.Data = Table{Note: messages[lang]["notavailable"]}
	} else if t, err := sec.Load(r.Context(), lang); err != nil {
		p.Error = err.Error()
	} else {
		p.Data = t
	}
	c.render(w, r, http.StatusOK, "section", s, p)
}
