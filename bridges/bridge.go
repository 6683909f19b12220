// Package bridges is the contract between the gateway core and its network adapters
// (bridges/matrix, bridges/xmpp).
//
// An adapter turns native events into canonical envelopes (core/event) and publishes them through
// its Core (core.go: salt, envelope, ID mappings); it receives MIMI → legacy envelopes through
// Run, whose Core does the shared steps (echo filter, dedupe, decoding, target lookup, recording)
// and hands the adapter a resolved Event through Dispatch, which calls the adapter's small core
// interface (Adapter) and whichever optional capability interfaces it implements (EditHandler,
// ReactionHandler, ...). A capability an adapter lacks is not an error: the envelope is
// acknowledged and counted as unsupported, so one network's missing feature never blocks a room.
package bridges

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Adapter is the core interface every network adapter implements.
type Adapter interface {
	// Network names the adapter's network; it selects the bus subjects the adapter consumes.
	Network() event.Network
	// Start connects to the network and starts relaying. It returns once the adapter runs (or failed
	// to start); the adapter keeps running until Stop.
	Start(ctx context.Context) error
	// Stop stops receiving native events, finishes work in progress and disconnects.
	Stop(ctx context.Context) error
	// Ready reports whether the adapter is connected to its network and relaying (the readiness
	// probe); an error says what is missing.
	Ready(ctx context.Context) error
	// Core returns the adapter's instance of the shared pipeline (NewCore).
	Core() *Core
	// HandleMessage renders a MIMI message (KindMessage) natively.
	HandleMessage(ctx context.Context, ev *Event) error
}

// Deps are the gateway's parts an adapter uses. Every adapter's constructor has the shape
//
//	New(ctx context.Context, cfg Config, deps bridges.Deps, opts ...Option) (*Adapter, error)
//
// where Config is the adapter's own configuration type and the options are for tests.
type Deps struct {
	// Store is the gateway's store; the adapter migrates its own tables.
	Store *store.Store
	// Bus publishes legacy → MIMI envelopes.
	Bus bus.Publisher
	// Assets stores attachments for the MIMI side; nil means files are not relayed.
	Assets AssetStore
	// Logger receives the adapter's logs; nil discards them.
	Logger *slog.Logger
	// Registerer registers the adapter's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
	// Reach searches partners and keeps consent for people's commands (reach.go); nil: the
	// MIMI endpoint does not run, and the commands say so.
	Reach Reach
}

// Log returns d.Logger, or a logger that discards everything.
func (d Deps) Log() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// EditHandler is implemented by adapters that can render edits (KindEdit).
type EditHandler interface {
	HandleEdit(ctx context.Context, ev *Event) error
}

// DeleteHandler is implemented by adapters that can render deletes / retractions (KindDelete).
type DeleteHandler interface {
	HandleDelete(ctx context.Context, ev *Event) error
}

// ReactionHandler is implemented by adapters that can render reactions and unreacts (KindReaction).
type ReactionHandler interface {
	HandleReaction(ctx context.Context, ev *Event) error
}

// ReceiptHandler is implemented by adapters that can render delivery and read receipts
// (KindReceipt).
type ReceiptHandler interface {
	HandleReceipt(ctx context.Context, ev *Event) error
}

// MembershipHandler is implemented by adapters that mirror membership changes (KindMembership).
type MembershipHandler interface {
	HandleMembership(ctx context.Context, ev *Event) error
}

// MetadataHandler is implemented by adapters that mirror room name and topic (KindRoomMetadata).
type MetadataHandler interface {
	HandleRoomMetadata(ctx context.Context, ev *Event) error
}

// PortalCreator is implemented by adapters that create a native room (Matrix portal room, MUC) when
// the provider asks for one (KindPortalRequest).
type PortalCreator interface {
	CreatePortal(ctx context.Context, ev *Event) error
}

// NoticeHandler is implemented by adapters that tell a local user, in words and in their app, that
// something they caused failed (KindNotice): a refused invite, an undelivered message, a partner
// that stays unreachable.
type NoticeHandler interface {
	HandleNotice(ctx context.Context, ev *Event) error
}

// UserChecker is implemented by adapters that can tell whether a local user exists on their
// network. The MIMI provider asks when a partner wants to add a local user who has not used the
// gateway yet; it creates her MLS client only if an adapter knows her, and that adapter then
// serves her.
type UserChecker interface {
	// UserExists reports whether u is a user of the adapter's network (a person or account of
	// the organisation's server, not a puppet of a partner's user nor the adapter's own bot). An
	// error means the adapter cannot tell now (its server does not answer).
	UserExists(ctx context.Context, u event.UserURI) (bool, error)
}

// ServerWaiter is implemented by adapters that can tell when their network's server (the
// homeserver, the XMPP server), unreachable a moment ago, answers again. Run uses it: an envelope
// whose handling failed because the server was away is handled again the moment the server is
// back, instead of after the bus's growing redelivery delay, so delivery resumes within moments
// of the server's return.
type ServerWaiter interface {
	// ServerUnreachable reports whether err says that the network's server did not answer.
	ServerUnreachable(err error) bool
	// WaitServer returns once the server answers again, or with an error when ctx ends first.
	WaitServer(ctx context.Context) error
}

// serverWait bounds one wait of Run for an adapter's server; after it the envelope goes back to
// the bus, which delivers it again later (and may dead-letter it after its maximum deliveries).
var serverWait = 2 * time.Minute

// AssetStore keeps attachments for the MIMI side. An adapter hands over a file's plaintext; the store
// encrypts it (AES-128-GCM, core/content), keeps it until it expires and returns where partners can
// fetch it. core/assets implements it; adapters depend only on this interface.
type AssetStore interface {
	// Put stores a file and returns its description for an ExternalPart.
	Put(ctx context.Context, r io.Reader, meta assets.Meta) (*assets.Asset, error)
	// Open returns the plaintext of an asset that an ExternalPart references (by URL), after
	// checking its hash and decrypting it. When trying again cannot help (unknown or expired,
	// failed integrity check, too large, host not allowed) the error wraps assets.ErrUnavailable.
	Open(ctx context.Context, a *assets.Asset) (io.ReadCloser, error)
}

// ErrUnsupported is returned (wrapped) by Dispatch when the adapter lacks the capability an
// envelope needs. Dispatch's callers acknowledge such envelopes.
var ErrUnsupported = errors.New("bridges: capability not supported by adapter")

// Dispatch hands a MIMI → legacy envelope to the matching method of a. It returns ErrUnsupported
// (wrapped) when a lacks the capability, and an error wrapping bus.ErrPermanent for an envelope
// kind that never goes to adapters.
func Dispatch(ctx context.Context, a Adapter, env *Event) error {
	switch env.Kind {
	case event.KindMessage:
		return a.HandleMessage(ctx, env)
	case event.KindEdit:
		if h, ok := a.(EditHandler); ok {
			return h.HandleEdit(ctx, env)
		}
	case event.KindDelete:
		if h, ok := a.(DeleteHandler); ok {
			return h.HandleDelete(ctx, env)
		}
	case event.KindReaction:
		if h, ok := a.(ReactionHandler); ok {
			return h.HandleReaction(ctx, env)
		}
	case event.KindReceipt:
		if h, ok := a.(ReceiptHandler); ok {
			return h.HandleReceipt(ctx, env)
		}
	case event.KindMembership:
		if h, ok := a.(MembershipHandler); ok {
			return h.HandleMembership(ctx, env)
		}
	case event.KindRoomMetadata:
		if h, ok := a.(MetadataHandler); ok {
			return h.HandleRoomMetadata(ctx, env)
		}
	case event.KindPortalRequest:
		if h, ok := a.(PortalCreator); ok {
			return h.CreatePortal(ctx, env)
		}
	case event.KindNotice:
		if h, ok := a.(NoticeHandler); ok {
			return h.HandleNotice(ctx, env)
		}
	default:
		return bus.Permanent(fmt.Errorf("bridges: envelope %s has kind %s, which adapters do not handle", env.ID, env.Kind))
	}
	return fmt.Errorf("%w: %s cannot handle %s", ErrUnsupported, a.Network(), env.Kind)
}

// Run consumes a's network's mimi.in subjects with the durable consumer name and hands each
// envelope to a's Core (Core.Handle), which dispatches it to a. Unsupported kinds are logged,
// counted and acknowledged. It returns the subscription; stop it
// before stopping the adapter.
func Run(ctx context.Context, sub bus.Subscriber, name string, a Adapter, log *slog.Logger) (bus.Subscription, error) {
	return sub.ConsumeIn(ctx, name, a.Network(), func(ctx context.Context, d bus.Delivery) error {
		err := a.Core().Handle(ctx, a, d.Envelope)
		if w, ok := a.(ServerWaiter); ok && err != nil && w.ServerUnreachable(err) {
			err = retryWhenBack(ctx, a, w, d.Envelope, err, log)
		}
		if errors.Is(err, ErrUnsupported) {
			log.LogAttrs(ctx, slog.LevelInfo, "envelope kind not supported by adapter, skipped",
				slog.String("network", string(a.Network())), slog.String("kind", d.Envelope.Kind.String()),
				slog.String("event_id", string(d.Envelope.ID)))
			return nil
		}
		return err
	})
}

// retryWhenBack waits (at most serverWait at a time, in all at most a few times) for the
// adapter's server to answer again and handles env again, as long as the failure is that the
// server does not answer. It returns the last outcome; when the server stays away, the bus
// delivers the envelope again later.
func retryWhenBack(ctx context.Context, a Adapter, w ServerWaiter, env *event.Envelope, err error, log *slog.Logger) error {
	for range 3 {
		start := time.Now()
		wctx, cancel := context.WithTimeout(ctx, serverWait)
		werr := w.WaitServer(wctx)
		cancel()
		if werr != nil {
			return fmt.Errorf("%w (the server did not answer again within %s)", err, serverWait)
		}
		log.LogAttrs(ctx, slog.LevelInfo, "server answers again: handling the envelope now",
			slog.String("network", string(a.Network())), slog.String("event_id", string(env.ID)),
			slog.Duration("waited", time.Since(start)))
		err = a.Core().Handle(ctx, a, env)
		if err == nil || !w.ServerUnreachable(err) {
			return err
		}
	}
	return err
}
