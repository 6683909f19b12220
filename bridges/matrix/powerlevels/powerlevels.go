// Package powerlevels maps MIMI room roles to Matrix power levels and back (docs/matrix.md
// "Roles"): pure functions over a room's m.room.power_levels content, used by bridges/matrix.
package powerlevels

import (
	"encoding/json"
	"slices"
	"strings"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Room roles ↔ Matrix power levels (docs/matrix.md "Roles"). A room's own power levels set the
// thresholds: a user who may kick or ban (the lower of the two levels, and above users_default)
// is an admin, a user at 100 or more (or at the admin level when that is 100 or more) is the
// owner, everyone else is regular.

// roleLevels returns the admin and owner thresholds of pl.
func roleLevels(pl *mevent.PowerLevelsEventContent) (admin, owner int) {
	admin = max(min(pl.Kick(), pl.Ban()), pl.UsersDefault+1)
	return admin, max(100, admin)
}

// RoleOf maps a power level to a room role under pl's thresholds.
func RoleOf(pl *mevent.PowerLevelsEventContent, level int) event.Role {
	admin, owner := roleLevels(pl)
	switch {
	case level >= owner:
		return event.RoleOwner
	case level >= admin:
		return event.RoleAdmin
	}
	return event.RoleRegular
}

// LevelOf is the power level that gives role under pl: the owner threshold, the level that
// may both kick and ban for an admin (below the owner threshold), users_default for a regular
// user. ok is false for roles that are not power levels (banned, none, unknown).
func LevelOf(pl *mevent.PowerLevelsEventContent, r event.Role) (level int, ok bool) {
	admin, owner := roleLevels(pl)
	switch r {
	case event.RoleOwner:
		return owner, true
	case event.RoleAdmin:
		l := max(pl.Kick(), pl.Ban(), admin)
		if l >= owner {
			l = max(owner-1, admin)
		}
		return l, true
	case event.RoleRegular:
		return pl.UsersDefault, true
	}
	return 0, false
}

// Changes returns the users whose role differs between prev (nil: none known; everyone had
// users_default) and now, in a stable order, with their new role. Only users listed in either
// users map are considered.
func Changes(prev, now *mevent.PowerLevelsEventContent) []Change {
	if prev == nil {
		prev = &mevent.PowerLevelsEventContent{UsersDefault: now.UsersDefault, KickPtr: now.KickPtr, BanPtr: now.BanPtr}
	}
	users := map[id.UserID]bool{}
	for u := range prev.Users {
		users[u] = true
	}
	for u := range now.Users {
		users[u] = true
	}
	var out []Change
	for u := range users {
		from, to := RoleOf(prev, prev.GetUserLevel(u)), RoleOf(now, now.GetUserLevel(u))
		if from != to {
			out = append(out, Change{User: u, Role: to})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(string(a.User), string(b.User)) })
	return out
}

// Change is a user's new role.
type Change struct {
	User id.UserID
	Role event.Role
}

// Decode reads power levels content; nil when it is not valid or names too many users.
func Decode(raw []byte) *mevent.PowerLevelsEventContent {
	var pl mevent.PowerLevelsEventContent
	if len(raw) == 0 || json.Unmarshal(raw, &pl) != nil || len(pl.Users) > mxevent.MaxPowerUsers {
		return nil
	}
	return &pl
}
