package bridges

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

var verbRE = regexp.MustCompile(`%(\[\d+\])?[a-zA-Z]`)

// verbs returns a phrase's formatting directives with their argument positions, sorted.
func verbs(f string) []string {
	var out []string
	next := 1
	for _, v := range verbRE.FindAllStringSubmatch(f, -1) {
		if v[1] == "" {
			v[0] = "%[" + string(rune('0'+next)) + "]" + v[0][1:]
			next++
		}
		out = append(out, v[0])
	}
	slices.Sort(out)
	return out
}

// TestCatalogue: every language has every phrase, with the same arguments as English, and no
// phrase renders a formatting error.
func TestCatalogue(t *testing.T) {
	en := catalogue[English]
	for _, l := range Languages {
		texts := catalogue[l]
		if len(texts) != len(en) {
			t.Errorf("%s has %d phrases, English %d", l, len(texts), len(en))
		}
		for p, f := range en {
			g, ok := texts[p]
			if !ok {
				t.Errorf("%s lacks %s", l, p)
				continue
			}
			if !slices.Equal(verbs(f), verbs(g)) {
				t.Errorf("%s %s uses %v, English %v", l, p, verbs(g), verbs(f))
			}
			args := []any{"ARG1", "ARG2"}[:len(verbs(f))]
			if s := Say(l, p, args...); strings.Contains(s, "%!") || strings.TrimSpace(s) == "" {
				t.Errorf("%s %s renders %q", l, p, s)
			}
		}
	}
	if Say("fr", PhraseReacted, "bob", "👍") != Say(English, PhraseReacted, "bob", "👍") {
		t.Error("a language without a catalogue does not fall back to English")
	}
}

func TestParseLanguage(t *testing.T) {
	for _, c := range []struct {
		tag  string
		want Language
		ok   bool
	}{
		{"de", German, true}, {"de-DE", German, true}, {"de_AT.UTF-8", German, true}, {"EN-gb", English, true},
		{" en ", English, true}, {"fr", "", false}, {"", "", false}, {"deu", "", false},
	} {
		if got, ok := ParseLanguage(c.tag); got != c.want || ok != c.ok {
			t.Errorf("ParseLanguage(%q) = %q, %v; want %q, %v", c.tag, got, ok, c.want, c.ok)
		}
	}
}

// TestRoleName: the roles people can have are named in both languages; a role without a name
// (banned, none) shows its number.
func TestRoleName(t *testing.T) {
	for _, c := range []struct {
		lang Language
		role event.Role
		want string
	}{
		{English, event.RoleOwner, "an owner"},
		{English, event.RoleAdmin, "an admin"},
		{English, event.RoleRegular, "a regular participant"},
		{German, event.RoleOwner, "Eigentümer"},
		{German, event.RoleAdmin, "Administrator"},
		{German, event.RoleRegular, "normales Mitglied"},
		{English, event.RoleBanned, "role 1"},
	} {
		if got := RoleName(c.lang, c.role); got != c.want {
			t.Errorf("RoleName(%v, %d) = %q, want %q", c.lang, c.role, got, c.want)
		}
	}
}

func TestNoticeText(t *testing.T) {
	bob := event.NewUserURI("amt-b.example", "bob")
	for _, c := range []struct {
		name     string
		lang     Language
		n        event.Notice
		target   string
		attached bool
		want     []string
	}{
		{"unknown user", English, event.Notice{Code: event.NoticeInviteFailed, Correlation: "c0ffee", Target: bob, Reason: "userUnknown"}, "",
			false, []string{"bob@amt-b.example could not be added", "amt-b.example has no such user", "(reference c0ffee)"}},
		{"unbekannt", German, event.Notice{Code: event.NoticeInviteFailed, Correlation: "c0ffee", Target: bob, Reason: "userUnknown"}, "bob (amt-b.example)",
			false, []string{"bob (amt-b.example) konnte nicht", "Bei amt-b.example gibt es diese Person nicht", "(Referenz c0ffee)"}},
		{"no consent", English, event.Notice{Code: event.NoticeInviteFailed, Correlation: "1", Target: bob, Reason: "noConsent"}, "",
			false, []string{"bob@amt-b.example could not be added", "either amt-b.example has no such user, or they have not agreed to be contacted from outside their organisation"}},
		{"keine Einwilligung", German, event.Notice{Code: event.NoticeInviteFailed, Correlation: "1", Target: bob, Reason: "noConsent"}, "",
			false, []string{"Entweder gibt es diese Person bei amt-b.example nicht, oder sie hat einer Kontaktaufnahme von außerhalb ihrer Organisation nicht zugestimmt"}},
		{"consent pending", English, event.Notice{Code: event.NoticeConsentPending, Correlation: "1", Target: bob, Reason: "noConsent"}, "bob (amt-b.example)",
			false, []string{"bob (amt-b.example) could not be added yet: either there is no such user, or they have not yet agreed", "If they exist, they have been asked"}},
		{"Einwilligung ausstehend", German, event.Notice{Code: event.NoticeConsentPending, Correlation: "1", Target: bob, Reason: "noConsent"}, "",
			false, []string{"bob@amt-b.example konnte noch nicht hinzugefügt werden: Entweder gibt es diese Person nicht, oder", "Falls es sie gibt, wurde sie gefragt"}},
		{"1:1", English, event.Notice{Code: event.NoticeInviteFailed, Correlation: "7", Target: bob, Reason: "fixedMembership"}, "",
			false, []string{"bob@amt-b.example could not be added to this conversation: it is a one-to-one conversation, and nobody else can join it.", "start a new group conversation", "(reference 7)"}},
		{"zu zweit", German, event.Notice{Code: event.NoticeInviteFailed, Correlation: "7", Target: bob, Reason: "fixedMembership"}, "",
			false, []string{"Es ist eine Unterhaltung zu zweit, zu der niemand weiteres hinzukommen kann", "(Referenz 7)"}},
		{"no keys", English, event.Notice{Code: event.NoticeInviteFailed, Correlation: "1", Target: bob, Reason: "noKeyPackage"}, "",
			false, []string{"amt-b.example could not set up end-to-end encryption for them"}},
		{"deleted", English, event.Notice{Code: event.NoticeInviteFailed, Correlation: "1", Target: bob, Reason: "userDeleted"}, "",
			false, []string{"amt-b.example has no such user"}},
		{"other reason", German, event.Notice{Code: event.NoticeInviteFailed, Correlation: "1", Target: bob, Reason: "somethingNew", Partner: "amt-b.example"}, "",
			false, []string{"amt-b.example hat abgelehnt"}},
		{"refused, attached", English, event.Notice{Code: event.NoticeRefused, Correlation: "2", Partner: "amt-b.example"}, "",
			true, []string{"This message was not delivered: amt-b.example refused it."}},
		{"refused", German, event.Notice{Code: event.NoticeRefused, Correlation: "2"}, "",
			false, []string{"Eine Ihrer Nachrichten", "die Gegenseite hat sie abgelehnt"}},
		{"undelivered", English, event.Notice{Code: event.NoticeUndelivered, Correlation: "3", Partner: "amt-b.example"}, "",
			false, []string{"could not be delivered to amt-b.example"}},
		{"unreachable", German, event.Notice{Code: event.NoticePartnerUnreachable, Correlation: "4", Partner: "amt-b.example"}, "",
			false, []string{"amt-b.example ist zurzeit nicht erreichbar"}},
		{"reachable", English, event.Notice{Code: event.NoticePartnerReachable, Correlation: "5", Partner: "amt-b.example"}, "",
			false, []string{"amt-b.example can be reached again"}},
		{"room", English, event.Notice{Code: event.NoticeRoomFailed, Correlation: "6", Partner: "amt-b.example"}, "",
			false, []string{"could not be set up with amt-b.example", "(reference 6)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := NoticeText(c.lang, &c.n, c.target, c.attached)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
		})
	}
}
