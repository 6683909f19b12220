package matrix

import (
	"context"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// HandleNotice implements bridges.NoticeHandler: the user who caused a failure is told in the
// room, by the bot (appservice) or the functional account (client mode), with an m.notice in
// the configured language that mentions them (a notice about a partner's reachability concerns
// the whole room and mentions nobody), answers the failed message when the notice names it and
// ends with the correlation ID. After a failed invite the invitee's ghost leaves the portal, so that
// the room does not show them as a member.
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
		if a.isLocal(env.Sender) && bridges.NoticeIsPersonal(n.Code) {
			c.Mentions.UserIDs = []id.UserID{a.matrixUser(env.Sender)} // notify the person it is for
		}
		sent, err := o.send(ctx, mevent.EventMessage, c)
		if err != nil {
			return "", err
		}
		a.log.Info("notice shown", "room_id", string(o.room), "code", n.Code.String(), "correlation", n.Correlation)
		if n.Code == event.NoticeInviteFailed && n.Target != "" && !a.isLocal(n.Target) && a.cfg.Mode == ModeAppservice {
			ghost := a.ghosts.UserID(n.Target)
			if _, err := a.as.Intent(ghost).LeaveRoom(ctx, o.room); ignoreHTTP(err, "M_FORBIDDEN", "M_NOT_FOUND") != nil {
				a.log.Warn("the ghost of a failed invite could not leave the portal", "room_id", string(o.room), "ghost", string(ghost), "error", err)
			}
		}
		return sent, nil
	})
}
