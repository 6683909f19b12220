package provider

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// logBuffer collects a provider's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// line returns the first log line that contains every one of parts, or "".
func (l *logBuffer) line(parts ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ln := range strings.Split(l.b.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(ln, p)
		}
		if ok {
			return ln
		}
	}
	return ""
}

// observed gives a node's provider a log buffer and a metrics registry.
func observed(logs *logBuffer, reg *prometheus.Registry) func(*Config) {
	return func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		c.Registerer = reg
	}
}

// expectNotice waits for a notice on nd's mimi.in.matrix that matches.
func expectNotice(t testing.TB, nd *node, what string, match func(*event.Envelope) bool) *event.Envelope {
	t.Helper()
	return expect(t, nd, what, func(e *event.Envelope) bool { return e.Kind == event.KindNotice && match(e) })
}

// checkNotice checks what every notice must say and that the log line with the technical detail
// (WARN; INFO for a partner that answers again) carries its correlation ID.
func checkNotice(t testing.TB, n *event.Envelope, sender event.UserURI, logs *logBuffer) {
	t.Helper()
	if n.Sender != sender || n.Notice.Correlation == "" {
		t.Fatalf("notice for %s with correlation %q, want %s with one", n.Sender, n.Notice.Correlation, sender)
	}
	level := `"level":"WARN"`
	if n.Notice.Code == event.NoticePartnerReachable {
		level = `"level":"INFO"`
	}
	if ln := logs.line(level, n.Notice.Correlation); ln == "" {
		t.Fatalf("no %s log line with correlation %s", level, n.Notice.Correlation)
	}
}

// TestNoticeInviteFailed: invites that cannot work are refused at once, and the inviter is told
// (a notice attached to her invite, a WARN log line, a count), and the room goes on.
func TestNoticeInviteFailed(t *testing.T) {
	logs, reg := &logBuffer{}, prometheus.NewRegistry()
	bob := event.NewUserURI("b.example", "bob")
	dir := &userList{users: map[event.UserURI]event.Network{bob: event.NetworkMatrix}}
	adir := &userList{users: map[event.UserURI]event.Network{}}
	a, b := pairConf(t, storetest.SQLiteConfig, func(c *Config) { observed(logs, reg)(c); c.Users = adir },
		func(c *Config) { c.Users, c.UsersOnDemand = dir, true })
	alice := event.NewUserURI(a.domain, "alice")
	room := a.p.NewRoomID()

	// A partner's user who does not exist: the partner answers as for a user who does not
	// want to be reached (noConsent: it does not tell whether a user exists).
	carol := event.NewUserURI(b.domain, "carol")
	inv := membership(room, alice, event.MembershipInvite, carol)
	publishOut(t, a, inv)
	n := expectNotice(t, a, "notice for carol's invite", func(e *event.Envelope) bool { return e.Notice.Target == carol })
	checkNotice(t, n, alice, logs)
	if n.Notice.Code != event.NoticeInviteFailed || n.Notice.Reason != "noConsent" || n.Notice.Partner != b.domain ||
		n.Notice.Event != inv.ID || n.Notice.Native != inv.Origin.Event || n.Origin.Network != event.NetworkMatrix || n.Room != room {
		t.Fatalf("notice = %+v in %s (origin %+v)", n.Notice, n.Room, n.Origin)
	}
	if hasUser(t, b, carol) {
		t.Fatal("b created a client for carol")
	}

	// A local user nobody knows (our own directory may say so to our own user).
	dave := event.NewUserURI(a.domain, "dave")
	publishOut(t, a, membership(room, alice, event.MembershipInvite, dave))
	n = expectNotice(t, a, "notice for dave's invite", func(e *event.Envelope) bool { return e.Notice.Target == dave })
	checkNotice(t, n, alice, logs)
	if n.Notice.Code != event.NoticeInviteFailed || n.Notice.Reason != "userUnknown" || n.Notice.Partner != "" {
		t.Fatalf("notice = %+v", n.Notice)
	}

	// A user of a provider that is not a partner.
	erin := event.NewUserURI("c.example", "erin")
	publishOut(t, a, membership(room, alice, event.MembershipInvite, erin))
	n = expectNotice(t, a, "notice for erin's invite", func(e *event.Envelope) bool { return e.Notice.Target == erin })
	checkNotice(t, n, alice, logs)
	if n.Notice.Code != event.NoticeInviteFailed || n.Notice.Reason != "notPartner" || n.Notice.Partner != "c.example" {
		t.Fatalf("notice = %+v", n.Notice)
	}

	// The room was not blocked: bob (created on demand at b) is added and gets messages.
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	expect(t, b, "bob's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	m := message(t, room, alice, "hello bob")
	publishOut(t, a, m)
	expectText(t, b, m)

	for _, reason := range []string{"noConsent", "userUnknown", "notPartner"} {
		if v := testutil.ToFloat64(a.p.met.notices.WithLabelValues("invite_failed", reason)); v != 1 {
			t.Errorf("invite_failed/%s notices counted %v, want 1", reason, v)
		}
		if v := testutil.ToFloat64(a.p.met.givenUp.WithLabelValues("membership", reason)); v != 1 {
			t.Errorf("membership envelopes given up for %s: %v, want 1", reason, v)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "mimi_gateway_provider_notices_total"); err != nil || n == 0 {
		t.Errorf("notices in the registry: %d, %v", n, err)
	}
}

// TestNoticeRoomFailed: a join of a partner's room that never added us is refused at once with
// a notice.
func TestNoticeRoomFailed(t *testing.T) {
	logs, reg := &logBuffer{}, prometheus.NewRegistry()
	a, b := pairConf(t, storetest.SQLiteConfig, nil, observed(logs, reg))
	bob := event.NewUserURI(b.domain, "bob")
	room := a.p.NewRoomID() // hosted by a, which never added bob
	j := membership(room, bob, event.MembershipJoin, bob)
	publishOut(t, b, j)
	n := expectNotice(t, b, "notice for bob's join", func(e *event.Envelope) bool { return e.Notice.Event == j.ID })
	checkNotice(t, n, bob, logs)
	if n.Notice.Code != event.NoticeRoomFailed || n.Notice.Reason != "unknownRoom" || n.Notice.Partner != a.domain {
		t.Fatalf("notice = %+v", n.Notice)
	}
}

// waitNotice polls for a notice from nd's mimi.in that matches, returning how long it took.
func waitNotice(t testing.TB, nd *node, what string, match func(*event.Envelope) bool) (*event.Envelope, time.Duration) {
	t.Helper()
	start := time.Now()
	n := expectNotice(t, nd, what, match)
	return n, time.Since(start)
}

// TestNoticeFanoutExpired: when the outbox gives up on a room's fanout to a partner, the local
// users of the room are told it was not delivered.
func TestNoticeFanoutExpired(t *testing.T) {
	logs := &logBuffer{}
	a, b := pairConf(t, storetest.SQLiteConfig, observed(logs, prometheus.NewRegistry()), nil)
	alice, _, room := invited(t, a, b)
	a.p.fanoutExpired(t.Context(), b.domain, room, 2) // as the outbox calls it after Expire
	n := expectNotice(t, a, "alice told about undelivered fanout", func(e *event.Envelope) bool { return e.Notice.Code == event.NoticeUndelivered })
	checkNotice(t, n, alice, logs)
	if n.Room != room || n.Notice.Partner != b.domain {
		t.Fatalf("notice %+v in %s", n.Notice, n.Room)
	}
}
