// Package sendonce keeps a Matrix event that the gateway sends from being shown twice when the
// answer to the send was lost.
//
// The transaction ID makes a repeated PUT idempotent only while the homeserver remembers it:
// Dendrite keeps its transaction cache in memory, per access token, so when the homeserver stops
// (or the connection breaks) after it stored the event but before the answer arrived, or the
// gateway is killed while sending and logs in again, the repeated request creates the event a
// second time; its /messages returns no unsigned.transaction_id either. So every event the
// gateway sends carries its transaction ID in its content (Key; inside the encryption in an
// encrypted room), and a Guard looks among the sender's latest events of the room (decrypting
// its own) for the event with that transaction ID before it repeats a send that may have
// arrived, and returns that event instead of sending again.
package sendonce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// lookback is how many of the sender's latest events in the room are searched for the
// transaction ID: the sends of one room are in order, so the lost one is among the last few.
const lookback = 50

// maxUnsure bounds the remembered transaction IDs (a homeserver that stays away with many rooms
// waiting); past it the oldest knowledge is dropped, which only costs a possible duplicate.
const maxUnsure = 10_000

// Key is the content key that carries the transaction ID of an event the gateway sent.
const Key = "org.mimi.txn"

// Mark returns content c with the transaction ID txn under Key.
func Mark(c any, txn string) any {
	return &mevent.Content{Parsed: c, Raw: map[string]any{Key: txn}}
}

// Decrypter decrypts an event the gateway's own device encrypted.
type Decrypter func(ctx context.Context, evt *mevent.Event) (*mevent.Event, error)

// processStart is when this run of the gateway started: an envelope older than that may have
// been in flight when an earlier run was killed.
var processStart = time.Now()

// Guard remembers sends whose outcome is unknown. The zero value is ready to use.
type Guard struct {
	mu     sync.Mutex
	unsure map[string]bool
	// looked lists the rooms whose first send of an envelope older than this run was looked up.
	looked map[id.RoomID]bool
	// done maps the transaction IDs sent in this run to their events: an envelope handled again
	// (its processed mark was not committed) is not sent again.
	done map[string]id.EventID
}

// Send calls send, which sends one event marked with txn (Mark) into room as sender through
// cli, unless an earlier attempt with txn may have reached the homeserver and the room shows
// that it did: then it returns that event's ID. An earlier attempt may have reached it when
// one failed without an answer in this run, and for the first send into each room of an
// envelope from before this run (created at), which an earlier run killed while sending may
// have sent: a room's envelopes are sent one at a time and in order, so only its first one
// after a restart can be such a send. decrypt (nil in a gateway without encryption) reads the
// sender's encrypted events.
func (g *Guard) Send(ctx context.Context, cli *mautrix.Client, room id.RoomID, sender id.UserID, txn string, created time.Time,
	decrypt Decrypter, send func(context.Context) (id.EventID, error)) (id.EventID, error) {
	if ev := g.sentBefore(txn); ev != "" {
		return ev, nil
	}
	if g.isUnsure(txn) || (created.Before(processStart) && g.firstOld(room)) {
		ev, err := Find(ctx, cli, room, sender, txn, decrypt)
		if err != nil {
			return "", err
		}
		if ev != "" {
			g.set(txn, false)
			g.remember(txn, ev)
			return ev, nil
		}
	}
	ev, err := send(ctx)
	if err != nil {
		if MayHaveArrived(err) {
			g.set(txn, true)
		}
		return "", err
	}
	g.set(txn, false)
	g.remember(txn, ev)
	return ev, nil
}

func (g *Guard) sentBefore(txn string) id.EventID {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done[txn]
}

func (g *Guard) remember(txn string, ev id.EventID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done == nil || len(g.done) >= maxUnsure {
		g.done = map[string]id.EventID{}
	}
	g.done[txn] = ev
}

// firstOld reports whether this is the first send of an envelope from before this run into room.
func (g *Guard) firstOld(room id.RoomID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.looked[room] {
		return false
	}
	if g.looked == nil || len(g.looked) >= maxUnsure {
		g.looked = map[id.RoomID]bool{}
	}
	g.looked[room] = true
	return true
}

func (g *Guard) isUnsure(txn string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unsure[txn]
}

func (g *Guard) set(txn string, unsure bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !unsure {
		delete(g.unsure, txn)
		return
	}
	if g.unsure == nil || len(g.unsure) >= maxUnsure {
		g.unsure = map[string]bool{}
	}
	g.unsure[txn] = true
}

// MayHaveArrived reports whether a failed send may have been stored by the homeserver: every
// failure except an answer of the homeserver itself that refuses the request (a status below
// 500). A request whose connection broke, timed out or was refused (mautrix may have retried
// it after an earlier attempt that did reach the server) is unsure.
func MayHaveArrived(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		return he.Response.StatusCode >= http.StatusInternalServerError
	}
	return true
}

// BarrierType is the type of the event Find sends before it looks: an event without content
// that clients do not show.
var BarrierType = mevent.Type{Type: "org.mimi.sendonce.barrier", Class: mevent.MessageEventType}

const (
	// barrierWait bounds how long Find waits for the homeserver to list its barrier.
	barrierWait = 30 * time.Second
	// barrierPoll is how often Find asks whether the barrier is listed.
	barrierPoll = 100 * time.Millisecond
)

// Find returns the ID of sender's event in room whose content carries the transaction ID txn,
// among sender's latest events; "" when there is none. When several carry it (sent twice
// before this guard, or a copy whose redaction the homeserver has not applied yet), the oldest
// is the one: the answer does not change when another copy appears.
//
// A homeserver may have taken the send but not stored it yet: Dendrite queues a room's events
// durably and stores them one after the other, and when it is killed with the event queued, it
// stores it only after its restart, seconds after it answers again (so a look right after the
// restart did not find the event, the send was repeated, and the event was there twice). So Find
// first sends a barrier event into the room as sender (BarrierType, through cli) and looks only
// once the room's listing shows the barrier: what the homeserver had taken before is then stored
// and listed before it.
func Find(ctx context.Context, cli *mautrix.Client, room id.RoomID, sender id.UserID, txn string, decrypt Decrypter) (id.EventID, error) {
	// Not encrypted: it carries nothing, and a client that decrypts it would warn of its type.
	b, err := cli.SendMessageEvent(ctx, room, BarrierType, map[string]any{}, mautrix.ReqSendEvent{TransactionID: "sendonce." + cli.TxnID(), DontEncrypt: true})
	if err != nil {
		return "", fmt.Errorf("matrix: barrier before looking for the event of transaction %s in %s: %w", txn, room, err)
	}
	deadline := time.Now().Add(barrierWait)
	for {
		resp, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, &mautrix.FilterPart{Senders: []id.UserID{sender}}, lookback)
		if err != nil {
			return "", fmt.Errorf("matrix: look for the event of transaction %s in %s: %w", txn, room, err)
		}
		for i, ev := range resp.Chunk { // newest first
			if ev.ID == b.EventID {
				return findIn(ctx, resp.Chunk[i+1:], sender, txn, decrypt), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("matrix: look for the event of transaction %s in %s: the homeserver did not list the barrier %s within %s", txn, room, b.EventID, barrierWait)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("matrix: look for the event of transaction %s in %s: %w", txn, room, ctx.Err())
		case <-time.After(barrierPoll):
		}
	}
}

// findIn returns the oldest of sender's events (newest first) that carries txn, or "".
func findIn(ctx context.Context, events []*mevent.Event, sender id.UserID, txn string, decrypt Decrypter) id.EventID {
	var found id.EventID
	for _, ev := range events {
		if ev.Sender != sender {
			continue
		}
		c := ev
		if ev.Type == mevent.EventEncrypted {
			if decrypt == nil || ev.Content.ParseRaw(ev.Type) != nil {
				continue
			}
			var err error
			if c, err = decrypt(ctx, ev); err != nil {
				continue // not ours to read (an older session): not the one we look for
			}
		}
		if v, _ := c.Content.Raw[Key].(string); v == txn {
			found = ev.ID
		}
	}
	return found
}
