package matrix

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
)

// setupCrypto creates the E2EE device of cli (the appservice bot's device, or the functional
// account's) with its Olm account and Megolm sessions in the gateway store, and logs in with
// login when the store has no device yet; events whose room keys are missing wait in its
// parking (e2ee.Parking).
func (a *Adapter) setupCrypto(ctx context.Context, cli *mautrix.Client, login *mautrix.ReqLogin, sy mautrix.ExtensibleSyncer) error {
	dev, err := e2ee.NewDevice(ctx, cli, a.db, []byte(a.cfg.Encryption.PickleKey), login, sy)
	if err != nil {
		return fmt.Errorf("matrix: init crypto for %s: %w", cli.UserID, err)
	}
	// Encrypting is done explicitly (encryptFor), so that ghosts' events, which are sent through
	// other clients, use this device too. cli.Crypto stays set for to-device handling.
	cli.Crypto = dev
	a.crypto = dev
	a.parking = e2ee.NewParking(dev, e2ee.ParkingConfig{Store: a.st, Log: a.log,
		DecryptWait: a.cfg.DecryptWait, KeyRequestInterval: a.cfg.KeyRequestInterval, UnreadableAfter: a.cfg.UnreadableNoticeAfter,
		Done: func(ctx context.Context, evt id.EventID) error { return a.markDone(ctx, string(evt)) },
		Relay: func(ctx context.Context, outer, dec *mevent.Event) error {
			a.ingestMu.Lock()
			defer a.ingestMu.Unlock()
			return a.ingestDecrypted(ctx, outer, dec)
		},
		Unreadable: a.noticeUnreadable, Metrics: a.metrics.Metrics})
	a.log.Info("end-to-end encryption ready", "user_id", string(cli.UserID), "device_id", string(cli.DeviceID))
	return nil
}

// encryptFor returns the content to send into room, encrypted where the room is (e2ee.Outgoing).
func (a *Adapter) encryptFor(ctx context.Context, room id.RoomID, t mevent.Type, c any) (mevent.Type, any, error) {
	return e2ee.Outgoing{Rooms: a.stateStore, Device: a.crypto, Metrics: a.metrics.Metrics, Log: a.log}.Encrypt(ctx, room, t, c)
}

// decryptParsed decrypts evt (waiting up to DecryptWait for its room key) and parses the result.
// When there is nothing to bridge it returns a nil event and what the caller returns: the event
// parked until its key arrives, or skipped and marked done when its plaintext is malformed.
// Callers hold ingestMu.
func (a *Adapter) decryptParsed(ctx context.Context, evt *mevent.Event) (*Parsed, error) {
	if a.parking == nil {
		a.metrics.DecryptErrors.WithLabelValues("other").Inc()
		a.log.Warn("cannot decrypt event, skipped: encryption is not set up", "room_id", string(evt.RoomID), "event_id", string(evt.ID))
		return nil, a.markDone(ctx, string(evt.ID))
	}
	dec, err := a.parking.Decrypt(ctx, evt)
	if err != nil {
		return nil, a.parking.Park(ctx, evt, err)
	}
	p, err := parseEvent(dec)
	if err != nil {
		a.skip(ctx, dec, err)
		return nil, a.markDone(ctx, string(evt.ID))
	}
	return p, nil
}

// homeserverBack runs after a sync succeeds following failed sync requests: the homeserver was
// unreachable and may have lost to-device messages (room keys, key requests) around its outage.
// The gateway device starts new outbound Megolm sessions in the portals and asks again at once
// for the keys of parked events.
func (a *Adapter) homeserverBack(ctx context.Context) {
	if a.parking == nil {
		return
	}
	a.parking.AskAgain()
	rooms, err := a.portals.Rooms(ctx)
	if err != nil {
		a.log.Warn("could not list portals to renew their room keys", "error", err)
		return
	}
	a.parking.Renew(ctx, rooms)
	a.log.Info("homeserver reachable again: new outbound room keys for the portals, parked events asked for again", "portals", len(rooms))
}

// noticeUnreadable tells the sender of an event that stayed parked that the gateway cannot
// read it (e2ee.ParkingConfig.Unreadable).
func (a *Adapter) noticeUnreadable(ctx context.Context, evt *mevent.Event) error {
	if err := a.say(ctx, evt.RoomID, evt.ID, evt.Sender, "unreadable", bridges.Say(a.lang(), bridges.PhraseUnreadable)); err != nil {
		return err
	}
	a.metrics.inbound.WithLabelValues("unreadable_notice").Inc()
	return nil
}

// ingestDecrypted relays a parked event after its decryption. Callers hold ingestMu.
func (a *Adapter) ingestDecrypted(ctx context.Context, outer, dec *mevent.Event) error {
	done, err := a.st.IsProcessed(ctx, scopeEvent, string(outer.ID))
	if err != nil || done {
		return err
	}
	room, ok, err := a.portals.ByMatrix(ctx, outer.RoomID)
	if err != nil || !ok {
		return err
	}
	p, err := parseEvent(dec)
	if err != nil {
		a.skip(ctx, dec, err)
		return a.markDone(ctx, string(outer.ID))
	}
	return a.relay(ctx, room, p)
}
