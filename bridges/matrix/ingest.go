package matrix

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxmedia"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/txnbatch"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// errTransient marks failures that must not acknowledge the upstream event (bus or store down).
type errTransient struct{ err error }

func (e errTransient) Error() string { return e.err.Error() }
func (e errTransient) Unwrap() error { return e.err }

func transient(err error) error { return errTransient{err} }

// ingest handles one incoming Matrix event. It returns an error only when the event must be retried
// later (bus or store unavailable): the appservice then answers the transaction with an error, the
// sync loop does not advance its token. Malformed and irrelevant events are logged, counted and
// skipped.
func (a *Adapter) ingest(ctx context.Context, evt *mevent.Event) error {
	a.ingestMu.Lock()
	defer a.ingestMu.Unlock()
	return a.ingestLocked(ctx, evt)
}

func (a *Adapter) ingestLocked(ctx context.Context, evt *mevent.Event) error {
	p, err := parseEvent(evt)
	if err != nil {
		a.skip(ctx, evt, err)
		return nil
	}
	log := a.log.With("room_id", string(p.Room), "event_id", string(p.ID), "type", p.Type.Type)
	done, err := a.st.IsProcessed(ctx, scopeEvent, string(p.ID))
	if err != nil {
		return transient(fmt.Errorf("matrix: dedupe %s: %w", p.ID, err))
	}
	if done {
		a.metrics.inbound.WithLabelValues("duplicate").Inc()
		log.Debug("duplicate event skipped")
		return nil
	}
	if p.Type == mevent.StatePowerLevels {
		return a.ingestPowerLevels(ctx, p)
	}
	if p.Kind == event.KindMembership {
		return a.ingestMember(ctx, p)
	}
	if a.isOwn(p.Sender) {
		a.metrics.inbound.WithLabelValues("echo").Inc()
		return nil
	}
	room, ok, err := a.portals.ByMatrix(ctx, p.Room)
	if err != nil {
		return transient(err)
	}
	if !ok {
		if _, mgmt, err := a.mgmt.UserOf(ctx, p.Room); err != nil {
			return transient(err)
		} else if mgmt { // mgmt.go
			if err := txnbatch.Flush(ctx); err != nil {
				return err
			}
			if p.Encrypted {
				if p, err = a.decryptParsed(ctx, evt); p == nil {
					return err
				}
			}
			return a.mgmtMessage(ctx, p)
		}
		a.metrics.inbound.WithLabelValues("no_portal").Inc()
		log.Debug("event in a room that is not a portal skipped")
		return nil
	}
	if !p.Encrypted && a.cfg.Encryption.Require && (p.Kind.HasContent() || p.Kind == event.KindRoomMetadata) {
		a.metrics.inbound.WithLabelValues("unencrypted").Inc()
		log.Warn("event of an unencrypted room not bridged (bridges.matrix.encryption.require)")
		return a.markDone(ctx, string(p.ID))
	}
	if a.parking != nil {
		// An earlier event of the room waits for its room key: this one waits behind it.
		if held, err := a.parking.Holds(ctx, p.Room); err != nil {
			return transient(err)
		} else if held {
			if err := a.parking.Behind(ctx, evt); err != nil {
				return transient(err)
			}
			return nil
		}
	}
	if p.Encrypted {
		if p, err = a.decryptParsed(ctx, evt); p == nil {
			return err
		}
	}
	return a.relay(ctx, room, p)
}

// relay handles a (decrypted) event of a portal: a command to the functional account is answered,
// anything else is published as an envelope. Callers hold ingestMu.
func (a *Adapter) relay(ctx context.Context, room event.RoomURI, p *Parsed) error {
	// In appservice mode the bot is never alone with the user in a portal (the ghosts are
	// there): only messages that start with CommandPrefix or mention the bot are commands.
	if p.Kind == event.KindMessage && (a.cfg.Mode == ModeClient || a.mayBeCommand(p)) {
		if err := txnbatch.Flush(ctx); err != nil {
			return err
		}
		if isCommand, err := a.command(ctx, room, p); err != nil {
			return err
		} else if isCommand {
			if err := a.markDone(ctx, string(p.ID)); err != nil {
				return err
			}
			if _, err := a.st.KV(scopeKV).Delete(ctx, startKey(p.ID)); err != nil { // a start command's room, found (cmdStart)
				a.log.Warn("deleting a start command's key failed", "event_id", string(p.ID), "error", err)
			}
			return nil
		}
	}
	if !txnbatch.Plain(p) {
		// It refers to another event, maybe one in the transaction's batch: the batch's
		// mappings must be readable (txnbatch).
		if err := txnbatch.Flush(ctx); err != nil {
			return err
		}
	}
	env, err := a.toEnvelope(ctx, room, p)
	if err != nil {
		var te errTransient
		if errors.As(err, &te) {
			return err
		}
		a.skip(ctx, p.Event, err)
		return a.markDone(ctx, string(p.ID))
	}
	return a.publish(ctx, p, env)
}

// publish puts env on the bus, then records the ID mapping (a reaction also in the reaction
// table) and the dedupe mark together (bridges.Core.Publish).
func (a *Adapter) publish(ctx context.Context, p *Parsed, env *event.Envelope) error {
	rec := bridges.Record{Done: true, MapFirst: true} // a reply to it may come back at once
	if env.Kind.HasContent() && len(env.MessageID) > 0 {
		rec.Map = []bridges.MapID{{ID: event.NativeEventID(p.ID), Primary: true}}
	}
	if env.Kind == event.KindReaction && p.Kind == event.KindReaction {
		if msg, err := content.Decode(env.Content); err == nil {
			rec.React, rec.Target = p.ReactionKey, msg.InReplyTo
		}
	}
	if txnbatch.Add(ctx, p, env, rec, func() { a.published(p, env) }) {
		return nil // published with its transaction
	}
	if err := txnbatch.Flush(ctx); err != nil {
		return err
	}
	if err := a.core.Publish(ctx, env, rec); err != nil {
		return transient(fmt.Errorf("matrix: %s: %w", p.ID, err))
	}
	a.published(p, env)
	return nil
}

// published counts and logs the event p, published as env.
func (a *Adapter) published(p *Parsed, env *event.Envelope) {
	a.metrics.inbound.WithLabelValues("published").Inc()
	a.log.Debug("event published", "room_id", string(p.Room), "event_id", string(p.ID), "kind", env.Kind.String(), "envelope", string(env.ID),
		"message_id", hex.EncodeToString(env.MessageID))
}

func (a *Adapter) markDone(ctx context.Context, eventID string) error {
	if _, err := a.st.MarkProcessed(ctx, scopeEvent, eventID); err != nil {
		return transient(fmt.Errorf("matrix: mark %s: %w", eventID, err))
	}
	return nil
}

// skip logs and counts an event that is not relayed.
func (a *Adapter) skip(ctx context.Context, evt *mevent.Event, err error) {
	result, lvl := "ignored", slog.LevelDebug
	if errors.Is(err, ErrMalformed) {
		result, lvl = "malformed", slog.LevelWarn
	}
	a.metrics.inbound.WithLabelValues(result).Inc()
	a.log.LogAttrs(ctx, lvl, "matrix event skipped", slog.String("room_id", truncate(string(evt.RoomID), 80)),
		slog.String("event_id", truncate(string(evt.ID), 80)), slog.String("type", truncate(evt.Type.Type, 80)), slog.Any("error", err))
}

// lookup returns the MIMI message ID of a Matrix event.
func (a *Adapter) lookup(ctx context.Context, room id.RoomID, ev id.EventID) (*content.MessageID, error) {
	mid, ok, err := a.core.MessageOf(ctx, event.NativeRoomID(room), event.NativeEventID(ev), "")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, idmap.ErrNotFound
	}
	return &mid, nil
}

func toMessageID(b []byte) (*content.MessageID, error) {
	var id content.MessageID
	if len(b) != len(id) {
		return nil, fmt.Errorf("%w: stored message ID has %d bytes", ErrMalformed, len(b))
	}
	copy(id[:], b)
	return &id, nil
}

// toEnvelope maps a parsed Matrix event in a portal room to a canonical envelope.
func (a *Adapter) toEnvelope(ctx context.Context, room event.RoomURI, p *Parsed) (*event.Envelope, error) {
	sender, err := UserURIOf(p.Sender)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	envID := event.NewEventID(event.NetworkMatrix, event.NativeRoomID(p.Room), event.NativeEventID(p.ID))
	msg := &content.Message{Salt: a.core.Salt(envID)}
	ext := &msg.Extensions
	if err := errors.Join(ext.SetSenderURI(string(sender)), ext.SetRoomURI(string(room)), ext.SetSenderTimestamp(p.Timestamp),
		ext.SetExternalMessageID(content.ExternalID{ID: []byte(p.ID), URI: "matrix:roomid/" + strings.TrimPrefix(string(p.Room), "!")})); err != nil {
		return nil, fmt.Errorf("%w: extensions: %w", ErrMalformed, err)
	}
	kind := p.Kind
	notFound := func(what string, ev id.EventID, err error) error {
		if errors.Is(err, idmap.ErrNotFound) {
			return fmt.Errorf("%w: %s target %s is not a relayed message", ErrIgnored, what, ev)
		}
		return transient(err)
	}
	switch p.Kind {
	case event.KindMessage:
		if p.ReplyTo != "" {
			if b, err := a.lookup(ctx, p.Room, p.ReplyTo); err == nil {
				msg.InReplyTo = b
			} else if !errors.Is(err, idmap.ErrNotFound) {
				return nil, transient(err)
			}
		}
		if msg.Body, err = a.messageBody(ctx, p); err != nil {
			return nil, err
		}
	case event.KindEdit:
		if msg.Replaces, err = a.lookup(ctx, p.Room, p.Target); err != nil {
			return nil, notFound("edit", p.Target, err)
		}
		if msg.Body, err = a.messageBody(ctx, p); err != nil {
			return nil, err
		}
	case event.KindReaction:
		if msg.InReplyTo, err = a.lookup(ctx, p.Room, p.Target); err != nil {
			return nil, notFound("reaction", p.Target, err)
		}
		msg.Body = content.NestedPart{Disposition: content.DispReaction,
			Body: content.SinglePart{ContentType: content.TypePlain, Content: []byte(p.ReactionKey)}}
	case event.KindDelete:
		if msg.Replaces, err = a.lookup(ctx, p.Room, p.Target); err != nil {
			return nil, notFound("redaction", p.Target, err)
		}
		msg.Body = content.NestedPart{Disposition: content.DispRender, Body: content.NullPart{}}
		// A redacted reaction is an unreact: a null reaction part replacing the reaction, in
		// reply to the message it was on (content-08 §5, "unlike").
		if r, err := a.core.IDs().ReactionByMessageID(ctx, room, msg.Replaces[:]); err == nil {
			kind = event.KindReaction
			if msg.InReplyTo, err = toMessageID(r.Target); err != nil {
				return nil, err
			}
			msg.Body.Disposition = content.DispReaction
		} else if !errors.Is(err, idmap.ErrNotFound) {
			return nil, transient(err)
		}
	default:
		return nil, fmt.Errorf("%w: kind %s", ErrIgnored, p.Kind)
	}
	env, err := a.core.Envelope(bridges.Outgoing{ID: envID, Kind: kind, Room: room, Sender: sender, Timestamp: p.Timestamp, Msg: msg,
		Origin: originOf(p)})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return env, nil
}

// messageBody builds the MIMI body of a text or media message.
func (a *Adapter) messageBody(ctx context.Context, p *Parsed) (content.NestedPart, error) {
	text := mxcontent.TextPart(p, a.toMIMILink)
	if p.Media == nil {
		if text == nil {
			return content.NestedPart{}, fmt.Errorf("%w: empty message", ErrMalformed)
		}
		return *text, nil
	}
	ext, err := a.mediaPart(ctx, p)
	if err != nil {
		return content.NestedPart{}, err
	}
	if text == nil {
		return *ext, nil
	}
	return content.NestedPart{Disposition: content.DispRender, Body: content.MultiPart{Semantics: content.ProcessAll,
		Parts: []content.NestedPart{*text, *ext}}}, nil
}

// mediaPart downloads (and, for encrypted files, decrypts) a Matrix attachment, hands the plaintext
// to the asset store and returns the ExternalPart describing it.
func (a *Adapter) mediaPart(ctx context.Context, p *Parsed) (*content.NestedPart, error) {
	if a.assets == nil {
		return nil, fmt.Errorf("%w: media without an asset store", ErrIgnored)
	}
	m := p.Media
	data, err := mxmedia.Download(ctx, a.client, m, int64(a.cfg.MaxMediaSize))
	if errors.Is(err, mxmedia.ErrUnusable) {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err != nil {
		return nil, transient(err)
	}
	ct := m.MimeType
	if ct == "" {
		ct = "application/octet-stream"
	}
	owner, _ := UserURIOf(p.Sender) // only for erasure; a sender without a URI owns nothing
	x, err := bridges.StoreAttachment(ctx, a.assets, data, assets.Meta{ContentType: ct, Filename: m.Name, Owner: owner}, "")
	if err != nil {
		return nil, transient(fmt.Errorf("matrix: %w", err))
	}
	disp := content.DispAttachment
	if p.MsgType == mevent.MsgImage || p.MsgType == mevent.MsgVideo {
		disp = content.DispRender
	}
	return &content.NestedPart{Disposition: disp, Body: x}, nil
}
