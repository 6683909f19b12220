package occupants

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Occupants across an outage of their session. When Prosody restarts, every client session ends
// and the clients come back with new sessions, often under the same full JID. A client's own
// rejoin may be bounced by Prosody while the rooms component is still reconnecting, which would
// leave the user out of the room while the gateway keeps sending to a session that is gone. So
// the gateway does not rely on the client's rejoin alone:
//
//   - A stanza to an occupant that bounces (the session is gone) marks the occupant absent:
//     nothing more is sent to it, and what it missed is owed from the room history.
//   - After the rooms component reconnects, every occupant is unconfirmed; absent, if the server
//     was down meanwhile (it restarted: the sessions of before are gone).
//   - An absent or unconfirmed occupant is pinged (XEP-0199, from the room) with backoff until its
//     session answers; then, unless the client has joined again by itself, the gateway sends it
//     the join sequence again (occupants' presence, self-presence, what it is owed, the subject):
//     the gateway rejoins it. A join or a message of the occupant itself ends the wait at once,
//     and a message from it is accepted (it is still an occupant), never refused as not joined.
//   - A ping that the server answers with an error (it does so for a session that is gone, also
//     after a restart too quick for the reconnect to notice) makes the occupant absent.
//   - An absent occupant whose session does not answer within Tracker.Window is removed, as
//     before; an unconfirmed one stays.

const (
	// DefaultWindow is how long an absent occupant is waited for before it is removed.
	DefaultWindow = 2 * time.Minute
	// rejoinFirst and rejoinMaxBackoff bound the pause between two pings of an occupant.
	rejoinFirst      = 250 * time.Millisecond
	rejoinMaxBackoff = 4 * time.Second
)

// Recovery is the state of an occupant the gateway is not sure about.
type Recovery struct {
	// Absent: a stanza to its session bounced; nothing is sent to it until it is back.
	Absent bool
	// Owed: the room history from this time on did not reach it (zero: nothing owed).
	Owed time.Time
	// Since: it needs the join sequence unless it joined again after this time.
	Since  time.Time
	cancel context.CancelFunc
}

// Probe prepares the pings of the occupant k: ping reports whether its session answered one;
// done is called once, with back true when it answered, false when Window passed. An error ends the recovery of k.
type Probe func(ctx context.Context, k Key) (ping func(context.Context) bool, done func(back bool), err error)

// Tracker holds the occupants being recovered. Create it with NewTracker.
type Tracker struct {
	// Window is how long an absent occupant is waited for (DefaultWindow; tests shorten it). Set
	// it before Start.
	Window time.Duration
	probe  Probe
	mu     sync.Mutex
	run    context.Context // set by Start; nil: nothing is watched
	m      map[Key]*Recovery
	wg     sync.WaitGroup
}

// NewTracker returns a tracker that pings occupants through probe once started.
func NewTracker(probe Probe) *Tracker {
	return &Tracker{Window: DefaultWindow, probe: probe, m: map[Key]*Recovery{}}
}

// Start lets the tracker watch occupants until ctx ends.
func (t *Tracker) Start(ctx context.Context) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.run = ctx
}

// Wait waits for the pings of every recovery after the context given to Start ended.
func (t *Tracker) Wait() { t.wg.Wait() }

// Present filters the occupants of room a stanza can reach now.
func (t *Tracker) Present(room event.RoomURI, occ []Occupant) []Occupant {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) == 0 {
		return occ
	}
	return slices.DeleteFunc(slices.Clone(occ), func(o Occupant) bool {
		r := t.m[Key{room, o.Full}]
		return r != nil && r.Absent
	})
}

// Watch starts (or extends) the recovery of an occupant: absent when a stanza to it bounced,
// owed the history from owed on (zero: nothing), since the time after which its own join makes
// the gateway's unnecessary.
func (t *Tracker) Watch(k Key, absent bool, owed, since time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.m[k]; r != nil {
		r.Absent = r.Absent || absent
		if !owed.IsZero() && (r.Owed.IsZero() || owed.Before(r.Owed)) {
			r.Owed = owed
		}
		return
	}
	if t.run == nil {
		return // not started
	}
	ctx, cancel := context.WithCancel(t.run)
	t.m[k] = &Recovery{Absent: absent, Owed: owed, Since: since, cancel: cancel}
	t.wg.Go(func() { t.pingUntilBack(ctx, k) })
}

// Has reports whether the occupant k is being recovered (Take would return it).
func (t *Tracker) Has(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[k] != nil
}

// Take ends the recovery of an occupant and returns its state (nil when there was none).
func (t *Tracker) Take(k Key) *Recovery {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.m[k]
	if r != nil {
		delete(t.m, k)
		r.cancel()
	}
	return r
}

// pingUntilBack pings the occupant with backoff until its session answers, then reports it back;
// one that does not answer within Window is reported gone.
func (t *Tracker) pingUntilBack(ctx context.Context, k Key) {
	ping, done, err := t.probe(ctx, k)
	if err != nil {
		t.Take(k)
		return
	}
	deadline := time.Now().Add(t.Window)
	pause := rejoinFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, rejoinMaxBackoff)
		if ping(ctx) {
			done(true)
			return
		}
		if time.Now().After(deadline) {
			done(false)
			return
		}
	}
}
