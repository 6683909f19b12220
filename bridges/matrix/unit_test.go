package matrix

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func TestUserURIOf(t *testing.T) {
	tests := []struct {
		in   id.UserID
		want event.UserURI
		err  bool
	}{
		{"@alice:klinik-a.example", "mimi://klinik-a.example/u/alice", false},
		{"@Dr.Meier:klinik-a.example", "mimi://klinik-a.example/u/Dr.Meier", false},
		{"@a/b=c:hs.example", "mimi://hs.example/u/a%2Fb%3Dc", false},
		{"@alice:KLINIK.example", "mimi://klinik.example/u/alice", false},
		{"alice", "", true},
		{"@:hs.example", "", true},
		{id.UserID("@" + strings.Repeat("a", 300) + ":hs.example"), "", true},
	}
	for _, tc := range tests {
		got, err := UserURIOf(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("UserURIOf(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestGhostsRoundTrip(t *testing.T) {
	g := Ghosts{Prefix: "mimi_", Server: "klinik-a.example"}
	for _, u := range []event.UserURI{
		"mimi://amt-b.example/u/bob",
		"mimi://amt-b.example/u/Bob_Smith",
		"mimi://amt-b.example/u/b%C3%B6b",
		"mimi://127.0.0.1:8443/u/x",
	} {
		ghost := g.UserID(u)
		if _, _, err := ghost.ParseAndValidateStrict(); err != nil {
			t.Errorf("ghost %s of %s is not a valid user ID: %v", ghost, u, err)
		}
		if !g.IsGhost(ghost) {
			t.Errorf("%s not recognised as a ghost", ghost)
		}
		back, ok := g.URI(ghost)
		if !ok || back != u {
			t.Errorf("ghost %s maps back to %q (%v), want %q", ghost, back, ok, u)
		}
	}
	if g.UserID("mimi://amt-b.example/u/bob") != "@mimi_amt-b.example_bob:klinik-a.example" {
		t.Errorf("ghost of bob = %s", g.UserID("mimi://amt-b.example/u/bob"))
	}
	for _, u := range []id.UserID{"@alice:klinik-a.example", "@mimi_x:other.example", "@mimi_nounderscore:klinik-a.example", "@mimi_a_=zz:klinik-a.example"} {
		if _, ok := g.URI(u); ok {
			t.Errorf("%s decoded as a ghost", u)
		}
	}
}

func TestRoomURIOf(t *testing.T) {
	got, err := RoomURIOf("klinik-a.example", "!abc:klinik-a.example")
	if err != nil || got != "mimi://klinik-a.example/r/%21abc%3Aklinik-a.example" {
		t.Errorf("RoomURIOf = %q, %v", got, err)
	}
	if _, err := RoomURIOf("klinik-a.example", "#alias:x"); err == nil {
		t.Error("alias accepted as room ID")
	}
}

func TestWriteRegistrationKeepsTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reg", "registration.yaml")
	cfg := Config{ServerName: "klinik-a.example", Appservice: AppserviceConfig{Listen: "127.0.0.1:29333"}}
	r1, err := WriteRegistration(cfg, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r1.AppToken) < 40 || len(r1.ServerToken) < 40 || r1.AppToken == r1.ServerToken {
		t.Fatalf("weak tokens: %d/%d bytes", len(r1.AppToken), len(r1.ServerToken))
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("registration file mode = %v (%v), want 0600", st.Mode().Perm(), err)
	}
	cfg.Appservice.URL = "http://gateway:29333"
	r2, err := WriteRegistration(cfg, path)
	if err != nil {
		t.Fatal(err)
	}
	if r2.AppToken != r1.AppToken || r2.ServerToken != r1.ServerToken || r2.URL != "http://gateway:29333" {
		t.Errorf("rewrite changed tokens or kept the old URL: %s", r2.URL)
	}
	if !r2.Namespaces.UserIDs[0].Exclusive || r2.Namespaces.UserIDs[0].Regex != `@mimi_.*:klinik-a\.example` {
		t.Errorf("ghost namespace = %+v", r2.Namespaces.UserIDs)
	}
}

func TestParseEvent(t *testing.T) {
	const base = `"event_id":"$e1","room_id":"!r:hs","sender":"@a:hs","origin_server_ts":1700000000000`
	tests := []struct {
		name string
		json string
		kind event.Kind
		err  error
		chk  func(*Parsed) string
		want string
	}{
		{"text", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"hi"}}`, event.KindMessage, nil,
			func(p *Parsed) string { return p.Body }, "hi"},
		{"html", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.notice","body":"hi","format":"org.matrix.custom.html","formatted_body":"<b>hi</b>"}}`,
			event.KindMessage, nil, func(p *Parsed) string { return p.HTML }, "<b>hi</b>"},
		{"reply", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"x","m.relates_to":{"m.in_reply_to":{"event_id":"$t"}}}}`,
			event.KindMessage, nil, func(p *Parsed) string { return string(p.ReplyTo) }, "$t"},
		{"edit", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"* x","m.new_content":{"msgtype":"m.text","body":"x"},"m.relates_to":{"rel_type":"m.replace","event_id":"$t"}}}`,
			event.KindEdit, nil, func(p *Parsed) string { return p.Body + "|" + string(p.Target) }, "x|$t"},
		{"reaction", `{"type":"m.reaction",` + base + `,"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$t","key":"👍"}}}`,
			event.KindReaction, nil, func(p *Parsed) string { return p.ReactionKey }, "👍"},
		{"redaction v10", `{"type":"m.room.redaction",` + base + `,"redacts":"$t","content":{}}`, event.KindDelete, nil,
			func(p *Parsed) string { return string(p.Target) }, "$t"},
		{"redaction v11", `{"type":"m.room.redaction",` + base + `,"content":{"redacts":"$t"}}`, event.KindDelete, nil,
			func(p *Parsed) string { return string(p.Target) }, "$t"},
		{"mentions", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"hi","m.mentions":{"user_ids":["@b:hs","bad"]}}}`,
			event.KindMessage, nil, func(p *Parsed) string { return string(p.Mentions[0]) + "|" + strconv.Itoa(len(p.Mentions)) }, "@b:hs|1"},
		{"file", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.file","body":"a.pdf","url":"mxc://hs/abc","info":{"mimetype":"application/pdf","size":3}}}`,
			event.KindMessage, nil, func(p *Parsed) string { return p.Media.Name + "|" + p.Media.MimeType + "|" + p.Media.URL.String() }, "a.pdf|application/pdf|mxc://hs/abc"},
		{"member", `{"type":"m.room.member",` + base + `,"state_key":"@b:hs","content":{"membership":"invite"}}`,
			event.KindMembership, nil, func(p *Parsed) string { return string(p.MemberTarget) }, "@b:hs"},
		{"typing is ignored", `{"type":"m.typing",` + base + `,"content":{}}`, 0, ErrIgnored, nil, ""},
		{"location is ignored", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.location","body":"x"}}`, 0, ErrIgnored, nil, ""},
		{"no event id", `{"type":"m.room.message","room_id":"!r:hs","sender":"@a:hs","content":{"msgtype":"m.text","body":"x"}}`, 0, ErrMalformed, nil, ""},
		{"body not a string", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":7}}`, 0, ErrMalformed, nil, ""},
		{"no msgtype", `{"type":"m.room.message",` + base + `,"content":{"body":"x"}}`, 0, ErrMalformed, nil, ""},
		{"empty text", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":""}}`, 0, ErrMalformed, nil, ""},
		{"edit without new content", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"x","m.relates_to":{"rel_type":"m.replace","event_id":"$t"}}}`, 0, ErrMalformed, nil, ""},
		{"reaction without key", `{"type":"m.reaction",` + base + `,"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$t"}}}`, 0, ErrMalformed, nil, ""},
		{"bad mxc", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.image","body":"x","url":"http://x"}}`, 0, ErrMalformed, nil, ""},
		{"encrypted file without hash", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.image","body":"x","file":{"url":"mxc://hs/a","key":{"alg":"A256CTR","k":"","ext":true,"key_ops":[]},"iv":"","hashes":{},"v":"v2"}}}`, 0, ErrMalformed, nil, ""},
		{"huge body", `{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"` + strings.Repeat("x", mxevent.MaxBodySize+1) + `"}}`, 0, ErrMalformed, nil, ""},
		{"not json", `{"type":`, 0, ErrMalformed, nil, ""},
		{"array", `[]`, 0, ErrMalformed, nil, ""},
		{"null content", `{"type":"m.room.message",` + base + `,"content":null}`, 0, ErrMalformed, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := mxevent.Parse([]byte(tc.json))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("error = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if p.Kind != tc.kind {
				t.Errorf("kind = %s, want %s", p.Kind, tc.kind)
			}
			if tc.chk != nil {
				if got := tc.chk(p); got != tc.want {
					t.Errorf("extracted %q, want %q", got, tc.want)
				}
			}
		})
	}
	// Spot checks of the extracted fields.
	p, _ := mxevent.Parse([]byte(`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"* x","m.new_content":{"msgtype":"m.text","body":"x"},"m.relates_to":{"rel_type":"m.replace","event_id":"$t"}}}`))
	if p.Body != "x" || p.Target != "$t" {
		t.Errorf("edit parsed as body %q target %q", p.Body, p.Target)
	}
	p, _ = mxevent.Parse([]byte(`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"hi","m.mentions":{"user_ids":["@b:hs","bad"]}}}`))
	if len(p.Mentions) != 1 || p.Mentions[0] != "@b:hs" {
		t.Errorf("mentions = %v", p.Mentions)
	}
}

func TestAttribution(t *testing.T) {
	c := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "a < b"}
	mxcontent.Attribute(c, profileOf("mimi://amt-b.example/u/bob"))
	if c.Body != "bob (amt-b.example): a < b" ||
		c.FormattedBody != "<strong data-mx-profile-fallback>bob (amt-b.example): </strong>a &lt; b" ||
		c.BeeperPerMessageProfile.ID != "mimi://amt-b.example/u/bob" || !c.BeeperPerMessageProfile.HasFallback {
		t.Errorf("attributed content = %+v", c)
	}
}

// TestParseError: content parsed already or of a type mautrix does not know passes on without a
// "malformed" count; other parse errors skip the event as malformed.
func TestParseError(t *testing.T) {
	a := &Adapter{metrics: newMetrics(), log: slog.New(slog.DiscardHandler)}
	evt := &mevent.Event{ID: "$e", RoomID: "!r:localhost", Type: mevent.EventMessage}
	for _, c := range []struct {
		err  error
		pass bool
	}{
		{mevent.ErrContentAlreadyParsed, true},
		{fmt.Errorf("wrapped: %w", mevent.ErrUnsupportedContentType), true},
		{errors.New("json: cannot unmarshal number into Go struct field"), false},
	} {
		before := testutil.ToFloat64(a.metrics.inbound.WithLabelValues("malformed"))
		if got := a.parseError(evt, c.err); got != c.pass {
			t.Errorf("parseError(%v) = %v, want %v", c.err, got, c.pass)
		}
		counted := testutil.ToFloat64(a.metrics.inbound.WithLabelValues("malformed")) - before
		if (counted == 1) == c.pass {
			t.Errorf("parseError(%v) counted %v malformed", c.err, counted)
		}
	}
}

// TestWithoutMention: a leading mention of the functional account (user ID, display name or
// localpart, followed by ':' or ',' or named in m.mentions) addresses a command to it.
