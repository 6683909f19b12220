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

// A local user's MLS client in a room is stored in three parts (migrations 0005, 0007): the
// public state of the room's epoch in provider_room_epochs, once for all local clients in that
// epoch; the client's member state (own keys and epoch secrets) in provider_client_epochs; both
// written only when a handshake message or a new epoch changes them; and its secret tree in
// provider_clients.state, written with every message the client sends or reads.
// provider_clients.version is the compare-and-set: every write moves it, and a write from a state
// loaded at another version fails with ErrConflict. Rows written in an earlier layout (split = 0:
// the whole state in provider_clients; shared = 0: a whole epoch state in provider_client_epochs)
// are read as they are and converted when next saved.

// clientState is one local user's MLS client in one room, as loaded.
type clientState struct {
	User    event.UserURI
	Group   *mls.Group
	Version int64
	// current reports whether the stored state is in the current layout (saveRatchets converts
	// others); memberBytes is the size of the stored member state (or of the larger whole state
	// of an earlier layout), for the cache's accounting.
	current     bool
	memberBytes int
	// framing remembers framed() for one group.
	framing struct {
		g  *mls.Group
		on bool
	}
}

// clientColumns selects what decodeClient reads.
const clientColumns = `c.user_uri, c.version, c.split, c.state, e.state, e.shared, e.epoch FROM provider_clients c
	LEFT JOIN provider_client_epochs e ON e.room = c.room AND e.user_uri = c.user_uri`

// clientRow is a row of clientColumns.
type clientRow struct {
	user          string
	version       int64
	split         int64
	state, member []byte
	shared, epoch sql.NullInt64
}

func (r *clientRow) scan(s interface{ Scan(...any) error }) error {
	return s.Scan(&r.user, &r.version, &r.split, &r.state, &r.member, &r.shared, &r.epoch)
}

// publicSource returns the public state of room's epoch (loadPublicState, or a cache of it).
type publicSource func(epoch uint64) (*mls.PublicGroup, error)

// decode restores the client of r (sealed columns) with the public states from pub.
func (r *clientRow) decode(q store.Querier, room event.RoomURI, pub publicSource) (*clientState, error) {
	split := r.split == 1
	c := &clientState{User: event.UserURI(r.user), Version: r.version, current: split && r.shared.Int64 == 1}
	st, err := q.Unseal(sealedClientState, r.state, string(room), r.user)
	var mem []byte
	if err == nil && split {
		mem, err = q.Unseal(sealedClientEpoch, r.member, string(room), r.user)
	}
	if err != nil {
		return nil, fmt.Errorf("provider: MLS state of %s in %s: %w", r.user, room, err)
	}
	switch {
	case !split:
		c.Group, err = mls.LoadGroup(st)
		c.memberBytes = len(st)
	case r.shared.Int64 == 1:
		var pg *mls.PublicGroup
		if pg, err = pub(uint64(r.epoch.Int64)); err == nil {
			c.Group, err = mls.LoadMember(pg, mem, st)
		}
		c.memberBytes = len(mem)
	default:
		c.Group, err = mls.LoadGroupParts(mem, st)
		c.memberBytes = len(mem)
	}
	if err != nil {
		return nil, fmt.Errorf("provider: load MLS state of %s in %s: %w", r.user, room, err)
	}
	return c, nil
}

// loadPublicState reads the public state of room's epoch.
func loadPublicState(ctx context.Context, q store.Querier, room event.RoomURI, epoch uint64) (*mls.PublicGroup, int, error) {
	var b []byte
	err := q.QueryRowContext(ctx, `SELECT state FROM provider_room_epochs WHERE room = ? AND epoch = ?`, string(room), int64(epoch)).Scan(&b)
	if err != nil {
		return nil, 0, fmt.Errorf("provider: public state of %s in epoch %d: %w", room, epoch, err)
	}
	pg, err := mls.LoadPublicGroup(b)
	if err != nil {
		return nil, 0, fmt.Errorf("provider: public state of %s in epoch %d: %w", room, epoch, err)
	}
	return pg, len(b), nil
}

// publicsOnce loads each public state of room once (for the clients of one query).
func publicsOnce(ctx context.Context, q store.Querier, room event.RoomURI) publicSource {
	seen := map[uint64]*mls.PublicGroup{}
	return func(epoch uint64) (*mls.PublicGroup, error) {
		if pg, ok := seen[epoch]; ok {
			return pg, nil
		}
		pg, _, err := loadPublicState(ctx, q, room, epoch)
		if err == nil {
			seen[epoch] = pg
		}
		return pg, err
	}
}

func loadClients(ctx context.Context, q store.Querier, room event.RoomURI) ([]*clientState, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+clientColumns+` WHERE c.room = ? ORDER BY c.user_uri`, string(room))
	if err != nil {
		return nil, fmt.Errorf("provider: load clients: %w", err)
	}
	var list []clientRow
	for rows.Next() {
		var r clientRow
		if err := r.scan(rows); err != nil {
			rows.Close()
			return nil, fmt.Errorf("provider: scan client: %w", err)
		}
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("provider: load clients: %w", err)
	}
	pub := publicsOnce(ctx, q, room)
	out := make([]*clientState, 0, len(list))
	for i := range list {
		c, err := list[i].decode(q, room, pub)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func loadClient(ctx context.Context, q store.Querier, room event.RoomURI, u event.UserURI) (*clientState, error) {
	return loadClientWith(ctx, q, room, u, publicsOnce(ctx, q, room))
}

func loadClientWith(ctx context.Context, q store.Querier, room event.RoomURI, u event.UserURI, pub publicSource) (*clientState, error) {
	var r clientRow
	err := r.scan(q.QueryRowContext(ctx, `SELECT `+clientColumns+` WHERE c.room = ? AND c.user_uri = ?`, string(room), string(u)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s has no client in %s", ErrUnknownUser, u, room)
	}
	if err != nil {
		return nil, fmt.Errorf("provider: load client: %w", err)
	}
	return r.decode(q, room, pub)
}

// hasClient reports whether u has a client in room.
func hasClient(ctx context.Context, q store.Querier, room event.RoomURI, u event.UserURI) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_clients WHERE room = ? AND user_uri = ?`, string(room), string(u)).Scan(&n); err != nil {
		return false, fmt.Errorf("provider: client of %s: %w", u, err)
	}
	return n > 0, nil
}

// ErrConflict is a lost compare-and-set on a client's state (another replica moved it).
var ErrConflict = errors.New("provider: MLS state changed concurrently")

// saveClient writes g as c's new state, all parts, if the stored state is still the one c was
// loaded from (compare-and-set on version and epoch: the epoch never goes back). Use it when a
// handshake message or a new epoch changed the state; saveRatchets after application messages.
func saveClient(ctx context.Context, tx *store.Tx, room event.RoomURI, c *clientState, g *mls.Group) error {
	mem, err := g.MarshalMemberState()
	if err != nil {
		return fmt.Errorf("provider: encode MLS state: %w", err)
	}
	if err := casClient(ctx, tx, room, c, g); err != nil {
		return err
	}
	if err := putMemberState(ctx, tx, room, c.User, g, mem); err != nil {
		return err
	}
	c.current, c.memberBytes = true, len(mem)
	return nil
}

// saveRatchets writes c's secret tree after it sent or read application messages, which leave
// the epoch state as it is stored (compare-and-set as saveClient).
func saveRatchets(ctx context.Context, tx *store.Tx, room event.RoomURI, c *clientState) error {
	if !c.current {
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

// putMemberState seals and writes u's member state in room, and the public state of g's epoch
// unless it is stored already.
func putMemberState(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI, g *mls.Group, mem []byte) error {
	added, err := putPublicState(ctx, tx, room, g)
	if err != nil {
		return err
	}
	mem, err = tx.Seal(sealedClientEpoch, mem, string(room), string(u))
	if err != nil {
		return fmt.Errorf("provider: seal MLS member state: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO provider_client_epochs (room, user_uri, epoch, state, shared) VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (room, user_uri) DO UPDATE SET epoch = excluded.epoch, state = excluded.state, shared = 1`,
		string(room), string(u), int64(g.Epoch()), mem)
	if err != nil {
		return fmt.Errorf("provider: save MLS member state: %w", err)
	}
	if added {
		return prunePublicStates(ctx, tx, room, g.Epoch())
	}
	return nil
}

// putPublicState stores the public state of g's epoch in room unless a client stored it before,
// and reports whether it did.
func putPublicState(ctx context.Context, tx *store.Tx, room event.RoomURI, g *mls.Group) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_room_epochs WHERE room = ? AND epoch = ?`, string(room), int64(g.Epoch())).Scan(&n); err != nil {
		return false, fmt.Errorf("provider: public state: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	b, err := g.MarshalPublicState()
	if err != nil {
		return false, fmt.Errorf("provider: encode MLS public state: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO provider_room_epochs (room, epoch, state) VALUES (?, ?, ?)`, string(room), int64(g.Epoch()), b); err != nil {
		return false, fmt.Errorf("provider: save MLS public state: %w", err)
	}
	return true, nil
}

// prunePublicStates deletes room's public states that no client refers to, except keep's.
func prunePublicStates(ctx context.Context, tx *store.Tx, room event.RoomURI, keep uint64) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM provider_room_epochs WHERE room = ? AND epoch <> ?
		AND epoch NOT IN (SELECT epoch FROM provider_client_epochs WHERE room = ? AND shared = 1)`, string(room), int64(keep), string(room))
	if err != nil {
		return fmt.Errorf("provider: prune public states: %w", err)
	}
	return nil
}

// insertClient stores u's new client in room (room lock held).
func (p *Provider) insertClient(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI, g *mls.Group) error {
	p.nets.forget(room)
	return insertClient(ctx, tx, room, u, g)
}

// deleteClient deletes u's client in room (room lock held).
func (p *Provider) deleteClient(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI) error {
	p.nets.forget(room)
	return deleteClient(ctx, tx, room, u)
}

func insertClient(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI, g *mls.Group) error {
	mem, err := g.MarshalMemberState()
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
	return putMemberState(ctx, tx, room, u, g, mem)
}

func deleteClient(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM provider_client_epochs WHERE room = ? AND user_uri = ?`, string(room), string(u)); err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM provider_clients WHERE room = ? AND user_uri = ?`, string(room), string(u)); err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	return prunePublicStates(ctx, tx, room, ^uint64(0))
}
