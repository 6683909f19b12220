package matrix

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// FuzzParseEvent feeds arbitrary bytes to the Matrix event decoder and the text mapping: they must
// return an error or a consistent result, never panic.
func FuzzParseEvent(f *testing.F) {
	const base = `"event_id":"$e1","room_id":"!r:hs","sender":"@a:hs","origin_server_ts":1700000000000`
	for _, s := range []string{
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"hi"}}`,
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.emote","body":"> <@x:hs> q\n\nhi","format":"org.matrix.custom.html","formatted_body":"<mx-reply>q</mx-reply><b>hi</b><script>x</script>","m.relates_to":{"m.in_reply_to":{"event_id":"$t"}}}}`,
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":"* x","m.new_content":{"msgtype":"m.text","body":"x"},"m.relates_to":{"rel_type":"m.replace","event_id":"$t"}}}`,
		`{"type":"m.reaction",` + base + `,"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$t","key":"👍"}}}`,
		`{"type":"m.room.redaction",` + base + `,"redacts":"$t","content":{}}`,
		`{"type":"m.room.member",` + base + `,"state_key":"@b:hs","content":{"membership":"invite"}}`,
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.image","body":"x.png","file":{"url":"mxc://hs/a","key":{"alg":"A256CTR","k":"AAAA","ext":true,"key_ops":["decrypt"]},"iv":"AAAA","hashes":{"sha256":"AAAA"},"v":"v2"}}}`,
		`{"type":"m.room.encrypted",` + base + `,"content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"x","session_id":"s","sender_key":"k","device_id":"D"}}`,
		`{"type":"m.room.message",` + base + `,"content":{"msgtype":"m.text","body":{"nested":[1,2]}}}`,
		`{"type":"m.sticker",` + base + `,"content":{"body":"s","url":"mxc://hs/s"}}`,
		`{"type":"m.room.power_levels",` + base + `,"state_key":"","content":{"users":{"@a:hs":100,"@b:hs":50},"kick":20,"ban":60,"users_default":0}}`,
		`null`, `[]`, `{}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	a := &Adapter{}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := mxevent.Parse(data)
		if err != nil {
			return
		}
		if p.ID == "" || p.Room == "" || p.Sender == "" || p.Kind == event.KindUnknown {
			t.Fatalf("accepted event without IDs or kind: %+v", p)
		}
		if p.Kind != event.KindMessage && p.Kind != event.KindEdit || p.Encrypted {
			return
		}
		part := mxcontent.TextPart(p, a.toMIMILink)
		if part == nil {
			return
		}
		m := &content.Message{Body: *part}
		_ = m.Extensions.SetSenderURI("mimi://hs/u/a")
		_ = m.Extensions.SetRoomURI("mimi://hs/r/x")
		if data, err := m.Encode(); err == nil {
			if _, err := content.Decode(data); err != nil {
				t.Fatalf("encoded mapping does not decode: %v", err)
			}
		}
	})
}
