package matrix

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Management rooms: bridges/matrix/mgmtrooms.

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
	if err := a.mgmt.Put(ctx, p.Room, p.Sender); err != nil {
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
