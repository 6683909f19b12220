package matrix

import (
	"context"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/membership"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// HandleNotice implements bridges.NoticeHandler: the user who caused a failure is told in the
// room, by the bot (appservice) or the functional account (client mode), with an m.notice in
// the configured language that mentions them (a notice about a partner's reachability concerns
// the whole room and mentions nobody), answers the failed message when the notice names it and
// ends with the correlation ID. After a failed invite the invitee's ghost leaves the portal, so that
// the room does not show them as a member, and the invite of a user of this homeserver is withdrawn
// (by the gateway where its account may, else the notice asks the inviter to).
func (a *Adapter) HandleNotice(ctx context.Context, ev *bridges.Event) error {
	env := ev.Envelope
	return a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		n := env.Notice
		var target string
		if n.Target != "" {
			target = displayNameOf(n.Target)
		}
		c := &mevent.MessageEventContent{MsgType: mevent.MsgNotice, Mentions: &mevent.Mentions{}}
		if n.Native != "" && env.Origin.Network == event.NetworkMatrix {
			c.RelatesTo = &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: id.EventID(n.Native)}}
		}
		c.Body = bridges.NoticeText(a.lang(), n, target, c.RelatesTo != nil)
		withdraw := n.Code == event.NoticeInviteFailed && n.Target != "" && a.isLocal(n.Target)
		if withdraw && !a.mayKick(ctx, o.room) { // the inviter withdraws it
			c.Body += " " + bridges.Say(a.lang(), bridges.PhraseWithdrawInvite, a.matrixUser(n.Target))
		}
		if a.isLocal(env.Sender) && bridges.NoticeIsPersonal(n.Code) {
			c.Mentions.UserIDs = []id.UserID{a.matrixUser(env.Sender)} // notify the person it is for
		}
		sent, err := o.send(ctx, mevent.EventMessage, c)
		if err != nil {
			return "", err
		}
		a.log.Info("notice shown", "room_id", string(o.room), "code", n.Code.String(), "correlation", n.Correlation)
		if withdraw && a.mayKick(ctx, o.room) {
			a.withdrawInvite(ctx, o.room, a.matrixUser(n.Target), n.Reason == "fixedMembership", c.Body)
		}
		if n.Code == event.NoticeInviteFailed && n.Target != "" && !a.isLocal(n.Target) && a.cfg.Mode == ModeAppservice {
			ghost := a.ghosts.UserID(n.Target)
			if _, err := a.as.Intent(ghost).LeaveRoom(ctx, o.room); membership.IgnoreHTTP(err, "M_FORBIDDEN", "M_NOT_FOUND") != nil {
				a.log.Warn("the ghost of a failed invite could not leave the portal", "room_id", string(o.room), "ghost", string(ghost), "error", err)
			}
		}
		return sent, nil
	})
}

// withdrawInvite removes u, a user of this homeserver whose invite MIMI refused, from room: her
// pending invite, and with joined also her membership (a 1:1 has fixed membership: she must not
// read it). A failure is logged.
func (a *Adapter) withdrawInvite(ctx context.Context, room id.RoomID, u id.UserID, joined bool, reason string) {
	m, err := a.stateStore.GetMember(ctx, room, u)
	if err != nil || (m.Membership != mevent.MembershipInvite && (!joined || m.Membership != mevent.MembershipJoin)) {
		return
	}
	if _, err := a.client.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: u, Reason: reason}); err != nil {
		a.log.Warn("the invite MIMI refused could not be withdrawn", "room_id", string(room), "user", string(u), "error", err)
	}
}

// mayKick reports whether the gateway's account may remove members from room.
func (a *Adapter) mayKick(ctx context.Context, room id.RoomID) bool {
	pl, err := a.stateStore.GetPowerLevels(ctx, room)
	return err == nil && pl != nil && pl.GetUserLevel(a.client.UserID) >= pl.Kick()
}
