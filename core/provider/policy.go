package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The room policy itself is core/room's (roles, capabilities, authorization); this file keeps
// the provider's errors and its reads of the participant index (roomstate.go).

// errNotAllowed is a policy refusal (notAllowed on the wire).
var errNotAllowed = errors.New("provider: not allowed by the room policy")

// errWrongEpoch is a handshake or message for another epoch than the room's.
type errWrongEpoch struct{ Current uint64 }

func (e *errWrongEpoch) Error() string {
	return fmt.Sprintf("provider: wrong epoch (room is at %d)", e.Current)
}

// followers returns the partner domains with active (not banned) participants in room.
func (p *Provider) followers(ctx context.Context, q store.Querier, r event.RoomURI) ([]event.Domain, error) {
	users, err := dbOf(q).activeParticipants(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("provider: followers: %w", err)
	}
	seen := map[event.Domain]bool{}
	var out []event.Domain
	for _, u := range users {
		d := u.Domain()
		if d != p.cfg.Domain && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}
