package mxevent

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// FuzzParse feeds arbitrary bytes to Parse: it never panics, every error wraps ErrMalformed or
// ErrIgnored, and an accepted event has checked IDs, a kind, and fields within the limits.
func FuzzParse(f *testing.F) {
	const base = `"event_id":"$e","room_id":"!r:hs","sender":"@a:hs","origin_server_ts":1`
	for _, s := range []string{
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"hi","m.mentions":{"user_ids":["@b:hs"]}}}`,
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"* x","m.new_content":{"msgtype":"m.text","body":"x"},"m.relates_to":{"rel_type":"m.replace","event_id":"$t"}}}`,
		`{"type":"m.reaction",` + base + `,"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$t","key":"👍"}}}`,
		`{"type":"m.room.redaction",` + base + `,"redacts":"$t","content":{}}`,
		`{"type":"m.room.member",` + base + `,"state_key":"@b:hs","content":{"membership":"ban"}}`,
		`{"type":"m.room.power_levels",` + base + `,"state_key":"","content":{"users":{"@a:hs":100}}}`,
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.file","body":"f","url":"mxc://hs/a","info":{"size":-1}}}`,
		`{"type":"m.room.encrypted",` + base + `,"content":{"algorithm":"m.megolm.v1.aes-sha2"}}`,
		`{"type":"m.room.message","event_id":"x","room_id":"!r","sender":"@a","content":{}}`,
		`{"type":"m.typing",` + base + `}`, `{"type":"m.room.message",` + base + `,"content":[]}`,
		`null`, `{}`, `[`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrIgnored) {
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrIgnored", err)
			}
			return
		}
		for _, c := range []struct {
			field, v string
			sigil    byte
		}{{"event_id", string(p.ID), '$'}, {"room_id", string(p.Room), '!'}, {"sender", string(p.Sender), '@'}} {
			if err := CheckID(c.field, c.v, c.sigil); err != nil {
				t.Fatalf("accepted event with a bad ID: %v", err)
			}
		}
		if p.Kind == event.KindUnknown || p.Event == nil || p.Timestamp.IsZero() {
			t.Fatalf("accepted event without kind, event or time: %+v", p)
		}
		if len(p.Body) > MaxBodySize || len(p.HTML) > MaxBodySize || len(p.Mentions) > MaxMentions {
			t.Fatalf("accepted event beyond the limits: body %d, html %d, mentions %d", len(p.Body), len(p.HTML), len(p.Mentions))
		}
		if p.Kind == event.KindReaction && (p.ReactionKey == "" || len(p.ReactionKey) > MaxReactionKeySize || !utf8.ValidString(p.ReactionKey)) {
			t.Fatalf("accepted reaction key %q", p.ReactionKey)
		}
	})
}
