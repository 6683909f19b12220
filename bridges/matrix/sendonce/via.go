package sendonce

import (
	"context"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Sender sends and redacts as one Matrix user: a client, the appservice bot's intent or a
// ghost's.
type Sender interface {
	SendMessageEvent(ctx context.Context, room id.RoomID, t mevent.Type, c any, extra ...mautrix.ReqSendEvent) (*mautrix.RespSendEvent, error)
	RedactEvent(ctx context.Context, room id.RoomID, ev id.EventID, extra ...mautrix.ReqRedact) (*mautrix.RespSendEvent, error)
}

// Encrypter returns what to send into room for content c of type t: c itself in an unencrypted
// room, else the encrypted payload and its type.
type Encrypter func(ctx context.Context, room id.RoomID, t mevent.Type, c any) (mevent.Type, any, error)

// Via sends the events of one envelope into Room as User through S: each marked with the
// envelope's transaction ID Txn (Mark), encrypted by Encrypt, sent at most once through Guard
// (Client and Decrypt read the room when a send may have arrived), with the envelope's time
// Created as the event's timestamp when Timestamp is set (appservices may set it).
type Via struct {
	Guard     *Guard
	S         Sender
	Client    *mautrix.Client
	Room      id.RoomID
	User      id.UserID
	Txn       string
	Created   time.Time
	Timestamp bool
	Encrypt   Encrypter
	Decrypt   Decrypter // nil in a gateway without encryption
}

// Send sends content c of type t and returns its event.
func (v *Via) Send(ctx context.Context, t mevent.Type, c any) (id.EventID, error) {
	t, c, err := v.Encrypt(ctx, v.Room, t, Mark(c, v.Txn))
	if err != nil {
		return "", err
	}
	req := mautrix.ReqSendEvent{TransactionID: v.Txn, DontEncrypt: true}
	if v.Timestamp {
		req.Timestamp = v.Created.UnixMilli()
	}
	return v.Guard.Send(ctx, v.Client, v.Room, v.User, v.Txn, v.Created, v.Decrypt, func(ctx context.Context) (id.EventID, error) {
		resp, err := v.S.SendMessageEvent(ctx, v.Room, t, c, req)
		if err != nil {
			return "", fmt.Errorf("matrix: send to %s: %w", v.Room, err)
		}
		return resp.EventID, nil
	})
}

// Redact redacts target with reason and extra content keys (an MSC4144 profile) and returns the
// redaction event.
func (v *Via) Redact(ctx context.Context, target id.EventID, reason string, extra map[string]any) (id.EventID, error) {
	resp, err := v.S.RedactEvent(ctx, v.Room, target, mautrix.ReqRedact{TxnID: v.Txn, Reason: reason, Extra: extra})
	if err != nil {
		return "", fmt.Errorf("matrix: redact in %s: %w", v.Room, err)
	}
	return resp.EventID, nil
}
