package e2ee

import (
	"context"
	"fmt"
	"log/slog"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// RoomStates tells whether a room is encrypted (the adapter's state store).
type RoomStates interface {
	IsEncrypted(ctx context.Context, room id.RoomID) (bool, error)
}

// Outgoing encrypts what the gateway sends: with Device, for the rooms Rooms knows as
// encrypted, counting each encryption in Metrics.KeyShare.
type Outgoing struct {
	Rooms   RoomStates
	Device  *Device // nil: the adapter has no encryption
	Metrics *Metrics
	Log     *slog.Logger
}

// Encrypt returns the content to send into room: c itself in an unencrypted room, else an
// m.room.encrypted payload from the device (sharing the Megolm session with every joined or
// invited member's devices first when needed). An encrypted room without a device is an error.
func (o Outgoing) Encrypt(ctx context.Context, room id.RoomID, t mevent.Type, c any) (mevent.Type, any, error) {
	enc, err := o.Rooms.IsEncrypted(ctx, room)
	if err != nil {
		return t, nil, fmt.Errorf("matrix: encryption state of %s: %w", room, err)
	}
	if !enc {
		return t, c, nil
	}
	if o.Device == nil {
		return t, nil, fmt.Errorf("matrix: room %s is encrypted but encryption is not set up", room)
	}
	out, err := o.Device.Encrypt(ctx, room, t, c)
	if err != nil {
		o.Metrics.KeyShare.WithLabelValues("error").Inc()
		o.Log.Error("encrypting outgoing event failed (key sharing)", "room_id", string(room), "type", t.Type, "error", err)
		return t, nil, fmt.Errorf("matrix: encrypt for %s: %w", room, err)
	}
	o.Metrics.KeyShare.WithLabelValues("ok").Inc()
	return mevent.EventEncrypted, out, nil
}
