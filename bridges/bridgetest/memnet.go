// Package bridgetest holds what adapter tests share: Memnet, a complete adapter for an in-memory
// chat network (the smallest adapter the portal core allows, and a model for a new one), and
// Conformance, the tests every adapter passes (text, reply, edit, reaction, delete, both ways).
package bridgetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// NetworkMem is the in-memory network's name on the bus.
const NetworkMem event.Network = "memnet"

// Post is one event on the in-memory network.
type Post struct {
	ID     string
	Room   string // the room: its MIMI room URI (Memnet bridges every room one to one)
	Sender string // a local user's name, or the MIMI URI of a partner's user
	Kind   event.Kind
	Text   string // a message's or edit's text, a reaction's key
	Target string // what an edit, reaction or delete refers to; what a message replies to
}

// Config configures a Memnet adapter.
type Config struct {
	// Domain is the MIMI domain of the network's users (mimi://<Domain>/u/<name>).
	Domain string
}

// Memnet is the in-memory network and its adapter in one.
type Memnet struct {
	cfg   Config
	core  *bridges.Core
	mu    sync.Mutex
	posts []Post
	seq   int
	ready bool
}

var (
	_ bridges.Adapter         = (*Memnet)(nil)
	_ bridges.EditHandler     = (*Memnet)(nil)
	_ bridges.DeleteHandler   = (*Memnet)(nil)
	_ bridges.ReactionHandler = (*Memnet)(nil)
)

// New returns the adapter; it migrates the idmap tables.
func New(ctx context.Context, cfg Config, deps bridges.Deps) (*Memnet, error) {
	if cfg.Domain == "" || deps.Store == nil || deps.Bus == nil {
		return nil, errors.New("memnet: domain, store and bus are required")
	}
	if err := deps.Store.Migrate(ctx, idmap.Schema); err != nil {
		return nil, fmt.Errorf("memnet: migrate: %w", err)
	}
	m := &Memnet{cfg: cfg}
	m.core = bridges.NewCore(bridges.CoreConfig{Network: NetworkMem, Store: deps.Store, Bus: deps.Bus,
		Processed: store.Scope("memnet.in"), SaltLabel: "memnet:"})
	m.core.SetSaltKey([]byte("memnet test salt key"))
	return m, nil
}

// Network implements bridges.Adapter.
func (m *Memnet) Network() event.Network { return NetworkMem }

// Core implements bridges.Adapter.
func (m *Memnet) Core() *bridges.Core { return m.core }

// Start implements bridges.Adapter.
func (m *Memnet) Start(context.Context) error { m.mu.Lock(); m.ready = true; m.mu.Unlock(); return nil }

// Stop implements bridges.Adapter.
func (m *Memnet) Stop(context.Context) error { m.mu.Lock(); m.ready = false; m.mu.Unlock(); return nil }

// Ready implements bridges.Adapter.
func (m *Memnet) Ready(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ready {
		return errors.New("memnet: not started")
	}
	return nil
}

// Posts returns everything posted so far, oldest first.
func (m *Memnet) Posts() []Post {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Post(nil), m.posts...)
}

func (m *Memnet) add(p Post) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.ID == "" {
		p.ID = m.nextLocked()
	}
	m.posts = append(m.posts, p)
	return p.ID
}

func (m *Memnet) nextLocked() string { m.seq++; return "p" + strconv.Itoa(m.seq) }

// HandleMessage implements bridges.Adapter: the message as a post of its sender, in reply to the
// post the reply names (when the network has it).
func (m *Memnet) HandleMessage(ctx context.Context, ev *bridges.Event) error {
	p := Post{Room: string(ev.Room), Sender: string(ev.Sender), Kind: event.KindMessage, Text: plain(ev.Msg)}
	if ev.InReplyTo != nil {
		p.Target = string(ev.InReplyTo.NativeID)
	}
	return m.show(ctx, ev, p)
}

// HandleEdit implements bridges.EditHandler.
func (m *Memnet) HandleEdit(ctx context.Context, ev *bridges.Event) error {
	if ev.Replaces == nil {
		return bus.Permanent(fmt.Errorf("memnet: edit %s of a message the network never showed", ev.ID))
	}
	return m.show(ctx, ev, Post{Room: string(ev.Room), Sender: string(ev.Sender), Kind: event.KindEdit, Text: plain(ev.Msg), Target: string(ev.Replaces.NativeID)})
}

// HandleReaction implements bridges.ReactionHandler; an unreact deletes the reaction's post.
func (m *Memnet) HandleReaction(ctx context.Context, ev *bridges.Event) error {
	if ev.Msg.IsUnreact() {
		return m.HandleDelete(ctx, ev)
	}
	if ev.InReplyTo == nil {
		return bus.Permanent(fmt.Errorf("memnet: reaction %s to a message the network never showed", ev.ID))
	}
	return m.show(ctx, ev, Post{Room: string(ev.Room), Sender: string(ev.Sender), Kind: event.KindReaction, Text: plain(ev.Msg), Target: string(ev.InReplyTo.NativeID)})
}

// HandleDelete implements bridges.DeleteHandler.
func (m *Memnet) HandleDelete(ctx context.Context, ev *bridges.Event) error {
	if ev.Replaces == nil {
		return nil // never shown here
	}
	return m.show(ctx, ev, Post{Room: string(ev.Room), Sender: string(ev.Sender), Kind: event.KindDelete, Target: string(ev.Replaces.NativeID)})
}

// show posts p, mapped first: a user who sees it may refer to it at once.
func (m *Memnet) show(ctx context.Context, ev *bridges.Event, p Post) error {
	m.mu.Lock()
	p.ID = m.nextLocked()
	m.mu.Unlock()
	if err := ev.MapNow(ctx, bridges.Native{Room: event.NativeRoomID(p.Room), ID: event.NativeEventID(p.ID), Sender: event.NativeUserID(p.Sender)}); err != nil {
		return err
	}
	m.add(p)
	return nil
}

// plain is the text of a message: its plain or markdown parts, or a reaction's key.
func plain(msg *content.Message) string {
	var b strings.Builder
	for _, ip := range msg.Renderable(content.PreferTypes(content.TypePlain, content.TypeGFMMIMI)) {
		if sp, ok := ip.Part.Body.(content.SinglePart); ok {
			b.Write(sp.Content)
		}
	}
	if b.Len() == 0 {
		if sp, ok := msg.Body.Body.(content.SinglePart); ok {
			return string(sp.Content)
		}
	}
	return b.String()
}

// Write posts p as the local user p.Sender and publishes it for MIMI; it returns the post's ID
// once the envelope is on the bus.
func (m *Memnet) Write(ctx context.Context, p Post) (string, error) {
	p.ID = m.add(p)
	room := event.RoomURI(p.Room)
	sender := event.NewUserURI(event.Domain(m.cfg.Domain), p.Sender)
	envID := event.NewEventID(NetworkMem, event.NativeRoomID(p.Room), event.NativeEventID(p.ID))
	salt := m.core.Salt(envID)
	b := &content.Builder{SenderURI: string(sender), RoomURI: string(room), Rand: bytes.NewReader(salt[:]), Now: time.Now}
	var target content.MessageID
	if p.Target != "" {
		var ok bool
		var err error
		if target, ok, err = m.core.MessageOf(ctx, event.NativeRoomID(p.Room), event.NativeEventID(p.Target), room); err != nil || !ok {
			return p.ID, fmt.Errorf("memnet: target %s of %s is not a bridged message (%v)", p.Target, p.ID, err)
		}
	}
	var msg *content.Message
	var err error
	rec := bridges.Record{Map: []bridges.MapID{{ID: event.NativeEventID(p.ID), Primary: true}}, MapFirst: true}
	kind := p.Kind
	switch p.Kind {
	case event.KindMessage:
		var opts []content.Option
		if p.Target != "" {
			opts = append(opts, content.InReplyTo(target))
		}
		msg, err = b.New(content.PlainText(p.Text), opts...)
	case event.KindEdit:
		msg, err = b.Edit(target, content.PlainText(p.Text))
	case event.KindReaction:
		msg, err = b.Reaction(target, p.Text)
		rec.React, rec.Target = p.Text, &target
	case event.KindDelete:
		if r, rerr := m.core.IDs().ReactionByMessageID(ctx, room, target[:]); rerr == nil {
			var on content.MessageID
			copy(on[:], r.Target)
			kind, rec.Unreact, rec.Target = event.KindReaction, r.Emoji, &on
			msg, err = b.Unreact(target, on)
		} else {
			msg, err = b.Delete(target)
		}
	default:
		return p.ID, fmt.Errorf("memnet: cannot write a %s", p.Kind)
	}
	if err != nil {
		return p.ID, fmt.Errorf("memnet: content of %s: %w", p.ID, err)
	}
	env, err := m.core.Envelope(bridges.Outgoing{ID: envID, Kind: kind, Room: room, Sender: sender, Timestamp: time.Now(), Msg: msg,
		Origin: event.Origin{Room: event.NativeRoomID(p.Room), Event: event.NativeEventID(p.ID), Sender: event.NativeUserID(p.Sender)}})
	if err != nil {
		return p.ID, err
	}
	return p.ID, m.core.Publish(ctx, env, rec)
}
