package powerlevels

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// FuzzPowerLevels feeds arbitrary power-levels contents (previous and current) to Decode and the
// role mapping: Decode keeps at most mxevent.MaxPowerUsers users, nothing panics, Changes reports
// only roles that are power levels, and every role's level maps back to a role at least as high.
func FuzzPowerLevels(f *testing.F) {
	f.Add([]byte(`{"users":{"@a:hs":50}}`), []byte(`{"users":{"@a:hs":100,"@b:hs":50},"kick":20,"ban":60}`))
	f.Add([]byte(`{"users_default":10,"kick":5,"ban":5}`), []byte(`{"users":{"@a:hs":-5},"kick":150,"ban":150}`))
	f.Add([]byte(``), []byte(`{"users":{"@a:hs":9007199254740991},"users_default":-9007199254740991}`))
	f.Fuzz(func(t *testing.T, prevRaw, nowRaw []byte) {
		now := Decode(nowRaw)
		if now == nil {
			return
		}
		if len(now.Users) > mxevent.MaxPowerUsers {
			t.Fatalf("decoded %d users, more than %d", len(now.Users), mxevent.MaxPowerUsers)
		}
		for _, c := range Changes(Decode(prevRaw), now) {
			if c.Role < event.RoleRegular || c.Role > event.RoleOwner {
				t.Fatalf("role %d for %s", c.Role, c.User)
			}
		}
		for _, r := range []event.Role{event.RoleRegular, event.RoleAdmin, event.RoleOwner} {
			l, ok := LevelOf(now, r)
			if !ok {
				t.Fatalf("role %d has no level", r)
			}
			if got := RoleOf(now, l); got < r && !(r == event.RoleRegular) {
				t.Fatalf("role %d → level %d → role %d", r, l, got)
			}
		}
	})
}
