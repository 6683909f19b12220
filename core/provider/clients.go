package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// A local user's MLS client in a room is stored in two parts (migration 0005): the epoch state
// in provider_client_epochs, written when a handshake message or a new epoch changes it, and the
// secret tree in provider_clients.state, written with every message the client sends or reads.
// provider_clients.version is the compare-and-set: every write moves it, and a write from a state
// loaded at another version fails with ErrConflict. Rows written before the split (split = 0)
// hold the whole state and are split when next saved.

// clientState is one local user's MLS client in one room, as loaded.
type clientState struct {
	User    event.UserURI
	Group   *mls.Group
	Version int64
	// split reports whether the stored state is in two parts; epochBytes is the size of the
	// stored epoch state (or of the whole state when not split), for the cache's accounting.
	split      bool
	epochBytes int
}

// clientColumns selects what decodeClient reads.
const clientColumns = `c.user_uri, c.version, c.split, c.state, e.state FROM provider_clients c
	LEFT JOIN provider_client_epochs e ON e.room = c.room AND e.user_uri = c.user_uri`

// decodeClient restores a client from the (sealed) columns of clientColumns.
func decodeClient(q store.Querier, room event.RoomURI, u string, v, split int64, st, epoch []byte) (*clientState, error) {
	c := &clientState{User: event.UserURI(u), Version: v, split: split == 1}
	st, err := q.Unseal(sealedClientState, st, string(room), u)
	if err == nil && c.split {
		epoch, err = q.Unseal(sealedClientEpoch, epoch, string(room), u)
	}
	if err != nil {
		return nil, fmt.Errorf("provider: MLS state of %s in %s: %w", u, room, err)
	}
	if c.split {
		c.Group, err = mls.LoadGroupParts(epoch, st)
		c.epochBytes = len(epoch)
	} else {
		c.Group, err = mls.LoadGroup(st)
		c.epochBytes = len(st)
	}
	if err != nil {
		return nil, fmt.Errorf("provider: load MLS state of %s in %s: %w", u, room, err)
	}
	return c, nil
}

func loadClients(ctx context.Context, q store.Querier, room event.RoomURI) ([]*clientState, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+clientColumns+` WHERE c.room = ? ORDER BY c.user_uri`, string(room))
	if err != nil {
		return nil, fmt.Errorf("provider: load clients: %w", err)
	}
	defer rows.Close()
	var out []*clientState
	for rows.Next() {
		var (
			u         string
			v, split  int64
			st, epoch []byte
		)
		if err := rows.Scan(&u, &v, &split, &st, &epoch); err != nil {
			return nil, fmt.Errorf("provider: scan client: %w", err)
		}
		c, err := decodeClient(q, room, u, v, split, st, epoch)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func loadClient(ctx context.Context, q store.Querier, room event.RoomURI, u event.UserURI) (*clientState, error) {
	var (
		us        string
		v, split  int64
		st, epoch []byte
	)
	err := q.QueryRowContext(ctx, `SELECT `+clientColumns+` WHERE c.room = ? AND c.user_uri = ?`, string(room), string(u)).
		Scan(&us, &v, &split, &st, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s has no client in %s", ErrUnknownUser, u, room)
	}
	if err != nil {
		return nil, fmt.Errorf("provider: load client: %w", err)
	}
	return decodeClient(q, room, us, v, split, st, epoch)
}

// ErrConflict is a lost compare-and-set on a client's state (another replica moved it).
var ErrConflict = errors.New("provider: MLS state changed concurrently")

// saveClient writes g as c's new state, both parts, if the stored state is still the one c was
// loaded from (compare-and-set on version and epoch: the epoch never goes back). Use it when a
// handshake message or a new epoch changed the state; saveRatchets after application messages.
func saveClient(ctx context.Context, tx *store.Tx, room event.RoomURI, c *clientState, g *mls.Group) error {
	epoch, err := g.MarshalEpochState()
	if err != nil {
		return fmt.Errorf("provider: encode MLS state: %w", err)
	}
	if err := casClient(ctx, tx, room, c, g); err != nil {
		return err
	}
	if err := putEpochState(ctx, tx, room, c.User, g.Epoch(), epoch); err != nil {
		return err
	}
	c.split, c.epochBytes = true, len(epoch)
	return nil
}

// saveRatchets writes c's secret tree after it sent or read application messages, which leave
// the epoch state as it is stored (compare-and-set as saveClient).
func saveRatchets(ctx context.Context, tx *store.Tx, room event.RoomURI, c *clientState) error {
	if !c.split {
		return saveClient(ctx, tx, room, c, c.Group)
	}
	return casClient(ctx, tx, room, c, c.Group)
}

// casClient writes g's secret tree and epoch in c's row and moves its version, if the row is
// still at c.Version.
func casClient(ctx context.Context, tx *store.Tx, room event.RoomURI, c *clientState, g *mls.Group) error {
	st, err := sealedSecretTree(tx, room, c.User, g)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `UPDATE provider_clients SET epoch = ?, version = version + 1, state = ?, split = 1
		WHERE room = ? AND user_uri = ? AND version = ? AND epoch <= ?`,
		int64(g.Epoch()), st, string(room), string(c.User), c.Version, int64(g.Epoch()))
	if err != nil {
		return fmt.Errorf("provider: save MLS state: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrConflict
	}
	c.Version++
	c.Group = g
	return nil
}

// sealedSecretTree encodes g's secret tree and seals it for u's row in room.
func sealedSecretTree(tx *store.Tx, room event.RoomURI, u event.UserURI, g *mls.Group) ([]byte, error) {
	st, err := g.MarshalSecretTree()
	if err != nil {
		return nil, fmt.Errorf("provider: encode MLS secret tree: %w", err)
	}
	if st, err = tx.Seal(sealedClientState, st, string(room), string(u)); err != nil {
		return nil, fmt.Errorf("provider: seal MLS secret tree: %w", err)
	}
	return st, nil
}

// putEpochState seals and writes u's epoch state in room.
func putEpochState(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI, epoch uint64, state []byte) error {
	state, err := tx.Seal(sealedClientEpoch, state, string(room), string(u))
	if err != nil {
		return fmt.Errorf("provider: seal MLS epoch state: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO provider_client_epochs (room, user_uri, epoch, state) VALUES (?, ?, ?, ?)
		ON CONFLICT (room, user_uri) DO UPDATE SET epoch = excluded.epoch, state = excluded.state`,
		string(room), string(u), int64(epoch), state)
	if err != nil {
		return fmt.Errorf("provider: save MLS epoch state: %w", err)
	}
	return nil
}

func insertClient(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI, g *mls.Group) error {
	epoch, err := g.MarshalEpochState()
	if err != nil {
		return fmt.Errorf("provider: encode MLS state: %w", err)
	}
	st, err := sealedSecretTree(tx, room, u, g)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO provider_clients (room, user_uri, epoch, version, state, split) VALUES (?, ?, ?, 1, ?, 1)`,
		string(room), string(u), int64(g.Epoch()), st)
	if err != nil {
		return fmt.Errorf("provider: insert client: %w", err)
	}
	return putEpochState(ctx, tx, room, u, g.Epoch(), epoch)
}

func deleteClient(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM provider_client_epochs WHERE room = ? AND user_uri = ?`, string(room), string(u)); err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM provider_clients WHERE room = ? AND user_uri = ?`, string(room), string(u)); err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	return nil
}
