// Package e2ee is the Matrix adapter's end-to-end encryption device and sync plumbing: the
// gateway's Olm machine with its crypto store in the gateway's database (Device), and the sync
// store and syncer that commit a sync token only after every event of the response was handled
// (SyncStore, Syncer). It is a separate concept from the bridge pipeline; bridges/matrix uses it.
package e2ee

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Device is the gateway's Matrix E2EE device (the appservice bot's or the functional
// account's): an Olm machine whose account and Megolm sessions live in the gateway's store.
//
// It does what mautrix's cryptohelper would, without its blank import of a cgo SQLite driver
// (the gateway's store is modernc SQLite or PostgreSQL, opened by core/store), and without its
// automatic decryption in the syncer: the adapter decrypts itself, waiting for keys and parking
// events durably (Parking).
type Device struct {
	cli  *mautrix.Client
	mach *crypto.OlmMachine
	log  zerolog.Logger
}

var _ mautrix.CryptoHelper = (*Device)(nil)

// NewDevice loads (or creates, logging in with login when the store has no device yet) the
// E2EE device of cli, whose StateStore must be set, makes sure its keys are on the homeserver,
// and hooks it into syncer for to-device messages and member changes.
func NewDevice(ctx context.Context, cli *mautrix.Client, db *dbutil.Database, pickleKey []byte, login *mautrix.ReqLogin, syncer mautrix.ExtensibleSyncer) (*Device, error) {
	if len(pickleKey) == 0 {
		return nil, errors.New("matrix: e2ee: empty pickle key")
	}
	stateStore, ok := cli.StateStore.(crypto.StateStore)
	if !ok {
		return nil, errors.New("matrix: e2ee: the client's state store cannot serve crypto")
	}
	d := &Device{cli: cli, log: cli.Log.With().Str("component", "crypto").Logger()}
	store := crypto.NewSQLCryptoStore(db, dbutil.ZeroLogger(d.log.With().Str("db_section", "crypto").Logger()),
		string(cli.UserID), cli.DeviceID, pickleKey)
	if err := store.DB.Upgrade(ctx); err != nil {
		return nil, fmt.Errorf("matrix: e2ee: upgrade crypto store: %w", err)
	}
	stored, err := store.FindDeviceID(ctx)
	if err != nil {
		return nil, fmt.Errorf("matrix: e2ee: find stored device: %w", err)
	}
	switch {
	case login != nil:
		if stored != "" {
			// Log in again on the stored device, also in appservice mode: to-device messages
			// for a device (room keys) reach only requests made with that device's access
			// token; the appservice's own token acts as no device (Dendrite: "AS_Device"), so
			// after a restart the device would never receive another room key.
			login.DeviceID = stored
		}
		login.StoreCredentials = true
		if _, err := cli.Login(ctx, login); err != nil {
			return nil, fmt.Errorf("matrix: e2ee: log in as %s: %w", login.Identifier.User, err)
		}
	case stored != "" && stored != cli.DeviceID:
		return nil, fmt.Errorf("matrix: e2ee: the crypto store holds device %q, the configured access token is for %q", stored, cli.DeviceID)
	}
	if cli.DeviceID == "" || cli.UserID == "" {
		return nil, errors.New("matrix: e2ee: the client has no device (set a device ID with the access token, or log in with a password)")
	}
	store.DeviceID = cli.DeviceID
	d.mach = crypto.NewOlmMachine(cli, &d.log, store, stateStore)
	if err := d.mach.Load(ctx); err != nil {
		return nil, fmt.Errorf("matrix: e2ee: load the Olm account: %w", err)
	}
	if err := d.publishKeys(ctx); err != nil {
		return nil, err
	}
	syncer.OnSync(d.mach.ProcessSyncResponse)
	syncer.OnEventType(mevent.StateMember, d.mach.HandleMemberEvent)
	syncer.OnEventType(mevent.StateHistoryVisibility, d.mach.HandleHistoryVisibility)
	return d, nil
}

// publishKeys uploads the device's identity and one-time keys the first time, and otherwise
// checks that the homeserver still has the identity key the store holds.
func (d *Device) publishKeys(ctx context.Context) error {
	resp, err := d.cli.QueryKeys(ctx, &mautrix.ReqQueryKeys{
		DeviceKeys: map[id.UserID]mautrix.DeviceIDList{d.cli.UserID: {d.cli.DeviceID}},
	})
	if err != nil {
		return fmt.Errorf("matrix: e2ee: query own device keys: %w", err)
	}
	shared := d.mach.GetAccount().Shared
	dev, ok := resp.DeviceKeys[d.cli.UserID][d.cli.DeviceID]
	switch {
	case (!ok || len(dev.Keys) == 0) && !shared:
		if err := d.mach.ShareKeys(ctx, -1); err != nil {
			return fmt.Errorf("matrix: e2ee: upload device keys: %w", err)
		}
		return nil
	case !ok || len(dev.Keys) == 0:
		return errors.New("matrix: e2ee: the device's keys were uploaded before but the homeserver no longer has them")
	case !shared:
		return errors.New("matrix: e2ee: the homeserver has keys for this device that the crypto store did not upload")
	case dev.Keys.GetEd25519(d.cli.DeviceID) != d.mach.OwnIdentity().SigningKey:
		return errors.New("matrix: e2ee: the homeserver's signing key for this device differs from the crypto store's")
	}
	return nil
}

// Machine returns the Olm machine.
func (d *Device) Machine() *crypto.OlmMachine { return d.mach }

// Init implements mautrix.CryptoHelper; newE2EEDevice has done the work.
func (d *Device) Init(context.Context) error { return nil }

// Encrypt encrypts content for room with the room's Megolm session, sharing a new session with
// the room's joined and invited members' devices when there is none yet or it expired.
func (d *Device) Encrypt(ctx context.Context, room id.RoomID, t mevent.Type, content any) (*mevent.EncryptedEventContent, error) {
	enc, err := d.mach.EncryptMegolmEvent(ctx, room, t, content)
	if err == nil {
		return enc, nil
	}
	if !errors.Is(err, crypto.ErrSessionExpired) && !errors.Is(err, crypto.ErrNoGroupSession) && !errors.Is(err, crypto.ErrSessionNotShared) {
		return nil, err
	}
	users, err := d.cli.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("matrix: e2ee: members of %s: %w", room, err)
	}
	if err := d.mach.ShareGroupSession(ctx, room, users); err != nil {
		return nil, fmt.Errorf("matrix: e2ee: share the room key of %s: %w", room, err)
	}
	if enc, err = d.mach.EncryptMegolmEvent(ctx, room, t, content); err != nil {
		return nil, fmt.Errorf("matrix: e2ee: encrypt for %s after sharing the room key: %w", room, err)
	}
	return enc, nil
}

// Decrypt decrypts a Megolm event.
func (d *Device) Decrypt(ctx context.Context, evt *mevent.Event) (*mevent.Event, error) {
	return d.mach.DecryptMegolmEvent(ctx, evt)
}

// WaitForSession waits up to timeout for a room key to arrive.
func (d *Device) WaitForSession(ctx context.Context, room id.RoomID, sender id.SenderKey, session id.SessionID, timeout time.Duration) bool {
	return d.mach.WaitForSession(ctx, room, sender, session, timeout)
}

// RequestSession asks the sending device (all of the sender's devices when device is empty) and
// our own other devices for a room key.
func (d *Device) RequestSession(ctx context.Context, room id.RoomID, sender id.SenderKey, session id.SessionID, user id.UserID, device id.DeviceID) {
	if device == "" {
		device = "*"
	}
	err := d.mach.SendRoomKeyRequest(ctx, room, sender, session, "", map[id.UserID][]id.DeviceID{
		user:         {device},
		d.cli.UserID: {"*"},
	})
	if err != nil {
		d.log.Warn().Err(err).Str("room_id", string(room)).Str("session_id", string(session)).Msg("room key request failed")
	}
}
