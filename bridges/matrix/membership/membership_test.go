package membership

import (
	"errors"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
)

// TestInviteAndIgnore: on a real Dendrite, an invite into a direct chat carries is_direct and
// an ordinary one does not; the homeserver's M_FORBIDDEN for an invite by someone who is not in
// the room is ignored when asked for, and any other error is returned.
func TestInviteAndIgnore(t *testing.T) {
	ctx := t.Context()
	hs := dendritetest.Start(t)
	for _, u := range []string{"gw", "alice", "bob"} {
		hs.CreateUser(t, u, "password-"+u)
	}
	gw := dendritetest.NewClient(t, hs.URL, "gw", "password-gw")
	alice := dendritetest.NewClient(t, hs.URL, "alice", "password-alice")
	bob := dendritetest.NewClient(t, hs.URL, "bob", "password-bob")
	room := gw.CreateRoom(t, "", false, false)
	for _, tc := range []struct {
		who    *dendritetest.Client
		direct bool
	}{{alice, true}, {bob, false}} {
		if err := Invite(ctx, gw.Client, room, tc.who.UserID, tc.direct); err != nil {
			t.Fatalf("invite %s: %v", tc.who.UserID, err)
		}
		if got := tc.who.WaitInvite(t, servertest.Scale(30*time.Second), nil); got != room {
			t.Fatalf("%s invited to %s, want %s", tc.who.UserID, got, room)
		}
		ev := tc.who.Events(func(e *mevent.Event) bool { return e.RoomID == room && e.Type == mevent.StateMember })
		if direct := ev[len(ev)-1].Content.AsMember().IsDirect; direct != tc.direct {
			t.Errorf("%s's invite is_direct %v, want %v", tc.who.UserID, direct, tc.direct)
		}
	}
	// Bob is invited, not joined: he may not invite anyone.
	err := Invite(ctx, bob.Client, room, id.NewUserID("carol", hs.ServerName), false)
	if err == nil {
		t.Fatal("an invite by someone not in the room was accepted")
	}
	if got := IgnoreHTTP(err, "M_NOT_FOUND", "M_FORBIDDEN"); got != nil {
		t.Errorf("IgnoreHTTP(M_FORBIDDEN) = %v, want nil", got)
	}
	if got := IgnoreHTTP(err, "M_NOT_FOUND"); got != err {
		t.Errorf("IgnoreHTTP of another code = %v, want the error", got)
	}
	other := errors.New("connection refused")
	if got := IgnoreHTTP(other, "M_FORBIDDEN"); got != other {
		t.Errorf("IgnoreHTTP of a non-HTTP error = %v", got)
	}
}
