package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Cookie names.
const (
	sessionCookie = "mimi_console_session"
	// preCookie binds the login form's CSRF token to the browser before there is a session.
	preCookie = "mimi_console_pre"
	// oidcCookie binds an OpenID Connect sign-in to the browser that started it. It is
	// SameSite=Lax: the identity provider's redirect back is a cross-site navigation, on which
	// a Strict cookie would not be sent.
	oidcCookie = "mimi_console_oidc"
	langCookie = "mimi_console_lang"
)

// session is a signed-in person.
type session struct {
	idHash  string
	Subject string
	Method  string // "local" or "oidc"
	Role    Role
	CSRF    string
	Created time.Time
}

// Actor names the person in the audit log.
func (s *session) Actor() string { return s.Method + ":" + s.Subject }

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("console: crypto/rand failed: " + err.Error()) // crypto/rand.Read never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) string {
	s := sha256.Sum256([]byte(t))
	return hex.EncodeToString(s[:])
}

func equalToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// newSession stores a new session and sets its cookie. Any session the browser presented is
// deleted first: a sign-in always gets a fresh ID (no session fixation).
func (c *Console) newSession(ctx context.Context, w http.ResponseWriter, r *http.Request, subject, method string, role Role) (*session, error) {
	if old, err := r.Cookie(sessionCookie); err == nil {
		_, _ = c.st.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, hashToken(old.Value))
	}
	id := randomToken()
	now := c.cfg.Now()
	s := &session{idHash: hashToken(id), Subject: subject, Method: method, Role: role, CSRF: randomToken(), Created: now}
	_, err := c.st.ExecContext(ctx, `INSERT INTO console_sessions (id_hash, subject, method, role, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		s.idHash, s.Subject, s.Method, string(s.Role), s.CSRF, now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("console: new session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.AbsoluteTimeout / time.Second)})
	c.met.sessions.WithLabelValues(method).Inc()
	return s, nil
}

// lastSeenGranularity limits how often a session's last_seen is written.
const lastSeenGranularity = 30 * time.Second

// sessionOf returns the request's valid session, or nil. An expired session is deleted.
func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || len(ck.Value) > 128 {
		return nil
	}
	ctx := r.Context()
	h := hashToken(ck.Value)
	var s session
	var role string
	var created, seen int64
	err = c.st.QueryRowContext(ctx, `SELECT subject, method, role, csrf, created_at, last_seen FROM console_sessions WHERE id_hash = ?`, h).
		Scan(&s.Subject, &s.Method, &role, &s.CSRF, &created, &seen)
	if err != nil {
		if !errors.Is(err, sql.ErrNoRows) {
			c.log.Error("console: reading session", "err", err)
		}
		return nil
	}
	s.idHash, s.Role, s.Created = h, Role(role), time.UnixMilli(created)
	now := c.cfg.Now()
	if now.Sub(time.UnixMilli(seen)) > c.cfg.IdleTimeout || now.Sub(s.Created) > c.cfg.AbsoluteTimeout || !s.Role.Valid() {
		_, _ = c.st.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = ?`, h)
		return nil
	}
	if now.Sub(time.UnixMilli(seen)) > lastSeenGranularity {
		if _, err := c.st.ExecContext(ctx, `UPDATE console_sessions SET last_seen = ? WHERE id_hash = ?`, now.UnixMilli(), h); err != nil {
			c.log.Warn("console: session last_seen", "err", err)
		}
	}
	return &s
}

// endSession deletes the session and clears the cookie.
func (c *Console) endSession(w http.ResponseWriter, r *http.Request, s *session) {
	if s != nil {
		_, _ = c.st.ExecContext(r.Context(), `DELETE FROM console_sessions WHERE id_hash = ?`, s.idHash)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// preToken returns the browser's pre-login token, setting the cookie if it has none.
func preToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(preCookie); err == nil && len(ck.Value) >= 32 && len(ck.Value) <= 64 {
		return ck.Value
	}
	t := randomToken()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: t, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return t
}

// Local accounts.

// SetLocalAccount creates or replaces the local account name with the password's argon2id
// hash and role. It is what `mimi-gateway admin passwd` calls; the store may be the running
// gateway's (SQLite allows a second process, PostgreSQL many).
func SetLocalAccount(ctx context.Context, st *store.Store, name, password string, role Role, now time.Time) error {
	if err := checkAccountName(name); err != nil {
		return err
	}
	if !role.Valid() {
		return fmt.Errorf("console: role %q: use %q or %q", role, RoleViewer, RoleOperator)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	if err := st.Migrate(ctx, Schema); err != nil {
		return fmt.Errorf("console: schema: %w", err)
	}
	return st.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_accounts WHERE name = ?`, name); err != nil {
			return fmt.Errorf("console: set account: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO console_accounts (name, hash, role, updated_at) VALUES (?, ?, ?, ?)`,
			name, hash, string(role), now.UnixMilli()); err != nil {
			return fmt.Errorf("console: set account: %w", err)
		}
		// A new password ends the account's sessions.
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE method = 'local' AND subject = ?`, name); err != nil {
			return fmt.Errorf("console: set account: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO console_audit (at, actor, action, target, outcome) VALUES (?, ?, ?, ?, ?)`,
			now.UnixMilli(), "cli:admin passwd", "account.set", name, "role "+string(role))
		return err
	})
}

func checkAccountName(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '@' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) {
		return fmt.Errorf("console: account name %q: use 1-64 characters from [A-Za-z0-9._@-]", name)
	}
	return nil
}

// dummyHash is verified against when the account does not exist, so that a missing account
// takes as long as a wrong password.
var (
	dummyOnce sync.Once
	dummyHash string
)

// verifyLocal checks a local account's password. It returns the account's role.
func (c *Console) verifyLocal(ctx context.Context, name, password string) (Role, bool, error) {
	var hash, role string
	err := c.st.QueryRowContext(ctx, `SELECT hash, role FROM console_accounts WHERE name = ?`, name).Scan(&hash, &role)
	missing := errors.Is(err, sql.ErrNoRows)
	if err != nil && !missing {
		return "", false, fmt.Errorf("console: reading account: %w", err)
	}
	if missing {
		dummyOnce.Do(func() { dummyHash, _ = HashPassword("not a password of anyone") })
		hash = dummyHash
	}
	select {
	case c.argon <- struct{}{}:
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	ok, verr := VerifyPassword(hash, password)
	<-c.argon
	if verr != nil {
		return "", false, verr
	}
	if missing || !ok {
		return "", false, nil
	}
	return Role(role), true, nil
}

// limiter counts failed sign-ins per key (account name, client address) in a sliding window.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	fails map[string][]time.Time
}

func newLimiter(max int, window time.Duration, now func() time.Time) *limiter {
	return &limiter{max: max, window: window, now: now, fails: make(map[string][]time.Time)}
}

// blocked returns how long key must wait, or 0.
func (l *limiter) blocked(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		f := l.prune(k, now)
		if len(f) >= l.max {
			wait = max(wait, f[0].Add(l.window).Sub(now))
		}
	}
	return wait
}

func (l *limiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		f := append(l.prune(k, now), now)
		if len(f) > l.max { // keep the newest max entries
			f = f[len(f)-l.max:]
		}
		l.fails[k] = f
	}
	if len(l.fails) > 100_000 { // bound memory under a spray of names
		for k := range l.fails {
			delete(l.fails, k)
			if len(l.fails) <= 50_000 {
				break
			}
		}
	}
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}

func (l *limiter) prune(k string, now time.Time) []time.Time {
	f := l.fails[k]
	i := 0
	for i < len(f) && now.Sub(f[i]) >= l.window {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(l.fails, k)
		return nil
	}
	l.fails[k] = f
	return f
}

// clientIP is the peer's address (the console does not trust forwarding headers).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
