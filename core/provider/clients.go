package provider

import (
	"context"
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
	b, err := dbOf(q).publicStateBytes(ctx, room, epoch)
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
	list, err := dbOf(q).clientRows(ctx, room)
	if err != nil {
		return nil, err
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
	r, ok, err := dbOf(q).clientRow(ctx, room, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s has no client in %s", ErrUnknownUser, u, room)
	}
	return r.decode(q, room, pub)
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
	written, err := dbOf(tx).casClientState(ctx, room, c.User, c.Version, g.Epoch(), st)
	if err != nil {
		return err
	}
	if !written {
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
	if err := dbOf(tx).putMemberStateRow(ctx, room, u, g.Epoch(), mem); err != nil {
		return err
	}
	if added {
		return dbOf(tx).prunePublicStates(ctx, room, g.Epoch())
	}
	return nil
}

// putPublicState stores the public state of g's epoch in room unless a client stored it before,
// and reports whether it did.
func putPublicState(ctx context.Context, tx *store.Tx, room event.RoomURI, g *mls.Group) (bool, error) {
	if stored, err := dbOf(tx).hasPublicState(ctx, room, g.Epoch()); err != nil || stored {
		return false, err
	}
	b, err := g.MarshalPublicState()
	if err != nil {
		return false, fmt.Errorf("provider: encode MLS public state: %w", err)
	}
	if err := dbOf(tx).insertPublicState(ctx, room, g.Epoch(), b); err != nil {
		return false, err
	}
	return true, nil
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
	if err := dbOf(tx).insertClientRow(ctx, room, u, g.Epoch(), st); err != nil {
		return err
	}
	return putMemberState(ctx, tx, room, u, g, mem)
}

func deleteClient(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI) error {
	if err := dbOf(tx).deleteClientRows(ctx, room, u); err != nil {
		return err
	}
	return dbOf(tx).prunePublicStates(ctx, room, ^uint64(0))
}
