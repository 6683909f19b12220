package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Local users and their KeyPackage pools (keys.go): provider_users, provider_keypackages.

// userExists reports whether u has a signature key.
func (d db) userExists(ctx context.Context, u event.UserURI) (bool, error) {
	var n int
	if err := d.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_users WHERE user_uri = ?`, string(u)).Scan(&n); err != nil {
		return false, fmt.Errorf("provider: user %s: %w", u, err)
	}
	return n > 0, nil
}

// userRow is a stored user: network, cipher suite, sealed private and public signature key.
type userRow struct {
	network   string
	suite     int64
	priv, pub []byte
}

// insertUser stores u unless it exists (the first insert wins) and reports whether it did.
func (d db) insertUser(ctx context.Context, u event.UserURI, r userRow, now time.Time) (bool, error) {
	res, err := d.q.ExecContext(ctx, `INSERT INTO provider_users (user_uri, network, suite, sig_private, sig_public, created_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_uri) DO NOTHING`,
		string(u), r.network, r.suite, r.priv, r.pub, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("provider: insert user: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// userRow reads u; ok is false when u is unknown.
func (d db) userRow(ctx context.Context, u event.UserURI) (r userRow, ok bool, err error) {
	err = d.q.QueryRowContext(ctx, `SELECT network, suite, sig_private, sig_public FROM provider_users WHERE user_uri = ?`, string(u)).
		Scan(&r.network, &r.suite, &r.priv, &r.pub)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("provider: load user %s: %w", u, err)
	}
	return r, true, nil
}

// poolCounts counts u's unclaimed KeyPackages unexpired at now: one-time and last-resort.
func (d db) poolCounts(ctx context.Context, u event.UserURI, now time.Time) (oneTime, lastResort int, err error) {
	if err := d.q.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(CASE WHEN last_resort = 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN last_resort = 1 THEN 1 ELSE 0 END), 0)
		FROM provider_keypackages WHERE user_uri = ? AND claimed_at = 0 AND expires_at > ?`, string(u), now.UnixMilli()).Scan(&oneTime, &lastResort); err != nil {
		return 0, 0, fmt.Errorf("provider: count KeyPackages: %w", err)
	}
	return oneTime, lastResort, nil
}

// keyPackageRow is a stored KeyPackage: its encoding and sealed private keys.
type keyPackageRow struct {
	user        string
	enc, ip, ep []byte
	lastResort  bool
	expiresAt   int64 // Unix milliseconds
}

// insertKeyPackage stores a KeyPackage of user under refHex.
func (d db) insertKeyPackage(ctx context.Context, refHex string, r keyPackageRow) error {
	lr := 0
	if r.lastResort {
		lr = 1
	}
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_keypackages (ref, user_uri, key_package, init_private, enc_private, last_resort, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		refHex, r.user, r.enc, r.ip, r.ep, lr, r.expiresAt)
	if err != nil {
		return fmt.Errorf("provider: insert KeyPackage: %w", err)
	}
	return nil
}

// claimNextKeyPackage marks u's next unclaimed, unexpired KeyPackage claimed at now (one-time
// ones first) and returns its reference and encoding; ok is false when none is left.
func (d db) claimNextKeyPackage(ctx context.Context, u event.UserURI, now time.Time) (ref string, enc []byte, ok bool, err error) {
	ms := now.UnixMilli()
	err = d.q.QueryRowContext(ctx, `SELECT ref, key_package FROM provider_keypackages
		WHERE user_uri = ? AND claimed_at = 0 AND expires_at > ? ORDER BY last_resort, ref LIMIT 1`, string(u), ms).Scan(&ref, &enc)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, fmt.Errorf("provider: select KeyPackage: %w", err)
	}
	res, err := d.q.ExecContext(ctx, `UPDATE provider_keypackages SET claimed_at = ? WHERE ref = ? AND claimed_at = 0`, ms, ref)
	if err != nil {
		return "", nil, false, fmt.Errorf("provider: claim KeyPackage: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return "", nil, false, fmt.Errorf("provider: KeyPackage %s claimed concurrently", ref)
	}
	return ref, enc, true, nil
}

// boundClaimed deletes u's oldest claimed KeyPackages beyond keep.
func (d db) boundClaimed(ctx context.Context, u event.UserURI, keep int) error {
	var n int
	if err := d.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_keypackages WHERE user_uri = ? AND claimed_at <> 0`, string(u)).Scan(&n); err != nil {
		return fmt.Errorf("provider: count claimed KeyPackages: %w", err)
	}
	if n <= keep {
		return nil
	}
	rows, err := d.q.QueryContext(ctx, `SELECT ref FROM provider_keypackages WHERE user_uri = ? AND claimed_at <> 0
		ORDER BY claimed_at, ref LIMIT ?`, string(u), n-keep)
	if err != nil {
		return fmt.Errorf("provider: oldest claimed KeyPackages: %w", err)
	}
	var refs []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return err
		}
		refs = append(refs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range refs {
		if err := d.deleteKeyPackage(ctx, r); err != nil {
			return fmt.Errorf("provider: drop claimed KeyPackage: %w", err)
		}
	}
	return nil
}

// deleteKeyPackage deletes the KeyPackage refHex with its private keys.
func (d db) deleteKeyPackage(ctx context.Context, refHex string) error {
	_, err := d.q.ExecContext(ctx, `DELETE FROM provider_keypackages WHERE ref = ?`, refHex)
	return err
}

// pruneKeyPackages deletes KeyPackages claimed before claimedBefore and unclaimed ones expired
// before now, and returns how many it deleted.
func (d db) pruneKeyPackages(ctx context.Context, claimedBefore, now time.Time) (int64, error) {
	res, err := d.q.ExecContext(ctx, `DELETE FROM provider_keypackages WHERE (claimed_at <> 0 AND claimed_at < ?) OR (claimed_at = 0 AND expires_at < ?)`,
		claimedBefore.UnixMilli(), now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("provider: prune KeyPackages: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// keyPackageRow reads the KeyPackage refHex (claimed or not); ok is false when it is not ours.
func (d db) keyPackageRow(ctx context.Context, refHex string) (r keyPackageRow, ok bool, err error) {
	var lastResort int
	err = d.q.QueryRowContext(ctx, `SELECT user_uri, key_package, init_private, enc_private, last_resort FROM provider_keypackages WHERE ref = ?`,
		refHex).Scan(&r.user, &r.enc, &r.ip, &r.ep, &lastResort)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("provider: KeyPackage by ref: %w", err)
	}
	r.lastResort = lastResort == 1
	return r, true, nil
}
