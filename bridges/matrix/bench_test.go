package matrix

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/bridgetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// BenchmarkMapText measures the pure Matrix → MIMI mapping of an HTML text message: JSON decoding
// and checks, sanitising, HTML → GFM-MIMI, content encoding and the message ID.
func BenchmarkMapText(b *testing.B) {
	raw := []byte(`{"type":"m.room.message","event_id":"$e1","room_id":"!r:hs.example","sender":"@alice:hs.example",` +
		`"origin_server_ts":1700000000000,"content":{"msgtype":"m.text","body":"Befund ist da, bitte **prüfen**",` +
		`"format":"org.matrix.custom.html","formatted_body":"Befund ist da, bitte <strong>prüfen</strong> <a href=\"https://example.org\">Link</a>"}}`)
	a := &Adapter{core: bridges.NewCore(bridges.CoreConfig{Network: event.NetworkMatrix, IDVersion: content.DefaultIDVersion})}
	a.core.SetSaltKey(make([]byte, 32))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		p, err := mxevent.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.toEnvelope(b.Context(), "mimi://hs.example/r/x", p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppserviceTextToBus measures one encrypted text message from a real E2EE client through
// Dendrite's appservice transaction, decryption and the bus until the envelope is consumed.
func BenchmarkAppserviceTextToBus(b *testing.B) {
	e := startAppserviceEnv(b)
	alice := newE2EEClient(b, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.createEncryptedRoom(b, ghost)
	alice.waitJoined(b, room, ghost)
	alice.waitJoined(b, room, e.adapter.botUserID())
	warm := alice.send(b, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "warm-up"})
	e.out.wait(b, "warm-up", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(warm) })
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		ev := alice.send(b, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "bench"})
		e.out.wait(b, "bench message", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(ev) })
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/msg")
}

// BenchmarkAppserviceIngress measures Matrix → bus ingress in appservice mode with many messages
// in flight: while the adapter's ingest is held (as when the gateway is busy, restarting or
// behind), alice sends b.N text messages into an unencrypted portal from 16 goroutines through
// a real Dendrite (v0.13.8, its own process), which queues them for the appservice's
// transactions and the bot's sync; the ingest is released and the clock runs until the test's
// mimi.out consumer has all of them. It reports msgs/s (of that backlog), cpu-ms/msg (this
// process from the release on: adapter, embedded NATS, consumer, alice's idle client; not
// Dendrite), tx/msg (store commits) and fsync/msg (bridgetest.Meter).
func BenchmarkAppserviceIngress(b *testing.B) {
	e := startAppserviceEnv(b)
	alice := newE2EEClient(b, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.CreateRoom(b, "", false, false, ghost)
	alice.waitJoined(b, room, ghost)
	warm := alice.SendText(b, room, "warm-up")
	e.out.wait(b, "warm-up", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(warm) })
	before := e.out.len()
	const senders = 16
	b.ResetTimer()
	e.adapter.ingestMu.Lock()
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			for i := s; i < b.N; i += senders {
				if _, err := alice.TrySend(room, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: fmt.Sprint("ingress ", i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	m := bridgetest.StartMeter(b, e.st)
	e.adapter.ingestMu.Unlock()
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	waitFor(b, 10*time.Minute, "every message on the bus", func() bool { return e.out.len() >= before+b.N })
	b.StopTimer()
	m.Report(b, b.N)
}
