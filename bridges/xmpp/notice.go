package xmpp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// langOf is the language of notices to a local user: their client's, else the configured one.
func (a *Adapter) langOf(user jid.JID) bridges.Language {
	return a.langs.Of(user.Bare().String(), a.cfg.Language)
}

// HandleNotice implements bridges.NoticeHandler: the local user who caused a failure is told in
// words, in their client's language: in a room where they are present, by a message of the room
// itself to their resources (a partner's reachability: to everyone present); otherwise (a 1:1 chat, or nobody present) by a chat message from the
// gateway's own address (the users component) saying which conversation it is about, which the
// server stores for a user who is offline. After a failed invite the invitee leaves the room's
// occupant list.
func (a *Adapter) HandleNotice(ctx context.Context, ev *bridges.Event) error {
	env := ev.Envelope
	n := env.Notice
	if env.Sender.Domain() != a.cfg.Provider {
		return bus.Permanent(fmt.Errorf("xmpp: notice %s for %s, who is not a user of %s", env.ID, env.Sender, a.cfg.Provider))
	}
	user, err := a.m.UserJID(ctx, env.Sender)
	if err != nil {
		return bus.Permanent(fmt.Errorf("xmpp: notice %s: %w", env.ID, err))
	}
	r, err := a.db.portals().Room(ctx, env.Room)
	noRoom := errors.Is(err, portals.ErrNoRoom)
	if err != nil && !noRoom {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	if err := a.WaitConnected(wctx); err != nil {
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	lang := a.langOf(user)
	text := bridges.NoticeText(lang, n, "", false)
	sum := sha256.Sum256([]byte(env.ID))
	id := "notice-" + hex.EncodeToString(sum[:12])
	to := user.Bare().String()
	if !bridges.NoticeIsPersonal(n.Code) {
		to = "" // a partner's reachability concerns everyone in the room
	}
	sent, err := a.noticeInRoom(ctx, r, noRoom, to, id, text)
	if err != nil {
		return err
	}
	if !sent {
		if !noRoom {
			text = a.about(ctx, lang, r) + text
		}
		body := text
		if err := a.users.Send(ctx, &xstanza.OutMessage{From: a.cfg.Users.Domain, To: user.Bare().String(), Type: "chat", ID: id, Body: &body,
			Store: &xstanza.OutEmpty{}}); err != nil {
			return err
		}
	}
	if n.Native != "" && (n.Code == event.NoticeRefused || n.Code == event.NoticeUndelivered) && !noRoom {
		a.markFailed(ctx, r, user, n, text)
	}
	a.log.Info("notice sent", "code", n.Code.String(), "correlation", n.Correlation)
	if n.Code == event.NoticeInviteFailed && n.Target != "" && n.Target.Domain() != a.cfg.Provider && !noRoom && r.Kind == portals.KindMUC {
		roomJID, err := a.m.RoomJID(r.MUCLocal)
		if err != nil {
			return nil
		}
		return a.removeMember(ctx, r, roomJID, n.Target, false, 0)
	}
	return nil
}

// noticeInRoom sends text as a message of MUC r to the resources of the local user with the bare
// JID to that are in it (every occupant when to is empty); it reports false when there is no
// such room or resource.
func (a *Adapter) noticeInRoom(ctx context.Context, r portals.Room, noRoom bool, to, id, text string) (bool, error) {
	if noRoom || r.Kind != portals.KindMUC {
		return false, nil
	}
	roomJID, err := a.m.RoomJID(r.MUCLocal)
	if err != nil {
		return false, nil
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return false, err
	}
	sent := false
	for _, o := range occ {
		if to != "" && o.Bare != to {
			continue
		}
		body := text
		if err := a.rooms.Send(ctx, &xstanza.OutMessage{From: roomJID.String(), To: o.Full, Type: "groupchat", ID: id, Body: &body}); err != nil {
			return sent, err
		}
		sent = true
	}
	return sent, nil
}

// about names the conversation a notice sent outside it is about.
func (a *Adapter) about(ctx context.Context, lang bridges.Language, r portals.Room) string {
	if r.Kind == portals.KindDM {
		if c, err := a.db.portals().PairOf(ctx, r.URI); err == nil {
			return bridges.Say(lang, bridges.PhraseAboutChat, c.Peer.Local()+"@"+string(c.Peer.Domain())) + " "
		}
	}
	name := r.Name
	if name == "" {
		if j, err := a.m.RoomJID(r.MUCLocal); err == nil {
			name = j.String()
		}
	}
	return bridges.Say(lang, bridges.PhraseAboutRoom, name) + " "
}

// markFailed answers the user's own message in a room (Notice.Native) with a stanza error from the
// room to their resources in it, so their client marks that message as not delivered. (In a 1:1
// chat the gateway knows only the user's bare JID, and servers drop message errors sent to a bare
// JID, so there the notice message alone tells.)
func (a *Adapter) markFailed(ctx context.Context, r portals.Room, user jid.JID, n *event.Notice, text string) {
	id := string(n.Native)
	if !xstanza.ValidID(id) || r.Kind != portals.KindMUC {
		return
	}
	cond := stanza.NotAllowed
	if n.Code == event.NoticeUndelivered {
		cond = stanza.RemoteServerTimeout
	}
	roomJID, err := a.m.RoomJID(r.MUCLocal)
	if err != nil {
		return
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	for _, o := range occ {
		if o.Bare == user.Bare().String() {
			err = errors.Join(err, a.rooms.Send(ctx, &xstanza.OutMessage{From: roomJID.String(), To: o.Full, ID: id, Type: "error",
				Error: xstanza.StanzaError(stanza.Cancel, cond, text)}))
		}
	}
	if err != nil {
		a.log.Info("could not mark a message as failed", "err", err)
	}
}
