package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/sendonce"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// CommandPrefix addresses the functional account in a room with other people ("!mimi invite
// bob@amt-b.example"). In a room with the functional account alone, commands need no prefix.
const CommandPrefix = "!mimi"

// initCommands registers the commands (their phrases in bridges/words.go): help and the
// people's commands (bridges.Commands), invite, start (a room created here) and report.
func (a *Adapter) initCommands() {
	a.commands = bridges.NewCommands(CommandPrefix, a.reach, a.log)
	a.commands.Register(bridges.CommandSpec{Name: "invite", Names: map[bridges.Language]string{bridges.German: "einladen"}, MinArgs: 1, MaxArgs: 1,
		Help: bridges.PhraseHelpInvite}, a.cmdInvite)
	a.commands.RegisterReach(map[string]bridges.CommandFunc{"start": a.cmdStart}) // search, start, consent, reachability
	a.commands.Register(bridges.ReportCommand(), a.cmdReport)
}

// command handles a message in a client-mode portal that is a command to the functional account:
// prefixed with CommandPrefix, or starting with a mention of the account, or, in a room where the
// sender is alone with the account, written exactly as a command. It answers in the room and
// reports true; an ordinary message gives false and is relayed.
func (a *Adapter) command(ctx context.Context, room event.RoomURI, p *Parsed) (bool, error) {
	if p.Media != nil || (p.MsgType != mevent.MsgText && p.MsgType != mevent.MsgNotice) {
		return false, nil
	}
	text := p.Body
	if p.ReplyTo != "" {
		text = mxcontent.StripReplyFallback(text)
	}
	text, addressed := mxcontent.WithoutMention(text, p.Mentions, a.client.UserID, a.cfg.Client.DisplayName)
	bare := addressed || a.aloneWith(ctx, p.Room, p.Sender)
	call := bridges.CommandCall{Lang: a.lang(), Room: room, Ref: string(p.ID), Native: p}
	call.User, _ = UserURIOf(p.Sender) // none: the commands that need it say they failed
	answer, res, err := a.commands.Answer(ctx, text, bare, "", call)
	if res == bridges.NotCommand || err != nil {
		return res != bridges.NotCommand, err
	}
	a.metrics.inbound.WithLabelValues("command").Inc()
	return true, a.answer(ctx, p, answer)
}

// aloneWith reports whether user and the functional account are the room's only members.
func (a *Adapter) aloneWith(ctx context.Context, room id.RoomID, user id.UserID) bool {
	members, err := a.stateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
	if err != nil || len(members) != 2 {
		return false
	}
	return (members[0] == user && members[1] == a.client.UserID) || (members[1] == user && members[0] == a.client.UserID)
}

// answer sends a command's answer as a notice in reply to the command.
func (a *Adapter) answer(ctx context.Context, p *Parsed, text string) error {
	return a.say(ctx, p.Room, p.ID, "", "cmd", text)
}

// say sends text as the gateway's m.notice into room: by the functional account (client mode) or
// the bot, encrypted where the room is, in reply to replyTo and mentioning mention when set. Its
// transaction ID is derived from purpose and replyTo, so a notice sent again after a retry is
// stored once.
func (a *Adapter) say(ctx context.Context, room id.RoomID, replyTo id.EventID, mention id.UserID, purpose, text string) error {
	c := &mevent.MessageEventContent{MsgType: mevent.MsgNotice, Body: text, Mentions: &mevent.Mentions{}}
	if replyTo != "" {
		c.RelatesTo = &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: replyTo}}
	}
	if mention != "" {
		c.Mentions.UserIDs = []id.UserID{mention}
	}
	t, enc, err := a.encryptFor(ctx, room, mevent.EventMessage, c)
	if err != nil {
		return transient(err)
	}
	sum := sha256.Sum256([]byte(purpose + "\x00" + string(replyTo)))
	txn := "mimi." + purpose + "." + hex.EncodeToString(sum[:12])
	var s sendonce.Sender = a.client
	if a.cfg.Mode == ModeAppservice {
		s = a.as.BotIntent()
	}
	if _, err := s.SendMessageEvent(ctx, room, t, enc, mautrix.ReqSendEvent{TransactionID: txn, DontEncrypt: true}); err != nil {
		return transient(fmt.Errorf("matrix: notice in %s: %w", room, err))
	}
	return nil
}

// cmdInvite adds a partner user to the room's MIMI room, as the sender's invite.
func (a *Adapter) cmdInvite(ctx context.Context, c *bridges.CommandCall) (string, error) {
	if c.Room == "" { // a management room: no conversation to invite into
		return bridges.Say(c.Lang, bridges.PhraseHelpStart), nil
	}
	arg := c.Args[0]
	target, err := a.addressURI(arg)
	if err != nil {
		return bridges.Say(c.Lang, bridges.PhraseInviteAddress, truncate(arg, 80)), nil
	}
	if a.isLocal(target) {
		return bridges.Say(c.Lang, bridges.PhraseInviteLocal, a.matrixUser(target)), nil
	}
	p, sender := c.Native.(*Parsed), c.User
	if sender == "" {
		a.log.Warn("command from a sender without a MIMI address", "event_id", string(p.ID))
		return bridges.Say(c.Lang, bridges.PhraseCommandFailed, p.ID), nil
	}
	m := &event.Membership{Action: event.MembershipInvite, Target: target, Direct: a.startsDirect(ctx, p)}
	env, err := a.core.Envelope(bridges.Outgoing{Kind: event.KindMembership, Room: c.Room, Sender: sender, Timestamp: p.Timestamp,
		Membership: m, Origin: originOf(p)})
	if err != nil {
		return bridges.Say(c.Lang, bridges.PhraseInviteAddress, truncate(arg, 80)), nil
	}
	if err := a.pub.PublishOut(ctx, env); err != nil {
		return "", transient(fmt.Errorf("matrix: publish invite %s: %w", p.ID, err))
	}
	a.metrics.inbound.WithLabelValues("published").Inc()
	return bridges.Say(c.Lang, bridges.PhraseInviting, displayNameOf(target)), nil
}

// startsDirect reports whether an invite command in p's room starts a 1:1: the sender invited the
// functional account into a direct chat (is_direct) and is still alone with it there, as an
// invite with is_direct does in appservice mode.
func (a *Adapter) startsDirect(ctx context.Context, p *Parsed) bool {
	if !a.aloneWith(ctx, p.Room, p.Sender) {
		return false
	}
	_, err := a.st.KV(scopeKV).Get(ctx, directKey(p.Room))
	return err == nil
}

// startKey is the KV key of the room a start command created.
func startKey(cmd id.EventID) string { return "start " + string(cmd) }

// directKey is the KV key that marks a room as a user's direct chat with the functional account.
func directKey(room id.RoomID) string { return "direct " + string(room) }

// addressURI reads the address a user wrote: a Matrix user ID (a ghost-style ID names the MIMI
// user it stands for), a matrix.to link, or what bridges.ParseAddress reads.
func (a *Adapter) addressURI(s string) (event.UserURI, error) {
	s = strings.TrimPrefix(s, "https://matrix.to/#/")
	if strings.HasPrefix(s, "@") {
		u, err := a.userURI(id.UserID(s))
		if err != nil {
			return "", fmt.Errorf("%w: %w", bridges.ErrAddress, err)
		}
		return u, nil
	}
	return bridges.ParseAddress(s)
}

// cmdStart starts a conversation with a partner's user: the functional account creates a room
// (encrypted when the adapter has E2EE), invites the sender, and the room reaches MIMI with the
// sender as its creator and the partner's user invited, as if the sender had invited her there.
func (a *Adapter) cmdStart(ctx context.Context, c *bridges.CommandCall) (string, error) {
	p, sender := c.Native.(*Parsed), c.User
	if sender == "" {
		return bridges.Say(c.Lang, bridges.PhraseCommandFailed, p.ID), nil
	}
	arg := c.Args[0]
	if strings.HasPrefix(arg, "@") || strings.HasPrefix(arg, "https://matrix.to/") {
		if u, err := a.addressURI(arg); err == nil {
			arg = string(u)
		}
	}
	target, answer := bridges.ResolveStart(ctx, a.reach, sender, arg, c.Lang)
	if answer != "" {
		return answer, nil
	}
	if a.isLocal(target) {
		return bridges.Say(c.Lang, bridges.PhraseInviteLocal, a.matrixUser(target)), nil
	}
	req := &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{p.Sender},
		Name: displayNameOf(target)}
	encrypted := a.crypto != nil
	// The room is created once per command event: a retry finds it (until the command is done:
	// relay deletes the key then).
	key := startKey(p.ID)
	var mx id.RoomID
	kv := a.st.KV(scopeKV)
	if e, err := kv.Get(ctx, key); err == nil {
		mx = id.RoomID(e.Value)
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", transient(err)
	} else {
		resp, err := a.createOwnRoom(ctx, req, encrypted)
		if err != nil {
			return "", transient(fmt.Errorf("matrix: create a room for start: %w", err))
		}
		mx = resp.RoomID
		if _, err := kv.Put(ctx, key, []byte(mx)); err != nil {
			return "", transient(err)
		}
	}
	room, err := RoomURIOf(a.cfg.GatewayDomain, mx)
	if err != nil {
		return "", err
	}
	if err := a.portals.Put(ctx, room, mx, encrypted); err != nil {
		return "", transient(err)
	}
	// No native event: the command is in another room, and notices about the invite are shown
	// in the new one.
	origin := event.Origin{Network: event.NetworkMatrix, Room: event.NativeRoomID(mx), Sender: event.NativeUserID(p.Sender)}
	for _, env := range []*event.Envelope{
		{ID: event.NewEventID(event.NetworkMatrix, event.NativeRoomID(mx), event.NativeEventID("start "+string(p.ID))),
			Kind: event.KindMembership, Room: room, Sender: sender, Timestamp: p.Timestamp, Origin: origin,
			Membership: &event.Membership{Action: event.MembershipJoin, Target: sender}},
		{ID: event.NewEventID(event.NetworkMatrix, event.NativeRoomID(mx), event.NativeEventID(p.ID)),
			Kind: event.KindMembership, Room: room, Sender: sender, Timestamp: p.Timestamp, Origin: origin,
			Membership: &event.Membership{Action: event.MembershipInvite, Target: target, Direct: true}},
	} {
		if err := a.pub.PublishOut(ctx, env); err != nil {
			return "", transient(fmt.Errorf("matrix: publish start %s: %w", p.ID, err))
		}
	}
	a.metrics.inbound.WithLabelValues("published").Inc()
	return bridges.Say(c.Lang, bridges.PhraseStarting, displayNameOf(target)), nil
}

// cmdReport reports the message the command answers (a partner's message in this portal) to the
// room's hub.
func (a *Adapter) cmdReport(ctx context.Context, c *bridges.CommandCall) (string, error) {
	p := c.Native.(*Parsed)
	if c.User == "" {
		return bridges.Say(c.Lang, bridges.PhraseCommandFailed, p.ID), nil
	}
	var mid []byte
	if p.ReplyTo != "" {
		id, err := a.lookup(ctx, p.Room, p.ReplyTo)
		if errors.Is(err, idmap.ErrNotFound) {
			return bridges.Say(c.Lang, bridges.PhraseNotReportable), nil
		}
		if err != nil {
			return "", transient(err)
		}
		mid = id[:]
	}
	answer, err := bridges.RunReport(ctx, a.reach, c.User, c.Room, mid, c.Command, c.Lang)
	if err != nil {
		a.log.Warn("report failed", "event_id", string(p.ID), "error", err)
		return bridges.Say(c.Lang, bridges.PhraseCommandFailed, p.ID), nil
	}
	return answer, nil
}

// mayBeCommand is a cheap first look at a message in an appservice portal: it starts with
// CommandPrefix or mentions the bot (command reads it properly).
func (a *Adapter) mayBeCommand(p *Parsed) bool {
	for _, u := range p.Mentions {
		if u == a.botUserID() {
			return true
		}
	}
	text := strings.TrimSpace(p.Body)
	if p.ReplyTo != "" {
		text = strings.TrimSpace(mxcontent.StripReplyFallback(text))
	}
	return len(text) >= len(CommandPrefix) && strings.EqualFold(text[:len(CommandPrefix)], CommandPrefix)
}
