package room

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// Updater is the mls.AppDataUpdater of MIMI rooms: participant_list updates are deltas applied
// in commit order (Apply, and no user touched twice across them); room_metadata is replaced by
// its single update; roles_list and base_room_policy are replaced (the last update wins); any other component is
// replaced like mls.ReplaceAppData does. Every value is validated by its decoder.
type Updater struct{}

var _ mls.AppDataUpdater = Updater{}

// ApplyAppData implements mls.AppDataUpdater.
func (Updater) ApplyAppData(id mls.ComponentID, current []byte, present bool, updates [][]byte) ([]byte, error) {
	switch id {
	case ComponentParticipantList:
		cur := &ParticipantList{}
		if present {
			var err error
			if cur, err = DecodeParticipantList(current); err != nil {
				return nil, err
			}
		}
		next, _, err := applyUpdates(cur, updates)
		if err != nil {
			return nil, err
		}
		return next.Encode()
	case ComponentRoomMetadata:
		if len(updates) != 1 {
			return nil, fmt.Errorf("%w: %d room_metadata updates in one commit (at most one)", ErrInvalid, len(updates))
		}
		if _, err := DecodeMetadata(updates[0]); err != nil {
			return nil, err
		}
	case ComponentRolesList:
		for _, u := range updates {
			if _, err := DecodeRoles(u); err != nil {
				return nil, err
			}
		}
	case ComponentBaseRoomPolicy:
		for _, u := range updates {
			if _, err := DecodeBasePolicy(u); err != nil {
				return nil, err
			}
		}
	}
	return mls.ReplaceAppData{}.ApplyAppData(id, current, present, updates)
}

// Change is what one commit did to one user's entry in the participant list: From is the role
// before (RoleNone: added), To the role after (RoleNone: removed).
type Change struct {
	User     event.UserURI
	From, To RoleIndex
}

// applyUpdates applies encoded ParticipantListUpdates in order and reports the change per user;
// a user touched by two updates makes the commit invalid (protocol-06 §7.5).
func applyUpdates(l *ParticipantList, updates [][]byte) (*ParticipantList, []Change, error) {
	var changes []Change
	touched := map[event.UserURI]bool{}
	for k, b := range updates {
		u, err := DecodeParticipantListUpdate(b)
		if err != nil {
			return nil, nil, err
		}
		next, err := l.Apply(u)
		if err != nil {
			return nil, nil, fmt.Errorf("participant list update %d: %w", k, err)
		}
		var cs []Change
		for _, c := range u.Changed {
			p := l.Participants[c.Index]
			cs = append(cs, Change{User: p.User, From: p.Role, To: c.Role})
		}
		for _, i := range u.Removed {
			p := l.Participants[i]
			cs = append(cs, Change{User: p.User, From: p.Role})
		}
		for _, a := range u.Added {
			cs = append(cs, Change{User: a.User, To: a.Role})
		}
		for _, c := range cs {
			if touched[c.User] {
				return nil, nil, fmt.Errorf("%w: %s touched twice in one commit", ErrInvalid, c.User)
			}
			touched[c.User] = true
		}
		changes = append(changes, cs...)
		l = next
	}
	return l, changes, nil
}
