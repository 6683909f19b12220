package timperm

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/id"
)

// TestAllows: the default setting decides, inverted for a listed user or server.
func TestAllows(t *testing.T) {
	for _, c := range []struct {
		name, data string
		inviter    id.UserID
		want       bool
	}{
		{"allow all", `{"defaultSetting":"allow all"}`, "@bob:amt-b.example", true},
		{"allow all but a user", `{"defaultSetting":"allow all","userExceptions":{"@bob:amt-b.example":{}}}`, "@bob:amt-b.example", false},
		{"allow all but a server", `{"defaultSetting":"allow all","serverExceptions":{"amt-b.example":{}}}`, "@carol:amt-b.example", false},
		{"block all", `{"defaultSetting":"block all"}`, "@bob:amt-b.example", false},
		{"block all but a user", `{"defaultSetting":"block all","userExceptions":{"@bob:amt-b.example":{}}}`, "@bob:amt-b.example", true},
		{"block all but another server", `{"defaultSetting":"block all","serverExceptions":{"klinik-c.example":{}}}`, "@bob:amt-b.example", false},
		{"no default", `{}`, "@bob:amt-b.example", true},
	} {
		var pc Config
		if err := json.Unmarshal([]byte(c.data), &pc); err != nil {
			t.Fatal(err)
		}
		if got, why := pc.Allows(c.inviter); got != c.want || why == "" {
			t.Errorf("%s: Allows(%s) = %v (%q), want %v", c.name, c.inviter, got, why, c.want)
		}
	}
}
