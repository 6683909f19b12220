package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig configures sign-in through an OpenID Connect provider (Keycloak, Entra ID, ...).
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; its discovery document is read at start.
	Issuer string
	// ClientID and ClientSecret are the console's client registration (confidential client).
	ClientID     string
	ClientSecret string
	// Scopes are requested besides "openid" (default "profile", "email").
	Scopes []string
	// GroupsClaim is the ID token claim that lists the person's groups (default "groups").
	GroupsClaim string
	// OperatorGroups and ViewerGroups decide the role: a member of an operator group is an
	// operator, else a member of a viewer group a viewer; anyone else is refused.
	OperatorGroups []string
	ViewerGroups   []string
	// HTTPClient reaches the provider (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// CallbackPath is the redirect URI's path, under the console's public URL.
const CallbackPath = "/oidc/callback"

// oidcFlowTTL bounds the time between starting a sign-in and the provider's redirect back.
const oidcFlowTTL = 10 * time.Minute

type oidcClient struct {
	cfg      OIDCConfig
	verifier *oidc.IDTokenVerifier
	oauth    oauth2.Config

	mu    sync.Mutex
	flows map[string]oidcFlow // by state
}

type oidcFlow struct {
	binding, nonce, verifier string
	expires                  time.Time
}

func newOIDC(ctx context.Context, cfg OIDCConfig, publicURL string) (*oidcClient, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("console: oidc: issuer and client_id are required")
	}
	if publicURL == "" {
		return nil, errors.New("console: oidc: the console's public URL is required for the redirect URI")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"profile", "email"}
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("console: oidc discovery at %s: %w", cfg.Issuer, err)
	}
	o := &oidcClient{
		cfg:      cfg,
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: p.Endpoint(),
			RedirectURL: strings.TrimSuffix(publicURL, "/") + CallbackPath,
			Scopes:      append([]string{oidc.ScopeOpenID}, cfg.Scopes...),
		},
		flows: make(map[string]oidcFlow),
	}
	return o, nil
}

func (o *oidcClient) ctx(ctx context.Context) context.Context {
	if o.cfg.HTTPClient != nil {
		return oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	return ctx
}

// start begins a sign-in: it remembers state, nonce and the PKCE verifier, binds them to the
// browser with a cookie and returns the provider's authorization URL.
func (o *oidcClient) start(w http.ResponseWriter, now time.Time) string {
	state, nonce, verifier, binding := randomToken(), randomToken(), oauth2.GenerateVerifier(), randomToken()
	o.mu.Lock()
	for k, f := range o.flows {
		if now.After(f.expires) {
			delete(o.flows, k)
		}
	}
	if len(o.flows) > 10_000 { // bound memory under a flood of unfinished sign-ins
		clear(o.flows)
	}
	o.flows[state] = oidcFlow{binding: binding, nonce: nonce, verifier: verifier, expires: now.Add(oidcFlowTTL)}
	o.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: binding, Path: CallbackPath, Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcFlowTTL / time.Second)})
	return o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
}

// identity is who signed in through the provider.
type identity struct {
	subject string
	role    Role
}

// errNoGroup is a valid sign-in of someone in none of the allowed groups.
var errNoGroup = errors.New("not a member of an allowed group")

// finish completes a sign-in from the provider's redirect: state bound to this browser, code
// exchanged with the PKCE verifier, ID token verified (signature against the JWKS, issuer,
// audience, expiry) with the nonce, then the group claim mapped to a role.
func (o *oidcClient) finish(ctx context.Context, r *http.Request, now time.Time) (identity, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return identity{}, fmt.Errorf("the identity provider answered %q", clip(e, 64))
	}
	state := q.Get("state")
	o.mu.Lock()
	f, ok := o.flows[state]
	delete(o.flows, state)
	o.mu.Unlock()
	if !ok || now.After(f.expires) {
		return identity{}, errors.New("unknown or expired sign-in")
	}
	ck, err := r.Cookie(oidcCookie)
	if err != nil || !equalToken(ck.Value, f.binding) {
		return identity{}, errors.New("the sign-in was started in another browser")
	}
	ctx = o.ctx(ctx)
	tok, err := o.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.verifier))
	if err != nil {
		return identity{}, fmt.Errorf("code exchange: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return identity{}, errors.New("the token response has no ID token")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return identity{}, fmt.Errorf("ID token: %w", err)
	}
	if !equalToken(idt.Nonce, f.nonce) {
		return identity{}, errors.New("ID token: nonce mismatch")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return identity{}, fmt.Errorf("ID token claims: %w", err)
	}
	name := idt.Subject
	if u, ok := claims["preferred_username"].(string); ok && u != "" {
		name = u
	}
	id := identity{subject: clip(name, 128)}
	groups := stringList(claims[o.cfg.GroupsClaim])
	switch {
	case intersects(groups, o.cfg.OperatorGroups):
		id.role = RoleOperator
	case intersects(groups, o.cfg.ViewerGroups):
		id.role = RoleViewer
	default:
		return id, errNoGroup
	}
	return id, nil
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func intersects(a, b []string) bool {
	return slices.ContainsFunc(a, func(s string) bool { return slices.Contains(b, s) })
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		return s[:n]
	}
	return s
}
