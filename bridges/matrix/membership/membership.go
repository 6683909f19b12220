// Package membership shows MIMI membership changes in the Matrix adapter's portals: in an
// appservice portal a MIMI user's ghost joins and leaves, an invite of one of the homeserver's
// users is the bot's invite, and a kick or ban is the bot's kick or ban (a ghost leaves when the
// bot may not). It also holds the invitation of a user into a direct chat (is_direct), and the
// answers of the homeserver a membership change may meet and ignore (IgnoreHTTP).
package membership

import (
	"context"
	"errors"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Portal is an appservice portal room and who acts in it.
type Portal struct {
	Room    id.RoomID
	Bot     *appservice.IntentAPI
	Ghost   func(id.UserID) *appservice.IntentAPI                            // a ghost's intent
	IsGhost func(id.UserID) bool                                             // the user is one of the appservice's ghosts
	Join    func(ctx context.Context, ghost id.UserID, room id.RoomID) error // registers the ghost and joins it to room
}

// Show makes the membership change m of target (the Matrix user of m.Target) visible in the
// portal. Role changes are not membership changes here: they are power levels.
func (p Portal) Show(ctx context.Context, m *event.Membership, target id.UserID) error {
	switch m.Action {
	case event.MembershipInvite:
		if p.IsGhost(target) {
			return p.Join(ctx, target, p.Room)
		}
		_, err := p.Bot.InviteUser(ctx, p.Room, &mautrix.ReqInviteUser{UserID: target, Reason: m.Reason})
		return IgnoreHTTP(err, "M_FORBIDDEN")
	case event.MembershipJoin:
		if p.IsGhost(target) {
			return p.Join(ctx, target, p.Room)
		}
	case event.MembershipBan, event.MembershipKick:
		// A ban or kick shows as one when the bot may do it; else a ghost just leaves.
		var err error
		if m.Action == event.MembershipBan {
			_, err = p.Bot.BanUser(ctx, p.Room, &mautrix.ReqBanUser{UserID: target, Reason: m.Reason})
		} else {
			_, err = p.Bot.KickUser(ctx, p.Room, &mautrix.ReqKickUser{UserID: target, Reason: m.Reason})
		}
		if err == nil || !p.IsGhost(target) {
			return IgnoreHTTP(err, "M_FORBIDDEN")
		}
		_, err = p.Ghost(target).LeaveRoom(ctx, p.Room)
		return IgnoreHTTP(err, "M_FORBIDDEN")
	case event.MembershipLeave:
		if p.IsGhost(target) {
			_, err := p.Ghost(target).LeaveRoom(ctx, p.Room)
			return IgnoreHTTP(err, "M_FORBIDDEN")
		}
		_, err := p.Bot.KickUser(ctx, p.Room, &mautrix.ReqKickUser{UserID: target, Reason: m.Reason})
		return IgnoreHTTP(err, "M_FORBIDDEN")
	}
	return nil
}

// Invite invites user into room as cli. The invite into a 1:1 (direct) carries is_direct, so
// that the user's client shows the conversation as a direct chat.
func Invite(ctx context.Context, cli *mautrix.Client, room id.RoomID, user id.UserID, direct bool) error {
	if !direct {
		_, err := cli.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: user})
		return err
	}
	_, err := cli.SendStateEvent(ctx, room, mevent.StateMember, string(user), &mevent.MemberEventContent{Membership: mevent.MembershipInvite, IsDirect: true})
	return err
}

// IgnoreHTTP returns nil for a homeserver error with one of the Matrix error codes, else err.
func IgnoreHTTP(err error, codes ...string) error {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		for _, c := range codes {
			if he.RespError.ErrCode == c {
				return nil
			}
		}
	}
	return err
}
