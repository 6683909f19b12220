package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// UserDirectory knows which local users exist on the legacy networks and which adapter serves
// each of them. The provider asks it about a local user who has no MLS client yet: when a
// partner claims her KeyPackages (users on demand) and when a local user adds her to a room. The
// gateway implements it over its adapters; this package depends on the interface only.
type UserDirectory interface {
	// LookupUser returns the network whose adapter serves local user u. The error wraps
	// ErrNoSuchUser when no adapter knows u; any other error means the answer is not known now
	// (a homeserver that does not answer), and the caller asks again later.
	LookupUser(ctx context.Context, u event.UserURI) (event.Network, error)
}

// ErrNoSuchUser is wrapped by UserDirectory.LookupUser errors for a user no adapter knows.
var ErrNoSuchUser = errors.New("provider: no such user on the legacy networks")

// lookupRetryAfter is the Retry-After of a /keyMaterial answer while the user directory cannot
// tell whether the user exists.
const lookupRetryAfter = 5 * time.Second

// userOnDemand creates the MLS client and KeyPackage pool of local user u when a partner asks for
// her KeyPackages and she has none yet: if the organisation allows it (Config.UsersOnDemand)
// and the user directory finds her on a legacy network, which then serves her. It returns nil
// when u has a client (now or before), an error wrapping ErrUnknownUser when she stays unknown,
// and a *protocol.StatusError (503, Retry-After) when the directory cannot answer now.
func (p *Provider) userOnDemand(ctx context.Context, u event.UserURI) error {
	if _, err := loadUser(ctx, p.st, u); !errors.Is(err, ErrUnknownUser) {
		return err
	}
	if !p.cfg.UsersOnDemand || p.cfg.Users == nil {
		return fmt.Errorf("%w: %s (no client, and users on demand are off)", ErrUnknownUser, u)
	}
	n, err := p.cfg.Users.LookupUser(ctx, u)
	switch {
	case errors.Is(err, ErrNoSuchUser):
		p.met.usersOnDemand.WithLabelValues("unknown").Inc()
		return fmt.Errorf("%w: %w", ErrUnknownUser, err)
	case err != nil:
		p.met.usersOnDemand.WithLabelValues("lookup_failed").Inc()
		p.log.Warn("user lookup failed; the partner is asked to retry", "err", err)
		return &protocol.StatusError{Status: http.StatusServiceUnavailable, RetryAfter: lookupRetryAfter,
			Detail: "the user directory does not answer; retry later", Err: err}
	}
	if err := p.EnsureUser(ctx, u, n); err != nil {
		return err
	}
	p.met.usersOnDemand.WithLabelValues("created").Inc()
	p.log.Info("local user's MLS client created on demand", "user", u, "network", n)
	return nil
}

// ensureLocal makes sure local user u, whom a local user adds to a room, has an MLS client. The
// user directory says which network serves her; without a directory, hint (the inviter's
// network) does. A user the directory does not know is ErrUnknownUser.
func (p *Provider) ensureLocal(ctx context.Context, u event.UserURI, hint event.Network) error {
	if _, err := loadUser(ctx, p.st, u); !errors.Is(err, ErrUnknownUser) {
		return err
	}
	n := hint
	if p.cfg.Users != nil {
		var err error
		if n, err = p.cfg.Users.LookupUser(ctx, u); errors.Is(err, ErrNoSuchUser) {
			return fmt.Errorf("%w: %w", ErrUnknownUser, err)
		} else if err != nil {
			return fmt.Errorf("provider: look up %s: %w", u, err)
		}
	}
	return p.EnsureUser(ctx, u, n)
}
