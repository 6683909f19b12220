package matrix

import (
	"fmt"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/powerlevels"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func intp(v int) *int { return &v }

func TestRoleLevels(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pl       *mevent.PowerLevelsEventContent
		levels   map[int]event.Role
		owner    int
		admin    int
		regular  int
		adminRet event.Role
	}{
		{"defaults", &mevent.PowerLevelsEventContent{},
			map[int]event.Role{0: 2, 49: 2, 50: 3, 99: 3, 100: 4, 150: 4}, 100, 50, 0, event.RoleAdmin},
		{"kick 20, ban 60", &mevent.PowerLevelsEventContent{KickPtr: intp(20), BanPtr: intp(60)},
			map[int]event.Role{19: 2, 20: 3, 60: 3, 100: 4}, 100, 60, 0, event.RoleAdmin},
		{"users_default 10, kick 5", &mevent.PowerLevelsEventContent{UsersDefault: 10, KickPtr: intp(5), BanPtr: intp(5)},
			map[int]event.Role{10: 2, 11: 3, 100: 4}, 100, 11, 10, event.RoleAdmin},
		{"ban 100", &mevent.PowerLevelsEventContent{BanPtr: intp(100)},
			map[int]event.Role{49: 2, 50: 3, 99: 3, 100: 4}, 100, 99, 0, event.RoleAdmin},
		{"kick and ban 150", &mevent.PowerLevelsEventContent{KickPtr: intp(150), BanPtr: intp(150)},
			map[int]event.Role{100: 2, 149: 2, 150: 4}, 150, 150, 0, event.RoleOwner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for l, want := range tc.levels {
				if got := powerlevels.RoleOf(tc.pl, l); got != want {
					t.Errorf("level %d: role %d, want %d", l, got, want)
				}
			}
			for r, want := range map[event.Role]int{event.RoleOwner: tc.owner, event.RoleAdmin: tc.admin, event.RoleRegular: tc.regular} {
				got, ok := powerlevels.LevelOf(tc.pl, r)
				if !ok || got != want {
					t.Errorf("role %d: level %d %v, want %d", r, got, ok, want)
				}
			}
			if l, _ := powerlevels.LevelOf(tc.pl, event.RoleAdmin); powerlevels.RoleOf(tc.pl, l) != tc.adminRet {
				t.Errorf("admin's level %d reads back as %d", l, powerlevels.RoleOf(tc.pl, l))
			}
			for _, r := range []event.Role{event.RoleNone, event.RoleBanned, 9} {
				if _, ok := powerlevels.LevelOf(tc.pl, r); ok {
					t.Errorf("role %d has a power level", r)
				}
			}
		})
	}
}

func TestRoleChanges(t *testing.T) {
	prev := &mevent.PowerLevelsEventContent{Users: map[id.UserID]int{"@a:x": 100, "@b:x": 50, "@c:x": 10}}
	now := &mevent.PowerLevelsEventContent{Users: map[id.UserID]int{"@a:x": 100, "@c:x": 75, "@d:x": 100}}
	got := fmt.Sprint(powerlevels.Changes(prev, now))
	if want := fmt.Sprint([]powerlevels.Change{{User: "@b:x", Role: event.RoleRegular}, {User: "@c:x", Role: event.RoleAdmin}, {User: "@d:x", Role: event.RoleOwner}}); got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
	// Unknown previous levels: everyone had users_default.
	got = fmt.Sprint(powerlevels.Changes(nil, now))
	if want := fmt.Sprint([]powerlevels.Change{{User: "@a:x", Role: event.RoleOwner}, {User: "@c:x", Role: event.RoleAdmin}, {User: "@d:x", Role: event.RoleOwner}}); got != want {
		t.Fatalf("changes without prev %s, want %s", got, want)
	}
	// A threshold change moves users too: kick and ban at 80 make c (75) regular.
	now2 := &mevent.PowerLevelsEventContent{Users: now.Users, KickPtr: intp(80), BanPtr: intp(80)}
	if got = fmt.Sprint(powerlevels.Changes(now, now2)); got != fmt.Sprint([]powerlevels.Change{{User: "@c:x", Role: event.RoleRegular}}) {
		t.Fatalf("threshold change: %s", got)
	}
}

func TestParsePowerLevels(t *testing.T) {
	ok := `{"type":"m.room.power_levels","state_key":"","event_id":"$e","room_id":"!r:x","sender":"@a:x","origin_server_ts":1,
		"content":{"users":{"@a:x":100}},"unsigned":{"prev_content":{"users":{"@a:x":50}}}}`
	p, err := mxevent.Parse([]byte(ok))
	if err != nil || p.Type != mevent.StatePowerLevels || p.Kind != event.KindMembership {
		t.Fatalf("parse: %+v %v", p, err)
	}
	if prev := powerlevels.Decode(p.Event.Unsigned.PrevContent.VeryRaw); prev == nil || prev.Users["@a:x"] != 50 {
		t.Fatalf("prev_content: %+v", prev)
	}
	for name, raw := range map[string]string{
		"state key":  `{"type":"m.room.power_levels","state_key":"x","event_id":"$e","room_id":"!r:x","sender":"@a:x","content":{}}`,
		"bad users":  `{"type":"m.room.power_levels","state_key":"","event_id":"$e","room_id":"!r:x","sender":"@a:x","content":{"users":[1]}}`,
		"bad levels": `{"type":"m.room.power_levels","state_key":"","event_id":"$e","room_id":"!r:x","sender":"@a:x","content":{"ban":"x"}}`,
	} {
		if _, err := mxevent.Parse([]byte(raw)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// TestAppserviceRoles: power-level changes of bridged users in a portal reach MIMI as role
// changes, and MIMI role changes, bans and unbans become the bot's power-level and membership
// changes on a real Dendrite.
func TestAppserviceRoles(t *testing.T) {
	e := startAppserviceEnv(t)
	ctx := t.Context()
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	r := alice.createEncryptedRoom(t, ghost)
	roomURI, err := RoomURIOf("localhost", r)
	if err != nil {
		t.Fatal(err)
	}
	aliceURI := event.UserURI("mimi://localhost/u/alice")
	bot := e.adapter.botUserID()
	alice.waitJoined(t, r, ghost)
	alice.waitJoined(t, r, bot)

	levels := func() *mevent.PowerLevelsEventContent {
		t.Helper()
		pl := &mevent.PowerLevelsEventContent{}
		if err := alice.StateEvent(ctx, r, mevent.StatePowerLevels, "", pl); err != nil {
			t.Fatal(err)
		}
		return pl
	}
	isRole := func(target event.UserURI) func(*event.Envelope) bool {
		return func(env *event.Envelope) bool {
			return env.Kind == event.KindMembership && env.Membership.Action == event.MembershipRole && env.Membership.Target == target
		}
	}

	// Matrix → MIMI: alice gives the bot 100 and bob's ghost 50 in one event: one envelope, bob
	// is admin (the bot is no MIMI user).
	pl := levels()
	pl.SetUserLevel(bot, 100)
	pl.SetUserLevel(ghost, 50)
	resp, err := alice.SendStateEvent(ctx, r, mevent.StatePowerLevels, "", pl)
	if err != nil {
		t.Fatal(err)
	}
	got := e.out.wait(t, "bob's promotion", isRole(bobURI))
	if got.Sender != aliceURI || got.Room != roomURI || got.Membership.Role != event.RoleAdmin ||
		got.Origin.Event != event.NativeEventID(resp.EventID) {
		t.Fatalf("role envelope %+v %+v", got, got.Membership)
	}

	// MIMI → Matrix: bob becomes owner; the bot (100) sets his level to 100, and that event is
	// not relayed back.
	carolURI := event.UserURI("mimi://amt-b.example/u/carol")
	carol := e.adapter.ghosts.UserID(carolURI)
	mimi := func(n int, action event.MembershipAction, target event.UserURI, role event.Role) {
		t.Helper()
		env := &event.Envelope{ID: event.EventID(fmt.Sprintf("mimi:role-test-%d", n)), Kind: event.KindMembership, Room: roomURI,
			Sender: bobURI, Timestamp: time.Now().UTC(), Origin: event.Origin{Network: event.NetworkMIMI},
			Membership: &event.Membership{Action: action, Target: target, Role: role}}
		if err := e.bus.PublishIn(ctx, event.NetworkMatrix, env); err != nil {
			t.Fatal(err)
		}
	}
	mimi(1, event.MembershipRole, bobURI, event.RoleOwner)
	waitFor(t, 30*time.Second, "bob's ghost at 100", func() bool { return levels().GetUserLevel(ghost) == 100 })

	// carol joins from MIMI, becomes admin (50), is banned (the bot outranks her) and unbanned.
	mimi(2, event.MembershipJoin, carolURI, 0)
	alice.waitJoined(t, r, carol)
	mimi(3, event.MembershipRole, carolURI, event.RoleAdmin)
	waitFor(t, 30*time.Second, "carol's ghost at 50", func() bool { return levels().GetUserLevel(carol) == 50 })
	member := func() mevent.Membership {
		var m mevent.MemberEventContent
		if err := alice.StateEvent(ctx, r, mevent.StateMember, string(carol), &m); err != nil {
			t.Fatal(err)
		}
		return m.Membership
	}
	mimi(4, event.MembershipBan, carolURI, event.RoleBanned)
	waitFor(t, 30*time.Second, "carol banned", func() bool { return member() == mevent.MembershipBan })
	mimi(5, event.MembershipRole, carolURI, event.RoleNone)
	waitFor(t, 30*time.Second, "carol unbanned", func() bool { return member() == mevent.MembershipLeave })

	// A MIMI kick of a ghost is the bot's kick.
	mimi(8, event.MembershipJoin, carolURI, 0)
	alice.waitJoined(t, r, carol)
	joined, err := alice.FullStateEvent(ctx, r, mevent.StateMember, string(carol))
	if err != nil {
		t.Fatal(err)
	}
	mimi(9, event.MembershipKick, carolURI, 0)
	waitFor(t, 30*time.Second, "carol kicked by the bot", func() bool {
		ev, err := alice.FullStateEvent(ctx, r, mevent.StateMember, string(carol))
		return err == nil && ev.ID != joined.ID && ev.Sender == bot && ev.Content.AsMember().Membership == mevent.MembershipLeave
	})

	// A MIMI demotion of alice (100, like the bot) is beyond the bot's power: nothing changes.
	mimi(6, event.MembershipRole, aliceURI, event.RoleRegular)
	mimi(7, event.MembershipRole, carolURI, event.RoleOwner) // a later change the bot can make
	waitFor(t, 30*time.Second, "carol's ghost at 100", func() bool { return levels().GetUserLevel(carol) == 100 })
	if l := levels().GetUserLevel("@alice:localhost"); l != 100 {
		t.Fatalf("alice's level %d after a demotion the bot may not make", l)
	}
	// None of the bot's power-level changes came back as a MIMI role change: alice's next
	// change arrives after them, and it is the only other role envelope.
	daveURI := event.UserURI("mimi://amt-b.example/u/dave")
	pl = levels()
	pl.SetUserLevel(e.adapter.ghosts.UserID(daveURI), 50)
	if _, err := alice.SendStateEvent(ctx, r, mevent.StatePowerLevels, "", pl); err != nil {
		t.Fatal(err)
	}
	e.out.wait(t, "dave's promotion by alice", func(env *event.Envelope) bool {
		return isRole(daveURI)(env) && env.Membership.Role == event.RoleAdmin
	})
	for _, env := range e.out.all() {
		if env.Kind == event.KindMembership && env.Membership.Action == event.MembershipRole && env.Sender != aliceURI {
			t.Fatalf("echo of the bot's change: %+v %+v", env, env.Membership)
		}
	}
}

func (o *outbox) all() []*event.Envelope {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*event.Envelope(nil), o.envs...)
}
