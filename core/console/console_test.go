package console

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// fakeClock is a settable clock for timeouts and the login window.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// dlqStub is a dead-letter source with one entry, recording what was done to it.
type dlqStub struct {
	mu   sync.Mutex
	done []string
}

func (d *dlqStub) ListDeadLetters(context.Context, uint64, int) ([]bus.DeadLetter, error) {
	return []bus.DeadLetter{{Seq: 7, Reason: bus.DLQPermanent, Subject: "mimi.out.x"}}, nil
}
func (d *dlqStub) GetDeadLetter(context.Context, uint64) (bus.DeadLetter, error) {
	return bus.DeadLetter{Seq: 7}, nil
}
func (d *dlqStub) ReplayDeadLetter(_ context.Context, seq uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = append(d.done, "replay")
	return nil
}
func (d *dlqStub) DiscardDeadLetter(context.Context, uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = append(d.done, "discard")
	return nil
}
func (d *dlqStub) DeadLetterCount(context.Context) (uint64, error) { return 1, nil }
func (d *dlqStub) actions() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.done...)
}

type env struct {
	t     *testing.T
	srv   *httptest.Server
	c     *Console
	clock *fakeClock
	dlq   *dlqStub
}

const testPassword = "correct horse battery staple"

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	for name, role := range map[string]Role{"op": RoleOperator, "view": RoleViewer} {
		if err := SetLocalAccount(ctx, st, name, testPassword, role, clock.now()); err != nil {
			t.Fatal(err)
		}
	}
	dlq := &dlqStub{}
	c, err := New(ctx, Config{Store: st, Backend: Backend{Domain: "a.example", DeadLetters: dlq}, Now: clock.now,
		LoginLimit: 3, LoginWindow: time.Minute, IdleTimeout: 10 * time.Minute, AbsoluteTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(c.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, c: c, clock: clock, dlq: dlq}
}

// browser is a client with its own cookie jar that does not follow redirects.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	cl := e.srv.Client()
	return &http.Client{Transport: cl.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (e *env) get(b *http.Client, path string) (int, string) {
	e.t.Helper()
	resp, err := b.Get(e.srv.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (e *env) post(b *http.Client, path string, form url.Values) (int, string) {
	e.t.Helper()
	resp, err := b.PostForm(e.srv.URL+path, form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

func (e *env) login(b *http.Client, user, pw string) (int, string) {
	_, page := e.get(b, "/login")
	return e.post(b, "/login", url.Values{"csrf": {csrfOf(e.t, page)}, "username": {user}, "password": {pw}})
}

func sessionOfJar(b *http.Client, u string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.Jar.Cookies(pu) {
		if c.Name == "mimi_console_session" {
			return c.Value
		}
	}
	return ""
}

// TestLoginThrottled: after LoginLimit failures for an account, even the right password is
// refused until the window has passed, and every failure is in the audit log.
func TestLoginThrottled(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for i := range 3 {
		if code, _ := e.login(b, "op", "wrong password "+string(rune('a'+i))); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i, code)
		}
	}
	if code, body := e.login(b, "op", testPassword); code != http.StatusTooManyRequests || !strings.Contains(body, "Too many") {
		t.Fatalf("right password while throttled: status %d", code)
	}
	e.clock.add(time.Minute + time.Second)
	if code, _ := e.login(b, "op", testPassword); code != http.StatusSeeOther {
		t.Fatalf("after the window: status %d", code)
	}
	entries, err := e.c.AuditLog(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, en := range entries {
		counts[en.Action]++
	}
	if counts["login.failed"] != 3 || counts["login.throttled"] != 1 || counts["login"] != 1 {
		t.Errorf("audit log actions %v", counts)
	}
}

// TestSessionFixation: a session ID planted before sign-in is never the one signed in, and a
// planted ID does not authenticate anything.
func TestSessionFixation(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	u, _ := url.Parse(e.srv.URL)
	planted := "attacker-chosen-session-id-0123456789abcdef"
	b.Jar.SetCookies(u, []*http.Cookie{{Name: "mimi_console_session", Value: planted, Path: "/"}})
	if code, _ := e.get(b, "/"); code != http.StatusSeeOther {
		t.Fatalf("planted session admitted: %d", code)
	}
	if code, _ := e.login(b, "op", testPassword); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	got := sessionOfJar(b, e.srv.URL)
	if got == "" || got == planted {
		t.Fatalf("session after sign-in %q (planted %q)", got, planted)
	}
	// The planted ID is not a session either, and signing out ends the real one.
	other := e.browser()
	other.Jar.SetCookies(u, []*http.Cookie{{Name: "mimi_console_session", Value: planted, Path: "/"}})
	if code, _ := e.get(other, "/"); code != http.StatusSeeOther {
		t.Errorf("planted session admitted after the sign-in: %d", code)
	}
	_, page := e.get(b, "/")
	if code, _ := e.post(b, "/logout", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusSeeOther {
		t.Fatalf("logout: %d", code)
	}
	other.Jar.SetCookies(u, []*http.Cookie{{Name: "mimi_console_session", Value: got, Path: "/"}})
	if code, _ := e.get(other, "/"); code != http.StatusSeeOther {
		t.Errorf("session still valid after sign-out: %d", code)
	}
}

// TestCSRFAndRoles: a POST without the session's CSRF token is refused; a viewer cannot
// replay a dead letter; an operator can.
func TestCSRFAndRoles(t *testing.T) {
	e := newEnv(t)
	op, view := e.browser(), e.browser()
	e.login(op, "op", testPassword)
	e.login(view, "view", testPassword)
	if code, _ := e.post(op, "/deadletters/7/replay", url.Values{}); code != http.StatusForbidden {
		t.Errorf("POST without CSRF token: %d", code)
	}
	if code, _ := e.post(op, "/deadletters/7/replay", url.Values{"csrf": {"guessed"}}); code != http.StatusForbidden {
		t.Errorf("POST with a wrong CSRF token: %d", code)
	}
	_, page := e.get(view, "/deadletters")
	if strings.Contains(page, "/replay") {
		t.Error("the viewer's page offers replay")
	}
	if code, _ := e.post(view, "/deadletters/7/replay", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusForbidden {
		t.Errorf("viewer replay: %d", code)
	}
	if n := len(e.dlq.actions()); n != 0 {
		t.Fatalf("replays done before the operator's: %d", n)
	}
	_, page = e.get(op, "/deadletters")
	if code, body := e.post(op, "/deadletters/7/replay", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusOK || !strings.Contains(body, "replayed") {
		t.Errorf("operator replay: %d", code)
	}
	if a := e.dlq.actions(); len(a) != 1 {
		t.Errorf("replays %v", a)
	}
	// Discarding needs the explicit confirmation of its form.
	_, page = e.get(op, "/deadletters/7")
	if code, body := e.post(op, "/deadletters/7/discard", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusOK || !strings.Contains(body, "Tick the box") {
		t.Errorf("discard without confirmation: %d", code)
	}
	if code, body := e.post(op, "/deadletters/7/discard", url.Values{"csrf": {csrfOf(t, page)}, "confirm": {"yes"}}); code != http.StatusOK || !strings.Contains(body, "discarded") {
		t.Errorf("confirmed discard: %d", code)
	}
	if a := e.dlq.actions(); len(a) != 2 || a[1] != "discard" {
		t.Errorf("actions %v", a)
	}
	// The login form refuses a post without its token too.
	if code, _ := e.post(e.browser(), "/login", url.Values{"username": {"op"}, "password": {testPassword}}); code != http.StatusForbidden {
		t.Errorf("login without CSRF token: %d", code)
	}
}

// TestSessionTimeouts: idle and absolute timeouts end a session.
func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.login(b, "op", testPassword)
	if code, _ := e.get(b, "/"); code != http.StatusOK {
		t.Fatalf("fresh session: %d", code)
	}
	e.clock.add(11 * time.Minute)
	if code, _ := e.get(b, "/"); code != http.StatusSeeOther {
		t.Errorf("idle session still valid: %d", code)
	}
	e.login(b, "op", testPassword)
	for range 7 { // active every 9 minutes, past the absolute timeout of an hour
		e.clock.add(9 * time.Minute)
		e.get(b, "/")
	}
	if code, _ := e.get(b, "/"); code != http.StatusSeeOther {
		t.Errorf("session past the absolute timeout still valid: %d", code)
	}
}

// TestMessagesComplete: every text exists in every language.
func TestMessagesComplete(t *testing.T) {
	for _, l := range languages {
		for k := range messages["en"] {
			if messages[l][k] == "" {
				t.Errorf("%s: no text for %q", l, k)
			}
		}
		if len(messages[l]) != len(messages["en"]) {
			t.Errorf("%s has %d texts, en %d", l, len(messages[l]), len(messages["en"]))
		}
	}
}

// TestPassword hashes with argon2id and refuses a tampered hash.
func TestPassword(t *testing.T) {
	h, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("hash %q", h)
	}
	if ok, err := VerifyPassword(h, testPassword); !ok || err != nil {
		t.Errorf("right password: %v %v", ok, err)
	}
	if ok, _ := VerifyPassword(h, testPassword+"x"); ok {
		t.Error("wrong password accepted")
	}
	if _, err := VerifyPassword(strings.Replace(h, "m=65536", "m=99999999", 1), testPassword); err == nil {
		t.Error("a hash demanding 95 GiB was accepted")
	}
	if _, err := HashPassword("short"); err == nil {
		t.Error("short password accepted")
	}
}

// BenchmarkVerifyPassword measures one local sign-in's password check (argon2id, 64 MiB, 3
// passes): the cost that the two-at-a-time limit and the throttling bound.
func BenchmarkVerifyPassword(b *testing.B) {
	h, err := HashPassword(testPassword)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := VerifyPassword(h, testPassword); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
