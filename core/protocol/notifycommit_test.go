package protocol_test

import (
	"context"
	"sync"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// committer is a handler that records, when told that a /notify body is committed, whether what
// Notify stored can be read outside its transaction by then.
type committer struct {
	handler
	st *store.Store

	mu        sync.Mutex
	told      []event.RoomURI
	committed []bool
}

var _ protocol.NotifyCommitter = (*committer)(nil)

func (c *committer) Notify(ctx context.Context, tx *store.Tx, n *protocol.Notification) error {
	if err := c.handler.Notify(ctx, tx, n); err != nil {
		return err
	}
	_, err := tx.KV("test.notify").Put(ctx, string(n.Room), []byte("stored"))
	return err
}

func (c *committer) NotifyCommitted(room event.RoomURI) {
	_, err := c.st.KV("test.notify").Get(context.Background(), string(room))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.told = append(c.told, room)
	c.committed = append(c.committed, err == nil)
}

// TestNotifyCommitted: a handler with the NotifyCommitter capability is told about a /notify body
// after the transaction that stored it has committed (what it stored is visible to other
// readers then), once: a redelivery of the same body is not told again.
func TestNotifyCommitted(t *testing.T) {
	hb := &committer{}
	a, b := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{})
	hb.st = b.Store
	room := event.NewRoomURI(domainA, "ward7")
	body := notifyBody(t, 1)
	for range 2 { // the second is a redelivery
		if err := a.Client.Notify(t.Context(), domainB, room, body); err != nil {
			t.Fatal(err)
		}
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if len(hb.told) != 1 || hb.told[0] != room {
		t.Fatalf("told %v, want [%s] once", hb.told, room)
	}
	if !hb.committed[0] {
		t.Error("NotifyCommitted was called before what Notify stored was committed")
	}
}
