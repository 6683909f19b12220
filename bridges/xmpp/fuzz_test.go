package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/confschema"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// decodeFromString decodes the first element of s as the adapter's read loop does: the start
// element separately, the rest through the limited token reader.
func decodeFromString(s string, v any) error {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return xstanza.Decode(d, &se, v)
		}
	}
}

var stanzaSeeds = []string{
	`<message from='alice@localhost/p' to='ward7@rooms.localhost' type='groupchat' id='m1'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
	`<message id='m2'><body>&gt; q
a</body><reply xmlns='urn:xmpp:reply:0' id='x' to='a@b/c'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='4'/></fallback></message>`,
	`<message><reactions xmlns='urn:xmpp:reactions:0' id='t'><reaction>👍</reaction><reaction></reaction></reactions></message>`,
	`<message><body>new</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>`,
	`<message><retract xmlns='urn:xmpp:message-retract:1' id='m1'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/></message>`,
	`<message><body>https://h.example/a.png</body><x xmlns='jabber:x:oob'><url>https://h.example/a.png</url><desc>d</desc></x></message>`,
	`<message><received xmlns='urn:xmpp:receipts' id='r'/><displayed xmlns='urn:xmpp:chat-markers:0' id='d'/></message>`,
	`<message><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
	`<message><body>t</body><delay xmlns='urn:xmpp:delay' stamp='2024-05-01T10:00:00+00:00'/></message>`,
	`<message><body xml:lang='de'>a</body><body>b</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='9' end='1'/></fallback></message>`,
	`<presence to='r@rooms.localhost/n'><x xmlns='http://jabber.org/protocol/muc'><history since='x' maxstanzas='3'/></x></presence>`,
}

// FuzzStanzaMapping decodes arbitrary bytes as a message stanza and runs every pure step of the
// XMPP → MIMI mapping (body, fallback stripping, timestamps, IDs, media parts, content encoding)
// and the reflection back to XMPP. Nothing may panic, and what the adapter writes must be
// well-formed XML that decodes again.
func FuzzStanzaMapping(f *testing.F) {
	for _, s := range stanzaSeeds {
		f.Add([]byte(s))
	}
	a := &Adapter{cfg: Config{MaxBodyBytes: new(confschema.ByteSize(DefaultMaxBodyBytes)), IDVersion: content.DefaultIDVersion}, key: bytes.Repeat([]byte{7}, 32),
		core: bridges.NewCore(bridges.CoreConfig{Network: event.NetworkXMPP, SaltLabel: "salt:"})}
	a.core.SetSaltKey(a.key)
	o := origin{nativeRoom: "ward7@rooms.localhost", sender: jid.MustParse("alice@localhost"), senderURI: aliceURI, room: ward7URI, muc: true}
	at := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p xstanza.InPresence
		_ = decodeFromString(string(data), &p)
		var m xstanza.InMessage
		if err := decodeFromString(string(data), &m); err != nil {
			return
		}
		body, _ := m.Text()
		_ = m.IsChatStateOnly()
		stripped := xstanza.StripFallback(body, m.Fallback, xstanza.NSReply)
		if utf8.ValidString(body) && !utf8.ValidString(stripped) {
			t.Fatalf("xstanza.StripFallback produced invalid UTF-8 from %q", body)
		}
		if ts := m.SentAt(at); ts.After(at) {
			t.Fatalf("timestamp %v after arrival %v", ts, at)
		}
		id := m.NativeID()
		if !xstanza.ValidID(id) {
			t.Fatalf("NativeID returned invalid %q", id)
		}
		if len(body) <= int(*a.cfg.MaxBodyBytes) && utf8.ValidString(body) {
			part, err := a.bodyPart(context.Background(), "", body, m.OOB)
			if err == nil {
				ev := o.eventID(id)
				msg, err := a.builder(o, ev, at).New(part, externalID(o, id))
				if err == nil {
					enc, mid, err := msg.EncodeWithID(a.cfg.IDVersion)
					if err != nil {
						t.Fatalf("encode: %v", err)
					}
					back, err := content.Decode(enc)
					if err != nil {
						t.Fatalf("content we encoded does not decode: %v", err)
					}
					text, _ := xcontent.Render(back)
					if !utf8.ValidString(text) {
						t.Fatalf("render produced invalid UTF-8")
					}
					_ = stanzaIDOf(mid)
				}
			}
		}
		out := xstanza.Reflection(&m)
		out.From, out.To, out.Type = "ward7@rooms.localhost/Alice", "bob@localhost/x", "groupchat"
		b, err := xml.Marshal(out)
		if err != nil {
			return // encoding/xml refuses characters XML cannot carry; the send fails, nothing panics
		}
		var n node
		if err := xml.Unmarshal(b, &n); err != nil {
			t.Fatalf("reflection is not well-formed XML: %v\n%s", err, b)
		}
	})
}

// FuzzAdminQuery decodes arbitrary bytes as a muc#admin IQ and runs the pure steps of an
// affiliation change (affiliation → role, reason clipping, target JID): nothing may panic, a
// clipped reason stays valid UTF-8 within its limit, and a role maps back to its affiliation.
func FuzzAdminQuery(f *testing.F) {
	f.Add([]byte(`<iq type='set' id='a1' to='ward7@rooms.localhost'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='admin' jid='bob\40clinic-b.example@mimi.localhost'/><item affiliation='outcast' nick='x'><reason>spam</reason></item></query></iq>`))
	f.Add([]byte(`<iq type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item role='none' nick='Mallory'/></query></iq>`))
	f.Add([]byte(`<iq type='set'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='none' jid='@/'><reason>` + strings.Repeat("ü", 600) + `</reason></item></query></iq>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var iq xstanza.InIQ
		if err := decodeFromString(string(data), &iq); err != nil || iq.Admin == nil {
			return
		}
		for _, it := range iq.Admin.Items {
			if r, ok := roleOfAffiliation(it.Affiliation); ok {
				if aff, _ := affiliationOf(r); aff != it.Affiliation {
					t.Fatalf("affiliation %q → role %d → %q", it.Affiliation, r, aff)
				}
			}
			c := clip(it.Reason, 1024)
			if len(c) > 1024 || (utf8.ValidString(it.Reason) && !utf8.ValidString(c)) {
				t.Fatalf("clip(%d bytes) = %d bytes, valid %v", len(it.Reason), len(c), utf8.ValidString(c))
			}
			if it.JID != "" {
				_, _ = jid.Parse(it.JID)
			}
		}
	})
}
