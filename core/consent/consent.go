// Package consent keeps who may reach the organisation's users from outside it: each user's
// reachability setting (or the organisation's default) and the requesters a user has accepted.
// The MIMI provider asks Allows before it hands out a user's KeyPackages, and answers a caller
// who may not reach a user exactly as it answers for a user who does not exist.
//
//	c, err := consent.New(ctx, st, consent.Consent)   // migrates; the default is the organisation's
//	ok, err := c.Allows(ctx, target, requester)       // the decision for one claim
//	err = c.SetReachability(ctx, user, consent.Nobody) // a user's own choice
//	err = c.Grant(ctx, target, requester)              // a consent given
//	st, _, err := c.Ask(ctx, requester, target, "")    // a request for consent, recorded
//
// Settings and grants are durable (the store's consent_* tables) and take effect at once.
package consent

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

//go:embed migrations
var migrationFS embed.FS

// Schema is this package's store component ("consent"); New migrates it.
var Schema = store.MustMigrationsFromFS("consent", migrationFS, "migrations")

// Reachability is who may reach a user from outside the organisation (users of the
// organisation's own domain are not asked about).
type Reachability string

// Reachability values.
const (
	// Partners: anyone at a configured partner provider.
	Partners Reachability = "partners"
	// Consent: only requesters the user has accepted (Grant).
	Consent Reachability = "consent"
	// Nobody: nobody outside the organisation.
	Nobody Reachability = "nobody"
)

// Valid reports whether r is one of the defined settings.
func (r Reachability) Valid() bool { return r == Partners || r == Consent || r == Nobody }

// ErrInvalid is a setting that is not one of the defined values, or a user URI that is not one.
var ErrInvalid = errors.New("consent: invalid setting")

// Store is the consent store of one organisation (one domain).
type Store struct {
	st  *store.Store
	def Reachability
	now func() time.Time
}

// New migrates the consent schema and returns a Store whose users without a setting of their own
// have def.
func New(ctx context.Context, st *store.Store, def Reachability) (*Store, error) {
	if !def.Valid() {
		return nil, fmt.Errorf("%w: default %q", ErrInvalid, def)
	}
	if err := st.Migrate(ctx, Schema); err != nil {
		return nil, fmt.Errorf("consent: migrate: %w", err)
	}
	return &Store{st: st, def: def, now: time.Now}, nil
}

// Default is the organisation's default setting.
func (s *Store) Default() Reachability { return s.def }

// Reachability returns u's setting and whether it is u's own (false: the organisation's default).
func (s *Store) Reachability(ctx context.Context, u event.UserURI) (Reachability, bool, error) {
	var v string
	err := s.st.QueryRowContext(ctx, `SELECT setting FROM consent_reachability WHERE user_uri = ?`, string(u)).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return s.def, false, nil
	case err != nil:
		return "", false, fmt.Errorf("consent: reachability of %s: %w", u, err)
	}
	r := Reachability(v)
	if !r.Valid() {
		return s.def, false, nil // a value of a newer version: the default applies
	}
	return r, true, nil
}

// SetReachability stores u's own setting; "" removes it (the default applies again).
func (s *Store) SetReachability(ctx context.Context, u event.UserURI, r Reachability) error {
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var err error
	switch {
	case r == "":
		_, err = s.st.ExecContext(ctx, `DELETE FROM consent_reachability WHERE user_uri = ?`, string(u))
	case !r.Valid():
		return fmt.Errorf("%w: %q", ErrInvalid, r)
	default:
		_, err = s.st.ExecContext(ctx, `INSERT INTO consent_reachability (user_uri, setting, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (user_uri) DO UPDATE SET setting = excluded.setting, updated_at = excluded.updated_at`,
			string(u), string(r), s.now().UnixMilli())
	}
	if err != nil {
		return fmt.Errorf("consent: set reachability of %s: %w", u, err)
	}
	return nil
}

// Grant records that target accepts contact from requester (idempotent); her requests from
// requester are Granted.
func (s *Store) Grant(ctx context.Context, target, requester event.UserURI) error {
	if err := checkUsers(requester, target); err != nil {
		return err
	}
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `INSERT INTO consent_grants (target, requester, granted_at) VALUES (?, ?, ?)
			ON CONFLICT (target, requester) DO NOTHING`, string(target), string(requester), now.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE consent_requests SET state = ?, updated_at = ? WHERE requester = ? AND target = ? AND state <> ?`,
			string(Granted), now.UnixMilli(), string(requester), string(target), string(Granted))
		return err
	})
	if err != nil {
		return fmt.Errorf("consent: grant: %w", err)
	}
	return nil
}

// Granted reports whether target has accepted requester.
func (s *Store) Granted(ctx context.Context, target, requester event.UserURI) (bool, error) {
	var n int
	err := s.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_grants WHERE target = ? AND requester = ?`, string(target), string(requester)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("consent: granted: %w", err)
	}
	return n > 0, nil
}

// Allows reports whether requester, a user of another organisation, may reach target (claim its
// KeyPackages, add it to a room): by target's setting, Partners allows anyone the caller let
// through (a configured partner's user), Consent only accepted requesters, Nobody nobody. A
// requester of target's own domain is always allowed.
func (s *Store) Allows(ctx context.Context, target, requester event.UserURI) (bool, error) {
	if requester.Domain() == target.Domain() {
		return true, nil
	}
	r, _, err := s.Reachability(ctx, target)
	if err != nil {
		return false, err
	}
	switch r {
	case Partners:
		return true, nil
	case Consent:
		return s.Granted(ctx, target, requester)
	}
	return false, nil
}
