package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// erasureKey is the dedupe mark of a user's SelfRemove for erasure in one epoch of a room: a
// hash, so that the mark does not name the user.
func erasureKey(room event.RoomURI, u event.UserURI, epoch int64) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%d:%s;%d:%s;%d", len(room), room, len(u), u, epoch)))
	return "erase:" + hex.EncodeToString(h[:16])
}

// LeaveAll makes local user u leave every room it has a client in, by SelfRemove (the room's
// designated committer commits it; the room continues for the others), and returns in how many
// rooms u still is. A SelfRemove is proposed once per room and epoch; call again until none is
// left.
func (p *Provider) LeaveAll(ctx context.Context, u event.UserURI) (int, error) {
	in, err := p.db().memberships(ctx, u)
	if err != nil {
		return 0, err
	}
	for _, m := range in {
		key := erasureKey(m.room, u, m.epoch)
		if done, err := p.st.IsProcessed(ctx, outScope, key); err != nil || done {
			continue
		}
		unlock := p.lockRoom(m.room)
		err := p.proposeLeave(ctx, m.room, u, key)
		unlock()
		if err != nil {
			p.log.Warn("erasure: SelfRemove failed, retrying later", "room", m.room, "err", err)
		}
	}
	return len(in), nil
}

// EraseUser deletes what the provider's tables hold about local user u once it has left every
// room: its MLS identity, KeyPackages, participant entries and proposals naming it. It returns
// how many rows it deleted.
func EraseUser(ctx context.Context, st *store.Store, u event.UserURI) (int64, error) {
	var total int64
	for _, d := range []struct {
		table string
		key   []string
		where string
	}{
		{"provider_keypackages", []string{"ref"}, `user_uri = ?`},
		{"provider_participants", []string{"room", "user_uri"}, `user_uri = ?`},
		{"provider_proposals", []string{"id"}, `target = ?`},
		{"provider_clients", []string{"room", "user_uri"}, `user_uri = ?`},
		{"provider_users", []string{"user_uri"}, `user_uri = ?`},
	} {
		n, err := st.DeleteWhere(ctx, d.table, d.key, d.where, string(u))
		total += n
		if err != nil {
			return total, fmt.Errorf("provider: erase %s: %w", u, err)
		}
	}
	return total, nil
}
