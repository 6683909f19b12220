package matrix

import (
	"context"
	"errors"
	"fmt"
	"time"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// ingestReceipt relays Matrix read receipts (m.read, m.read.private is never shared) of this
// homeserver's users on messages the gateway mapped as MIMI status reports (status "read").
// Homeservers deliver receipts to clients in sync: the functional account's (client mode) or the
// bot's (appservice mode; Dendrite does not push receipts to appservices, MSC2409).
func (a *Adapter) ingestReceipt(ctx context.Context, evt *mevent.Event) error {
	a.ingestMu.Lock()
	defer a.ingestMu.Unlock()
	room, ok, err := a.portals.ByMatrix(ctx, evt.RoomID)
	if err != nil {
		return transient(err)
	}
	if !ok {
		return nil
	}
	receipts, err := mxevent.ReadReceipts(evt)
	if err != nil {
		a.skip(ctx, evt, err)
		return nil
	}
	for _, r := range receipts {
		if a.isOwn(r.User) {
			continue
		}
		if err := a.publishReceipt(ctx, room, evt.RoomID, r.Event, r.User, r.At); err != nil {
			return err
		}
	}
	return nil
}

func (a *Adapter) publishReceipt(ctx context.Context, room event.RoomURI, mxRoom id.RoomID, evID id.EventID, user id.UserID, ts time.Time) error {
	native := event.NativeEventID("receipt:" + string(user) + ":" + string(evID))
	done, err := a.st.IsProcessed(ctx, scopeEvent, string(native))
	if err != nil || done {
		return err
	}
	mid, err := a.lookup(ctx, mxRoom, evID)
	if errors.Is(err, idmap.ErrNotFound) {
		return nil // a receipt on something that never went to MIMI
	}
	if err != nil {
		return transient(err)
	}
	return a.publishStatus(ctx, room, mxRoom, *mid, content.StatusRead, native, user, ts)
}

// publishDelivered reports a partner's message (env, rendered in portal mxRoom) as delivered to
// this homeserver, on behalf of the portal's one local user: in a 1:1 conversation only (in a
// group, "delivered" would say nothing about any one reader). Reading: the homeserver having
// stored the event is what "delivered" means for Matrix, which has no delivery receipts of its
// own. mxRoom is "" when the caller does not know the portal (a redelivery render skipped).
func (a *Adapter) publishDelivered(ctx context.Context, env *event.Envelope, mxRoom id.RoomID) error {
	if env.Kind != event.KindMessage || len(env.MessageID) == 0 || a.isLocal(env.Sender) {
		return nil
	}
	var mid content.MessageID
	if len(env.MessageID) != len(mid) {
		return nil
	}
	copy(mid[:], env.MessageID)
	if mxRoom == "" {
		room, ok, err := a.portals.ByMIMI(ctx, env.Room)
		if err != nil || !ok {
			return err
		}
		mxRoom = room
	}
	members, err := a.stateStore.GetRoomJoinedOrInvitedMembers(ctx, mxRoom)
	if err != nil {
		return fmt.Errorf("matrix: members of %s: %w", mxRoom, err)
	}
	var local []id.UserID
	for _, u := range members {
		if uri, err := a.userURI(u); err == nil && a.isLocal(uri) && !a.isOwn(u) {
			local = append(local, u)
		}
	}
	if len(local) != 1 {
		return nil
	}
	native := event.NativeEventID("delivered:" + string(local[0]) + ":" + string(env.ID))
	if done, err := a.st.IsProcessed(ctx, scopeEvent, string(native)); err != nil || done {
		return err
	}
	return a.publishStatus(ctx, env.Room, mxRoom, mid, content.StatusDelivered, native, local[0], time.Now())
}

// publishStatus publishes user's status report (read, delivered) on message mid.
func (a *Adapter) publishStatus(ctx context.Context, room event.RoomURI, mxRoom id.RoomID, mid content.MessageID, status content.Status,
	native event.NativeEventID, user id.UserID, ts time.Time) error {
	sender, err := a.userURI(user)
	if err != nil || !a.isLocal(sender) {
		return nil // only this homeserver's users are MIMI users of this gateway
	}
	envID := event.NewEventID(event.NetworkMatrix, event.NativeRoomID(mxRoom), native)
	msg, err := a.core.Builder(envID, sender, room, time.Time{}).Status(content.StatusReport{{MessageID: mid, Status: status}})
	if err != nil {
		return fmt.Errorf("matrix: status report: %w", err)
	}
	if ts.IsZero() {
		ts = time.Now()
	}
	env, err := a.core.Envelope(bridges.Outgoing{ID: envID, Kind: event.KindReceipt, Room: room, Sender: sender, Msg: msg,
		Timestamp: ts.UTC(), Origin: event.Origin{Room: event.NativeRoomID(mxRoom), Event: native, Sender: event.NativeUserID(user)}})
	if err != nil {
		return fmt.Errorf("matrix: receipt: %w", err)
	}
	if err := a.core.Publish(ctx, env, bridges.Record{Done: true}); err != nil {
		return transient(fmt.Errorf("matrix: receipt: %w", err))
	}
	a.metrics.inbound.WithLabelValues("published").Inc()
	return nil
}
