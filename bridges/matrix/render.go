package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/membership"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxmedia"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/sendonce"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// outbound is one MIMI → Matrix envelope being rendered.
type outbound struct {
	ev      *bridges.Event
	env     *event.Envelope
	msg     *content.Message // nil for kinds without content
	room    id.RoomID
	created bool            // the portal was created for this envelope
	sender  id.UserID       // ghost (appservice) or functional account (client)
	cli     *mautrix.Client // uploads
	send    func(ctx context.Context, t mevent.Type, c any) (id.EventID, error)
	redact  func(ctx context.Context, target id.EventID, reason string, extra map[string]any) (id.EventID, error)
}

// HandleMessage implements bridges.Adapter.
func (a *Adapter) HandleMessage(ctx context.Context, ev *bridges.Event) error {
	var shownIn id.RoomID // the portal render resolved, when it rendered
	if err := a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		shownIn = o.room
		return a.renderMessage(ctx, o)
	}); err != nil {
		return err
	}
	// The message is shown; its delivery report is best effort (receipts.go).
	if err := a.publishDelivered(ctx, ev.Envelope, shownIn); err != nil {
		a.log.Warn("delivery report not published", "event_id", string(ev.Envelope.ID), "error", err)
	}
	return nil
}

// HandleEdit implements bridges.EditHandler: an m.replace edit of the original event.
func (a *Adapter) HandleEdit(ctx context.Context, ev *bridges.Event) error {
	return a.render(ctx, ev, a.renderMessage)
}

// HandleDelete implements bridges.DeleteHandler: a redaction (in client mode with the reason
// naming who deleted, and the MSC4144 profile).
func (a *Adapter) HandleDelete(ctx context.Context, ev *bridges.Event) error {
	return a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		if o.msg.Replaces == nil {
			return "", bus.Permanent(fmt.Errorf("matrix: delete %s without replaces", o.env.ID))
		}
		target, err := native(o, o.ev.Replaces)
		if err != nil {
			return "", err
		}
		return a.redactAttributed(ctx, o, target)
	})
}

// redactAttributed redacts target; in client mode, where the functional account redacts for
// everyone, the reason says whose deletion it was.
func (a *Adapter) redactAttributed(ctx context.Context, o *outbound, target id.EventID) (id.EventID, error) {
	if a.cfg.Mode != ModeClient {
		return o.redact(ctx, target, "", nil)
	}
	p := profileOf(o.env.Sender)
	return o.redact(ctx, target, bridges.Say(a.lang(), bridges.PhraseDeletedBy, p.Displayname), map[string]any{profileKey: p})
}

// profileKey is the content key of an MSC4144 per-message profile.
const profileKey = "com.beeper.per_message_profile"

// profileOf is the MSC4144 per-message profile of a MIMI user relayed by the functional account.
func profileOf(u event.UserURI) *mevent.BeeperPerMessageProfile {
	name := displayNameOf(u)
	if utf8.RuneCountInString(name) > maxAttributionNameRunes {
		name = string([]rune(name)[:maxAttributionNameRunes])
	}
	return &mevent.BeeperPerMessageProfile{ID: string(u), Displayname: name}
}

// HandleReaction implements bridges.ReactionHandler: an m.annotation, or the redaction of the
// reaction an unreact replaces. In client mode, where every annotation would be the functional
// account's, a reaction is a notice in reply to the message naming who reacted with what (with
// the MSC4144 profile), and an unreact redacts that notice.
func (a *Adapter) HandleReaction(ctx context.Context, ev *bridges.Event) error {
	return a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		if _, null := o.msg.Body.Body.(content.NullPart); null {
			if o.msg.Replaces == nil {
				return "", bus.Permanent(fmt.Errorf("matrix: unreact %s without replaces", o.env.ID))
			}
			target, err := native(o, o.ev.Replaces)
			if err != nil {
				return "", err
			}
			return a.redactAttributed(ctx, o, target)
		}
		sp, ok := o.msg.Body.Body.(content.SinglePart)
		if !ok || o.msg.InReplyTo == nil || len(sp.Content) == 0 || len(sp.Content) > mxevent.MaxReactionKeySize || !utf8.Valid(sp.Content) {
			return "", bus.Permanent(fmt.Errorf("matrix: reaction %s is not a short text part in reply to a message", o.env.ID))
		}
		target, err := native(o, o.ev.InReplyTo)
		if err != nil {
			return "", err
		}
		if a.cfg.Mode == ModeClient {
			p := profileOf(o.env.Sender)
			return o.send(ctx, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgNotice,
				Body:      bridges.Say(a.lang(), bridges.PhraseReacted, p.Displayname, string(sp.Content)),
				RelatesTo: &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: target}}, BeeperPerMessageProfile: p,
				Mentions: &mevent.Mentions{}})
		}
		return o.send(ctx, mevent.EventReaction, &mevent.ReactionEventContent{RelatesTo: mevent.RelatesTo{
			Type: mevent.RelAnnotation, EventID: target, Key: string(sp.Content)}})
	})
}

// HandleReceipt implements bridges.ReceiptHandler: a "read" status report becomes a read receipt
// on the newest message it names: the reporting ghost's (appservice mode) or, in client mode,
// where partner users have no account, the functional account's (the partner's side has read up
// to there; the adapter never relays the functional account's own receipts back).
func (a *Adapter) HandleReceipt(ctx context.Context, ev *bridges.Event) error {
	return a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		var last id.EventID
		for _, s := range o.ev.Receipts {
			if s.Status == content.StatusRead {
				last = id.EventID(s.Target.NativeID)
			}
		}
		if last == "" {
			return "", nil
		}
		// Sent outside the room's order, only the latest per user (receipts.Queue, sendReceipt).
		return "", a.receipts.Put(ctx, o.room, o.sender, last)
	})
}

// sendReceipt sends user's read receipt: the functional account's (client mode), else a ghost's
// or the bot's.
func (a *Adapter) sendReceipt(ctx context.Context, room id.RoomID, user id.UserID, ev id.EventID) error {
	if a.cfg.Mode == ModeClient {
		return a.client.MarkRead(ctx, room, ev)
	}
	return a.as.Intent(user).MarkRead(ctx, room, ev)
}

// HandleMembership implements bridges.MembershipHandler: a role change is a power-level change
// (roles.go); in client mode the others are told as a notice, and in appservice mode
// membership.Portal shows them (invites, ghosts joining and leaving, kicks and bans).
func (a *Adapter) HandleMembership(ctx context.Context, ev *bridges.Event) error {
	return a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		m := o.env.Membership
		if m.Action == event.MembershipRole {
			return a.renderRole(ctx, o)
		}
		if a.cfg.Mode != ModeAppservice {
			// The functional account's rooms are managed by Matrix users; partner users have no
			// account there, so their coming and going is told as a notice.
			return a.memberNotice(ctx, o)
		}
		return "", membership.Portal{Room: o.room, Bot: a.as.BotIntent(), Ghost: a.as.Intent, IsGhost: a.ghosts.IsGhost, Join: a.ghostJoin}.
			Show(ctx, m, a.matrixUser(m.Target))
	})
}

// memberNotice tells a client-mode room that a partner user was added, left or was removed.
func (a *Adapter) memberNotice(ctx context.Context, o *outbound) (id.EventID, error) {
	m := o.env.Membership
	if a.isLocal(m.Target) {
		return "", nil // a user of this homeserver is invited and leaves natively
	}
	var p bridges.Phrase
	switch m.Action {
	case event.MembershipInvite, event.MembershipJoin:
		p = bridges.PhraseMemberAdded
	case event.MembershipLeave:
		p = bridges.PhraseMemberLeft
	case event.MembershipKick, event.MembershipBan:
		p = bridges.PhraseMemberRemoved
	default:
		return "", nil
	}
	return o.send(ctx, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgNotice,
		Body: bridges.Say(a.lang(), p, displayNameOf(m.Target)), Mentions: &mevent.Mentions{}})
}

// HandleRoomMetadata implements bridges.MetadataHandler: the portal's name and topic.
func (a *Adapter) HandleRoomMetadata(ctx context.Context, ev *bridges.Event) error {
	return a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		if a.cfg.Mode != ModeAppservice {
			return "", nil
		}
		md := o.env.Metadata
		bot := a.as.BotIntent()
		if md.Name != "" {
			if _, err := bot.SendStateEvent(ctx, o.room, mevent.StateRoomName, "", &mevent.RoomNameEventContent{Name: md.Name}); err != nil {
				return "", fmt.Errorf("matrix: room name: %w", err)
			}
		}
		if md.Topic != "" {
			if _, err := bot.SendStateEvent(ctx, o.room, mevent.StateTopic, "", &mevent.TopicEventContent{Topic: md.Topic}); err != nil {
				return "", fmt.Errorf("matrix: room topic: %w", err)
			}
		}
		return "", nil
	})
}

// CreatePortal implements bridges.PortalCreator: the portal of a MIMI room that a local user was
// added to (by a partner, or on another network of this gateway) is created if needed and the
// user, never a ghost of them, is invited: by the inviter's ghost or the bot (appservice), or by
// the functional account into a room it creates (client mode), with a notice saying who started
// the conversation.
func (a *Adapter) CreatePortal(ctx context.Context, ev *bridges.Event) error {
	env := ev.Envelope
	return a.render(ctx, ev, func(ctx context.Context, o *outbound) (id.EventID, error) {
		target := env.Sender
		if env.Membership != nil {
			target = env.Membership.Target
		}
		if !a.isLocal(target) {
			return "", bus.Permanent(fmt.Errorf("matrix: portal request %s for %s, who is not a user of %s", env.ID, target, a.cfg.ServerName))
		}
		user := a.matrixUser(target)
		var inviter event.UserURI
		if env.Sender != target {
			inviter = env.Sender
		}
		direct := env.Membership != nil && env.Membership.Direct
		if a.cfg.Mode == ModeClient {
			if err := membership.Invite(ctx, a.client, o.room, user, direct); membership.IgnoreHTTP(err, "M_FORBIDDEN") != nil {
				return "", fmt.Errorf("matrix: invite %s to %s: %w", user, o.room, err)
			}
			if !o.created {
				return "", nil // an existing conversation: the invitation says enough
			}
			text := bridges.Say(a.lang(), bridges.PhraseStarted, env.Room.Domain())
			if inviter != "" {
				text = bridges.Say(a.lang(), bridges.PhraseStartedBy, displayNameOf(inviter))
			}
			return o.send(ctx, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgNotice, Body: text})
		}
		by := a.as.BotIntent()
		if inviter != "" && !a.isLocal(inviter) {
			ghost := a.ghosts.UserID(inviter)
			if err := a.ghostJoin(ctx, ghost, o.room); err == nil {
				by = a.as.Intent(ghost)
			} else {
				a.log.Info("inviter's ghost could not join the portal; the bot invites", "room_id", string(o.room), "error", err)
			}
		}
		err := membership.Invite(ctx, by.Client, o.room, user, direct)
		if err != nil && by.UserID != a.botUserID() {
			err = membership.Invite(ctx, a.as.BotIntent().Client, o.room, user, direct)
		}
		return "", membership.IgnoreHTTP(err, "M_FORBIDDEN")
	})
}

// matrixUser is the Matrix user for a MIMI user: a local user of the homeserver, or a ghost.
func (a *Adapter) matrixUser(u event.UserURI) id.UserID {
	if a.isLocal(u) {
		return id.NewUserID(u.Local(), a.cfg.ServerName)
	}
	return a.ghosts.UserID(u)
}

// isLocal reports whether u is a user of this homeserver (mimi://<server name>/u/<localpart>):
// such a user is always invited as themselves and never gets a ghost.
func (a *Adapter) isLocal(u event.UserURI) bool {
	return string(u.Domain()) == strings.ToLower(a.cfg.ServerName)
}

// native returns the Matrix event of a resolved reference (bridges.Event), which must exist.
func native(o *outbound, m *idmap.Message) (id.EventID, error) {
	if m == nil {
		return "", bus.Permanent(fmt.Errorf("matrix: %s refers to a message that has no Matrix event in %s", o.env.ID, o.env.Room))
	}
	return id.EventID(m.NativeID), nil
}

// render runs the Matrix part of MIMI → Matrix after the core's shared steps (bridges.Core):
// portal and sender lookup; fn sends; the core then records the sent event (mapping, echo mark)
// with the envelope's dedupe mark.
func (a *Adapter) render(ctx context.Context, ev *bridges.Event, fn func(context.Context, *outbound) (id.EventID, error)) error {
	env := ev.Envelope
	kind := env.Kind.String()
	o := &outbound{ev: ev, env: env, msg: ev.Msg}
	var err error
	if o.room, o.created, err = a.portalFor(ctx, env); err != nil {
		return err
	}
	if o.room == "" {
		a.metrics.outbound.WithLabelValues(kind, "no_portal").Inc()
		a.log.Warn("nowhere to show a notice: no portal for its room", "mimi_room", string(env.Room), "event_id", string(env.ID))
		return nil
	}
	if a.cfg.Encryption.Require && env.Kind != event.KindMembership {
		if enc, err := a.stateStore.IsEncrypted(ctx, o.room); err != nil || !enc {
			a.metrics.outbound.WithLabelValues(kind, "unencrypted").Inc()
			return bus.Permanent(fmt.Errorf("matrix: portal %s is not encrypted, not posting %s (bridges.matrix.encryption.require)", o.room, env.ID))
		}
	}
	if err := a.bindSender(ctx, o); err != nil {
		return err
	}
	evID, err := fn(ctx, o)
	a.log.Debug("envelope rendered", "envelope", string(env.ID), "kind", kind, "room_id", string(o.room), "event_id", string(evID), "error", err)
	if err != nil {
		return err
	}
	if evID != "" {
		// Our own sends come back in transactions/sync: the core marks them so they are never relayed.
		ev.Sent(bridges.Native{Room: event.NativeRoomID(o.room), ID: event.NativeEventID(evID), Sender: event.NativeUserID(o.sender)})
	}
	return nil
}

// portalFor returns the portal room of env.Room. A portal request creates it: the bot's room
// (appservice) or the functional account's (client mode). A notice goes to the Matrix room the
// user acted in when it names one, and creates nothing: without a portal, o.room stays empty.
func (a *Adapter) portalFor(ctx context.Context, env *event.Envelope) (id.RoomID, bool, error) {
	if env.Kind == event.KindNotice && env.Notice.Code == event.NoticeConsentRequest && a.isLocal(env.Sender) {
		r, err := a.mgmt.For(ctx, a.matrixUser(env.Sender), a.createOwnRoom, a.crypto != nil) // asked outside any conversation (mgmtrooms)
		return r, false, err
	}
	if env.Kind == event.KindNotice && env.Origin.Network == event.NetworkMatrix && env.Origin.Room != "" {
		if _, ok, err := a.portals.ByMatrix(ctx, id.RoomID(env.Origin.Room)); err != nil || ok {
			return id.RoomID(env.Origin.Room), false, err
		}
	}
	room, ok, err := a.portals.ByMIMI(ctx, env.Room)
	if err != nil || ok || env.Kind == event.KindNotice {
		return room, false, err
	}
	if a.cfg.Mode != ModeAppservice && env.Kind != event.KindPortalRequest {
		return "", false, bus.Permanent(fmt.Errorf("matrix: no room for %s: in client mode a room is created by a Matrix user inviting the functional account or by a MIMI invite of a local user", env.Room))
	}
	req := &mautrix.ReqCreateRoom{
		Visibility: "private", Preset: "private_chat", Name: "MIMI: " + truncate(env.Room.Local(), 64),
		Topic:           string(env.Room),
		CreationContent: map[string]any{"m.federate": true},
	}
	if env.Kind == event.KindPortalRequest && env.Membership != nil && env.Membership.Direct && env.Sender != env.Membership.Target {
		req.Name = displayNameOf(env.Sender)
	}
	enc := *a.cfg.Encryption.Default
	resp, err := a.createOwnRoom(ctx, req, enc)
	if err != nil {
		return "", false, fmt.Errorf("matrix: create portal for %s: %w", env.Room, err)
	}
	if err := a.portals.Put(ctx, env.Room, resp.RoomID, enc); err != nil {
		return "", false, err
	}
	a.log.Info("portal room created", "mimi_room", string(env.Room), "room_id", string(resp.RoomID), "encrypted", enc)
	return resp.RoomID, true, nil
}

// ghostJoin registers the ghost, sets its profile and joins it to room (the bot invites it).
func (a *Adapter) ghostJoin(ctx context.Context, ghost id.UserID, room id.RoomID) error {
	if err := a.ensureGhost(ctx, ghost); err != nil {
		return err
	}
	if err := a.as.Intent(ghost).EnsureJoined(ctx, room); err != nil {
		return fmt.Errorf("matrix: ghost %s join %s: %w", ghost, room, err)
	}
	return nil
}

// bindSender sets who sends: the sender's ghost (appservice), or the gateway's own voice (the
// functional account in client mode; the bot for portal requests and notices, and for anything a
// user of this homeserver did elsewhere, since local users never get a ghost).
func (a *Adapter) bindSender(ctx context.Context, o *outbound) error {
	switch {
	case a.cfg.Mode == ModeClient:
		a.bindVia(o, a.client, a.client.UserID, a.client, false)
	case o.env.Kind == event.KindPortalRequest || o.env.Kind == event.KindNotice || a.isLocal(o.env.Sender):
		bot := a.as.BotIntent()
		a.bindVia(o, bot, bot.UserID, bot.Client, false)
	default:
		// Anyone else, including users of this gateway on another network (XMPP, whose domain
		// differs), speaks through a ghost.
		ghost := a.ghosts.UserID(o.env.Sender)
		if err := a.ghostJoin(ctx, ghost, o.room); err != nil {
			return err
		}
		intent := a.as.Intent(ghost)
		a.bindVia(o, intent, ghost, intent.Client, true)
	}
	return nil
}

// bindVia makes s send o's events as user (sendonce.Via); withTimestamp keeps the MIMI
// timestamp (appservices may set it).
func (a *Adapter) bindVia(o *outbound, s sendonce.Sender, user id.UserID, cli *mautrix.Client, withTimestamp bool) {
	o.sender, o.cli = user, cli
	v := &sendonce.Via{Guard: &a.sent, S: s, Client: cli, Room: o.room, User: user, Created: o.env.Timestamp, Timestamp: withTimestamp,
		Txn: "mimi." + strings.NewReplacer(":", "_").Replace(string(o.env.ID)), Encrypt: a.encryptFor}
	if a.crypto != nil {
		v.Decrypt = a.crypto.Decrypt // reads the gateway's own encrypted events
	}
	o.send, o.redact = v.Send, v.Redact
}

// displayNameOf is the name shown for a MIMI user: "local (domain)".
func displayNameOf(u event.UserURI) string {
	n := u.Local() + " (" + string(u.Domain()) + ")"
	if len(n) > maxDisplayNameLength {
		n = n[:maxDisplayNameLength]
	}
	return n
}

// renderMessage sends a message or an edit.
func (a *Adapter) renderMessage(ctx context.Context, o *outbound) (id.EventID, error) {
	c, err := a.messageContent(ctx, o)
	if err != nil {
		return "", err
	}
	if o.env.Kind == event.KindEdit {
		if o.msg.Replaces == nil {
			return "", bus.Permanent(fmt.Errorf("matrix: edit %s without replaces", o.env.ID))
		}
		target, err := native(o, o.ev.Replaces)
		if err != nil {
			return "", err
		}
		c.SetEdit(target)
	} else if o.ev.InReplyTo != nil {
		c.RelatesTo = &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: id.EventID(o.ev.InReplyTo.NativeID)}}
	}
	return o.send(ctx, mevent.EventMessage, c)
}

// messageContent renders the MIMI body as Matrix message content (mxcontent.FromMIMI) with its
// first encrypted external part as media; in client mode with per-message attribution.
func (a *Adapter) messageContent(ctx context.Context, o *outbound) (*mevent.MessageEventContent, error) {
	c, media := mxcontent.FromMIMI(o.msg, a.matrixUserOfLink)
	if media != nil {
		if err := a.attachMedia(ctx, o, c, media); err != nil {
			return nil, err
		}
	}
	if c.Body == "" && media == nil {
		return nil, bus.Permanent(fmt.Errorf("matrix: %s has nothing renderable", o.env.ID))
	}
	if a.cfg.Mode == ModeClient {
		mxcontent.Attribute(c, profileOf(o.env.Sender))
	}
	return c, nil
}

// attachMedia fetches an attachment from the asset store and uploads it to the homeserver,
// encrypted (m.file-style EncryptedFile) when the portal is encrypted.
func (a *Adapter) attachMedia(ctx context.Context, o *outbound, c *mevent.MessageEventContent, x *content.ExternalPart) error {
	if a.assets == nil {
		return bus.Permanent(fmt.Errorf("matrix: %s has an attachment but no asset store is configured", o.env.ID))
	}
	data, err := bridges.OpenAttachment(ctx, a.assets, o.env.Room, *x, int64(a.cfg.MaxMediaSize))
	if errors.Is(err, bridges.ErrTooLarge) {
		return bus.Permanent(fmt.Errorf("matrix: attachment exceeds %d bytes", a.cfg.MaxMediaSize))
	}
	if errors.Is(err, assets.ErrUnavailable) {
		// Expired, tampered, too large or not reachable by policy: the text still goes out.
		a.log.Info("attachment unavailable, message rendered without it", "event_id", o.env.ID, "err", err)
		name := x.Filename
		if name == "" {
			name = "attachment"
		}
		mxcontent.AddNote(c, bridges.Say(a.lang(), bridges.PhraseAttachmentUnavailable, name))
		return nil
	}
	if err != nil {
		return fmt.Errorf("matrix: %w", err)
	}
	enc, _ := a.stateStore.IsEncrypted(ctx, o.room)
	return mxmedia.Upload(ctx, o.cli, c, data, x.Filename, x.ContentType, enc)
}
