package xstanza

import (
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeFirst decodes the first element of s into v as the adapter's read loop does: the start
// element separately, the rest through Decode's limited token reader.
func decodeFirst(s string, v any) error {
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return Decode(d, &se, v)
		}
	}
}

// FuzzDecode decodes arbitrary bytes as a message, a presence and an IQ stanza and runs the
// helpers that read decoded fields (Text, StripFallback, ParseStamp, ValidID, Addressing): nothing
// panics, Decode never accepts more than MaxStanzaBytes of text, StripFallback only removes runes,
// a timestamp is in range, and an ID that ValidID accepts is bounded UTF-8 without controls.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`<message from='a@b/c' to='r@rooms.b' type='groupchat' id='m1'><body>hi</body><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>`,
		`<message><body>&gt; q` + "\n" + `a</body><reply xmlns='urn:xmpp:reply:0' id='x' to='a@b/c'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='4'/></fallback></message>`,
		`<message><body xml:lang='de'>a</body><body>b</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='9' end='1'/></fallback></message>`,
		`<message><reactions xmlns='urn:xmpp:reactions:0' id='t'><reaction>👍</reaction></reactions><delay xmlns='urn:xmpp:delay' stamp='2024-05-01T10:00:00Z'/></message>`,
		`<message><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
		`<presence to='r@rooms.b/n'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='3'/></x></presence>`,
		`<iq type='set' id='i1'><query xmlns='http://jabber.org/protocol/muc#admin'><item jid='x@y' affiliation='admin'/></query></iq>`,
		`<message><body>` + strings.Repeat("x", MaxStanzaBytes+1) + `</body></message>`,
		`<message><body>unclosed`, `<message id='` + "\x01" + `'/>`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := string(raw)
		var m InMessage
		if err := decodeFirst(s, &m); err == nil {
			size := 0
			for _, b := range m.Body {
				size += len(b.Text)
			}
			if size > MaxStanzaBytes {
				t.Fatalf("decoded %d bytes of body, limit %d", size, MaxStanzaBytes)
			}
			if body, ok := m.Text(); ok {
				if out := StripFallback(body, m.Fallback, NSReply); utf8.RuneCountInString(out) > utf8.RuneCountInString(body) {
					t.Fatalf("StripFallback added text: %q -> %q", body, out)
				}
			}
			_ = m.IsChatStateOnly()
			if m.Delay != nil {
				if ts, err := ParseStamp(m.Delay.Stamp); err == nil && (ts.Year() < 1970 || ts.Year() > 9999) {
					t.Fatalf("timestamp %q accepted as %v", m.Delay.Stamp, ts)
				}
			}
		}
		var p InPresence
		_ = decodeFirst(s, &p)
		var iq InIQ
		_ = decodeFirst(s, &iq)
		if id := iq.ID; ValidID(id) {
			if len(id) > MaxIDLen || !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("ValidID accepted %q", id)
			}
		}
		d := xml.NewDecoder(strings.NewReader(s))
		for range 8 {
			tok, err := d.Token()
			if err != nil {
				break
			}
			if se, ok := tok.(xml.StartElement); ok {
				_, _, _, _ = Addressing(&se)
			}
		}
	})
}
