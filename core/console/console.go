// Package console is the gateway's admin console: server-rendered pages (html/template, embedded,
// no JavaScript needed, English and German) for the people who run the gateway, and a JSON API
// for the `mimi-gateway admin` commands.
//
// The console shows and does only what its Backend offers: readiness, partners, rooms, the
// outbox backlog, KeyPackage stock, dead letters and the configuration. It does not know where
// they come from; cmd/mimi-gateway wires the running components and the configuration file in.
//
// Security:
//   - Sign-in with OpenID Connect (authorization code flow with PKCE, nonce, the ID token's
//     signature checked against the issuer's JWKS, an allowed group claim deciding the role) or a
//     local break-glass account (argon2id hash in the store, set with `mimi-gateway admin passwd`).
//   - Sessions live in the store; the cookie holds a random 256-bit ID, the store only its
//     SHA-256. Cookies are Secure, HttpOnly, SameSite=Strict. A new session ID is issued at every
//     sign-in (no fixation), sessions end after an idle and an absolute timeout.
//   - Every form carries a CSRF token bound to the session (the login form one bound to a
//     pre-login cookie); a POST without it is refused.
//   - Failed sign-ins are counted per account name and per client address; past the limit the
//     password is not even checked until the window has passed.
//   - Two roles: viewers read, operators also change (replay, discard, configuration). Every
//     change, sign-in and refused attempt is in the audit log in the store.
//   - Pages never show message content or secrets: dead letters by their metadata, the
//     configuration with secret values replaced.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

//go:embed migrations
var migrationFS embed.FS

// Schema is the console's store schema (accounts, sessions, audit log).
var Schema = store.MustMigrationsFromFS("console", migrationFS, "migrations")

//go:embed templates static
var assetFS embed.FS

// Role is what a signed-in person may do.
type Role string

// Roles.
const (
	// RoleViewer reads every page.
	RoleViewer Role = "viewer"
	// RoleOperator also replays and discards dead letters and changes the configuration.
	RoleOperator Role = "operator"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleViewer || r == RoleOperator }

// Health reports readiness (implemented by *ops.Admin).
type Health interface {
	Check(ctx context.Context) ops.Readiness
}

// PartnerInfo is one configured partner as the console shows it.
type PartnerInfo struct {
	Domain    event.Domain
	BaseURL   string
	Discovery bool
	// CAChain describes the certificates of the partner's ca_file (empty: the system roots).
	CAChain []protocol.CertInfo
	// Reachability is what the MIMI client saw of the partner.
	Reachability protocol.PartnerReachability
}

// Partners lists and checks the configured partners.
type Partners interface {
	// Partners returns the configured partners in configuration order.
	Partners(ctx context.Context) []PartnerInfo
	// Own returns the gateway's own MIMI certificate chain (empty when the endpoint is off).
	Own() []protocol.CertInfo
	// Check fetches the partner's directory over mutual TLS now.
	Check(ctx context.Context, d event.Domain) protocol.CheckResult
}

// Rooms reads the rooms, the outbox backlog and the KeyPackage stock.
type Rooms interface {
	Rooms(ctx context.Context) ([]provider.RoomSummary, error)
	Backlog(ctx context.Context) ([]protocol.Backlog, error)
	KeyPackages(ctx context.Context) ([]provider.KeyPackageStock, error)
}

// Section is an extra read-only view (abuse reports, consent records, replicas, ...) that a
// component adds without touching the console's templates: a titled table.
type Section struct {
	// Path is the URL path segment: the view is served at /s/<Path>.
	Path string
	// Title is the view's title by language ("en", "de").
	Title map[string]string
	// Load returns the table to show, with its texts in lang ("en", "de").
	Load func(ctx context.Context, lang string) (Table, error)
}

// Table is a section's content. Cells are text (escaped when rendered).
type Table struct {
	Columns []string
	Rows    [][]string
	// Note is shown above the table (e.g. "no data yet").
	Note string
}

// Backend is what the console shows and does. Nil members hide their pages.
type Backend struct {
	// Domain is the gateway's provider domain (shown in the header).
	Domain string
	// Version is the gateway's version (shown in the footer).
	Version     string
	Health      Health
	Partners    Partners
	Rooms       Rooms
	DeadLetters bus.DeadLetters
	Config      ConfigEditor
	// Metrics is read for the overview's message rates (the process's own registry).
	Metrics prometheus.Gatherer
	// Sections are extra views listed in the navigation after the built-in ones.
	Sections []Section
}

// Config configures the console.
type Config struct {
	// Store keeps accounts, sessions and the audit log; the console migrates its schema.
	Store   *store.Store
	Backend Backend
	Logger  *slog.Logger
	// Registerer receives the console's metrics; nil registers none.
	Registerer prometheus.Registerer
	// PublicURL is the console's address as browsers reach it (https://host:port), needed for
	// OpenID Connect's redirect URI.
	PublicURL string
	// OIDC enables sign-in through an OpenID Connect provider; nil means local accounts only.
	OIDC *OIDCConfig
	// IdleTimeout ends a session that made no request for this long (default 30m).
	IdleTimeout time.Duration
	// AbsoluteTimeout ends every session this long after sign-in (default 12h).
	AbsoluteTimeout time.Duration
	// LoginLimit is the number of failed sign-ins per account name and per client address
	// within LoginWindow after which sign-in is refused until the window has passed (default 5
	// in 15m).
	LoginLimit  int
	LoginWindow time.Duration
	// Now replaces time.Now in tests.
	Now func() time.Time
}

// Console is the admin console's HTTP handler.
type Console struct {
	cfg   Config
	log   *slog.Logger
	st    *store.Store
	pages map[string]*template.Template
	mux   *http.ServeMux
	api   *http.ServeMux
	oidc  *oidcClient
	met   *metrics

	limiter *limiter
	// argon bounds concurrent password hashing (64 MiB each).
	argon chan struct{}

	mu     sync.Mutex
	checks map[event.Domain]protocol.CheckResult // last "check now" per partner
	rates  *rateSampler
}

// New returns a console. It migrates the console's schema in cfg.Store and, if cfg.OIDC is
// set, discovers the identity provider (which must be reachable).
func New(ctx context.Context, cfg Config) (*Console, error) {
	if cfg.Store == nil {
		return nil, errors.New("console: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.AbsoluteTimeout <= 0 {
		cfg.AbsoluteTimeout = 12 * time.Hour
	}
	if cfg.LoginLimit <= 0 {
		cfg.LoginLimit = 5
	}
	if cfg.LoginWindow <= 0 {
		cfg.LoginWindow = 15 * time.Minute
	}
	if err := cfg.Store.Migrate(ctx, Schema); err != nil {
		return nil, fmt.Errorf("console: schema: %w", err)
	}
	c := &Console{
		cfg: cfg, log: cfg.Logger.With("component", "console"), st: cfg.Store,
		limiter: newLimiter(cfg.LoginLimit, cfg.LoginWindow, cfg.Now),
		argon:   make(chan struct{}, 2),
		checks:  make(map[event.Domain]protocol.CheckResult),
		met:     newMetrics(),
	}
	if cfg.Registerer != nil {
		for _, m := range c.met.collectors() {
			if err := cfg.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("console: metrics: %w", err)
			}
		}
	}
	if cfg.Backend.Metrics != nil {
		c.rates = newRateSampler(cfg.Backend.Metrics, cfg.Now)
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if cfg.OIDC != nil {
		if c.oidc, err = newOIDC(ctx, *cfg.OIDC, cfg.PublicURL); err != nil {
			return nil, err
		}
	}
	c.routes()
	return c, nil
}

// Handler returns the browser-facing handler (pages, sign-in, static files).
func (c *Console) Handler() http.Handler { return c.met.instrument(securityHeaders(c.mux)) }

// APIHandler returns the JSON API for the admin CLI. It has no authentication of its own: serve
// it only on a listener that is itself access-controlled (a Unix socket with mode 0600).
func (c *Console) APIHandler() http.Handler { return c.api }

// Run samples the message rates for the overview and prunes expired sessions until ctx ends.
func (c *Console) Run(ctx context.Context) {
	if c.rates != nil {
		c.rates.sample()
	}
	rates := time.NewTicker(15 * time.Second)
	defer rates.Stop()
	prune := time.NewTicker(10 * time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rates.C:
			if c.rates != nil {
				c.rates.sample()
			}
		case <-prune.C:
			if _, err := c.PruneSessions(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("console: pruning sessions", "err", err)
			}
		}
	}
}

// PruneSessions deletes sessions past their idle or absolute timeout.
func (c *Console) PruneSessions(ctx context.Context) (int64, error) {
	now := c.cfg.Now()
	res, err := c.st.ExecContext(ctx, `DELETE FROM console_sessions WHERE last_seen < ? OR created_at < ?`,
		now.Add(-c.cfg.IdleTimeout).UnixMilli(), now.Add(-c.cfg.AbsoluteTimeout).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("console: prune sessions: %w", err)
	}
	return res.RowsAffected()
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(assetFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := make(map[string]*template.Template)
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assetFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// securityHeaders sets headers every console answer carries: no framing, no sniffing, no
// referrer, no caching, and a content security policy that allows only the console's own
// stylesheet (no scripts at all).
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
