package matrix

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// A management room is a 1:1 room of a local user with the gateway's own account (the bot in
// appservice mode, the functional account in client mode) that is not a portal: her commands
// (search, start, consent, reachability, help) are answered there, and requests for her consent
// are shown there. In appservice mode a user makes one by inviting the bot into a direct chat;
// in both modes the gateway makes one when a partner's user asks for her consent and she has
// none. Stored in the adapter's KV: "mgmt:room:<room>" = user, "mgmt:user:<user>" = room.

func mgmtRoomKey(r id.RoomID) string { return "mgmt:room:" + string(r) }
func mgmtUserKey(u id.UserID) string { return "mgmt:user:" + string(u) }

// mgmtUser returns the user whose management room r is, if it is one.
func (a *Adapter) mgmtUser(ctx context.Context, r id.RoomID) (id.UserID, bool, error) {
	e, err := a.st.KV(scopeKV).Get(ctx, mgmtRoomKey(r))
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("matrix: management room %s: %w", r, err)
	}
	return id.UserID(e.Value), true, nil
}

// putMgmt records r as u's management room.
func (a *Adapter) putMgmt(ctx context.Context, r id.RoomID, u id.UserID) error {
	return a.st.InTx(ctx, func(tx *store.Tx) error {
		kv := tx.KV(scopeKV)
		if _, err := kv.Put(ctx, mgmtRoomKey(r), []byte(u)); err != nil {
			return err
		}
		_, err := kv.Put(ctx, mgmtUserKey(u), []byte(r))
		return err
	})
}

// acceptMgmtInvite makes the bot join a direct chat a local user invited it to (appservice
// mode; in client mode every invite of the functional account makes a portal) and records it
// as her management room.
func (a *Adapter) acceptMgmtInvite(ctx context.Context, p *Parsed) error {
	uri, err := a.userURI(p.Sender)
	if err != nil || !a.isLocal(uri) {
		return a.markDone(ctx, string(p.ID))
	}
	bot := a.as.BotIntent()
	if err := bot.EnsureJoined(ctx, p.Room); err != nil {
		return transient(fmt.Errorf("matrix: bot joins the management room %s: %w", p.Room, err))
	}
	if _, err := bot.State(ctx, p.Room); err != nil {
		return transient(fmt.Errorf("matrix: state of %s: %w", p.Room, err))
	}
	if err := a.putMgmt(ctx, p.Room, p.Sender); err != nil {
		return transient(err)
	}
	a.log.Info("management room", "room_id", string(p.Room), "user", string(p.Sender))
	return a.markDone(ctx, string(p.ID))
}

// mgmtMessage answers a (decrypted) message in a management room: a command, or how to get
// help.
func (a *Adapter) mgmtMessage(ctx context.Context, p *Parsed) error {
	if a.isOwn(p.Sender) || p.Kind != event.KindMessage {
		return a.markDone(ctx, string(p.ID))
	}
	isCmd, err := a.command(ctx, "", p)
	if err != nil {
		return err
	}
	if !isCmd && p.Media == nil {
		lang := a.lang()
		if err := a.answer(ctx, p, bridges.Say(lang, bridges.PhraseUnknownCommand, truncate(p.Body, 32), a.commands.NameIn("help", lang))); err != nil {
			return err
		}
	}
	return a.markDone(ctx, string(p.ID))
}

// mgmtRoomFor returns u's management room, creating it (a direct chat of the gateway's account
// with her, encrypted when the adapter has E2EE) when she has none.
func (a *Adapter) mgmtRoomFor(ctx context.Context, u id.UserID) (id.RoomID, error) {
	e, err := a.st.KV(scopeKV).Get(ctx, mgmtUserKey(u))
	if err == nil {
		return id.RoomID(e.Value), nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	req := &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{u}, Name: "MIMI"}
	resp, err := a.createOwnRoom(ctx, req, a.crypto != nil)
	if err != nil {
		return "", fmt.Errorf("matrix: create a management room for %s: %w", u, err)
	}
	if err := a.putMgmt(ctx, resp.RoomID, u); err != nil {
		return "", err
	}
	return resp.RoomID, nil
}

// createOwnRoom creates a room as the gateway's own Matrix account: the bot in appservice mode,
// the functional account in client mode; encrypted (Megolm) from its first event when asked.
func (a *Adapter) createOwnRoom(ctx context.Context, req *mautrix.ReqCreateRoom, encrypted bool) (*mautrix.RespCreateRoom, error) {
	enc := &mevent.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}
	if encrypted {
		req.InitialState = append(req.InitialState, &mevent.Event{Type: mevent.StateEncryption, Content: mevent.Content{Parsed: enc}})
	}
	cli := a.client
	if a.cfg.Mode == ModeAppservice {
		cli = a.as.BotIntent().Client
	}
	resp, err := cli.CreateRoom(ctx, req)
	if err == nil && encrypted {
		a.stateStore.SetEncryptionEvent(ctx, resp.RoomID, enc)
	}
	return resp, err
}
