package content

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/content/gfm"
)

const (
	room  = "mimi://example.com/r/engineering_team"
	alice = "mimi://example.com/u/alice-smith"
	bob   = "mimi://example.com/u/bob-jones"
	cathy = "mimi://example.com/u/cathy-washington"
)

func exampleIDs(t *testing.T) map[string]MessageID {
	ids := map[string]MessageID{}
	for _, ex := range loadExamples(t) {
		if ex.Type == "mimiContent" {
			id, err := ParseMessageID(ex.ExpectedMessageIDHex)
			if err != nil {
				t.Fatal(err)
			}
			ids[ex.Name] = id
		}
	}
	return ids
}

// TestBuildersReproduceExamples builds the draft's examples with the
// builders and the examples' salts: the bytes and IDs must match exactly.
func TestBuildersReproduceExamples(t *testing.T) {
	ids := exampleIDs(t)
	salts := map[string]string{}
	for _, ex := range loadExamples(t) {
		salts[ex.Name] = ex.SaltHex
	}
	cases := []struct {
		name   string
		sender string
		build  func(b *Builder) (*Message, error)
	}{
		{"original", alice, func(b *Builder) (*Message, error) {
			return b.Markdown("Hi everyone, we just shipped release 2.0. __Good  work__!")
		}},
		{"reply", bob, func(b *Builder) (*Message, error) {
			return b.Markdown("Right on! _Congratulations_ 'all!", InReplyTo(ids["original"]))
		}},
		{"reaction", cathy, func(b *Builder) (*Message, error) { return b.Reaction(ids["original"], "\u2764") }},
		{"mention", cathy, func(b *Builder) (*Message, error) {
			return b.Markdown("Kudos to "+gfm.Mention("Alice Smith", alice)+" for making the release happen!", InReplyTo(ids["original"]))
		}},
		{"edit", bob, func(b *Builder) (*Message, error) {
			return b.Edit(ids["reply"], Markdown("Right on! _Congratulations_ y'all!"), InReplyTo(ids["original"]))
		}},
		{"delete", bob, func(b *Builder) (*Message, error) { return b.Delete(ids["reply"], InReplyTo(ids["original"])) }},
		{"unlike", cathy, func(b *Builder) (*Message, error) { return b.Unreact(ids["reaction"], ids["original"]) }},
		{"expiring", alice, func(b *Builder) (*Message, error) {
			return b.Markdown("__*VPN GOING DOWN*__ I'm rebooting the VPN in ten minutes unless anyone objects.",
				ExpiresAt(time.Unix(1644390004, 0)))
		}},
		{"multipart-2", alice, func(b *Builder) (*Message, error) {
			r := func(e string) NestedPart { p := PlainText(e); p.Disposition = DispReaction; return p }
			p := Multipart(ProcessAll, r("\u2764"), r("\U0001F973"), r("\U0001F91E"))
			p.Disposition = DispReaction
			return b.New(p)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &Builder{SenderURI: tc.sender, RoomURI: room, Rand: bytes.NewReader(mustHex(t, salts[tc.name]))}
			m, err := tc.build(b)
			if err != nil {
				t.Fatal(err)
			}
			data, id, err := m.EncodeWithID(IDDraft08)
			if err != nil {
				t.Fatal(err)
			}
			if want := readVector(t, tc.name); !bytes.Equal(data, want) {
				t.Fatalf("built\n %x\nwant\n %x", data, want)
			}
			if id != ids[tc.name] {
				t.Errorf("ID %s, want %s", id, ids[tc.name])
			}
		})
	}
}

// TestBuildersRoundTrip: what the builders make decodes to the same meaning.
func TestBuildersRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 30, 0, 250e6, time.UTC)
	b := &Builder{SenderURI: alice, RoomURI: room, Rand: mrand.NewChaCha8([32]byte{1}), Now: func() time.Time { return now }}
	target := MessageID{1, 0xaa}
	reaction := MessageID{1, 0xbb}
	type check func(t *testing.T, m *Message)
	kind := func(edit, del, react, unreact bool) check {
		return func(t *testing.T, m *Message) {
			if m.IsEdit() != edit || m.IsDelete() != del || m.IsReaction() != react || m.IsUnreact() != unreact {
				t.Errorf("kind edit=%v delete=%v reaction=%v unreact=%v", m.IsEdit(), m.IsDelete(), m.IsReaction(), m.IsUnreact())
			}
		}
	}
	body := func(ct, content string) check {
		return func(t *testing.T, m *Message) {
			sp, ok := m.Body.Body.(SinglePart)
			if !ok || sp.ContentType != ct || string(sp.Content) != content {
				t.Errorf("body %+v, want %s %q", m.Body, ct, content)
			}
		}
	}
	cases := []struct {
		name   string
		build  func() (*Message, error)
		checks []check
	}{
		{"text", func() (*Message, error) { return b.Text("Hallo <Welt>") }, []check{body(TypePlain, "Hallo <Welt>"), kind(false, false, false, false)}},
		{"markdown drops raw HTML", func() (*Message, error) { return b.Markdown("**fett** <b>nicht</b>") },
			[]check{body(TypeGFMMIMI, "**fett** &lt;b>nicht&lt;/b>")}},
		{"markdown with HTML", func() (*Message, error) {
			return b.MarkdownWithHTML("**fett**", `<strong>fett</strong><script>x()</script>`)
		}, []check{func(t *testing.T, m *Message) {
			mp, ok := m.Body.Body.(MultiPart)
			if !ok || mp.Semantics != ChooseOne || len(mp.Parts) != 2 {
				t.Fatalf("body %+v", m.Body)
			}
			if h := string(mp.Parts[1].Body.(SinglePart).Content); h != "<strong>fett</strong>" {
				t.Errorf("html part %q", h)
			}
			if got := m.Renderable(PreferTypes("text/html")); len(got) != 1 || got[0].Index != 2 {
				t.Errorf("Renderable(html) = %+v", got)
			}
		}}},
		{"reply", func() (*Message, error) { return b.Text("ok", InReplyTo(target)) }, []check{func(t *testing.T, m *Message) {
			if m.InReplyTo == nil || *m.InReplyTo != target || m.Replaces != nil {
				t.Errorf("refs %v %v", m.InReplyTo, m.Replaces)
			}
		}}},
		{"reaction", func() (*Message, error) { return b.Reaction(target, "👍") }, []check{kind(false, false, true, false)}},
		{"unreact", func() (*Message, error) { return b.Unreact(reaction, target) }, []check{kind(false, false, false, true), func(t *testing.T, m *Message) {
			if *m.Replaces != reaction || *m.InReplyTo != target {
				t.Errorf("refs %v %v", m.Replaces, m.InReplyTo)
			}
		}}},
		{"edit", func() (*Message, error) { return b.Edit(target, Markdown("neu")) }, []check{kind(true, false, false, false), body(TypeGFMMIMI, "neu")}},
		{"delete", func() (*Message, error) { return b.Delete(target) }, []check{kind(false, true, false, false)}},
		{"expiring absolute", func() (*Message, error) { return b.Text("x", ExpiresAt(now.Add(time.Hour))) }, []check{func(t *testing.T, m *Message) {
			if m.Expires == nil || m.Expires.Relative || int64(m.Expires.Time) != now.Add(time.Hour).Unix() {
				t.Errorf("expires %+v", m.Expires)
			}
		}}},
		{"expiring relative", func() (*Message, error) { return b.Text("x", ExpiresAfterRead(90*time.Second)) }, []check{func(t *testing.T, m *Message) {
			if m.Expires == nil || !m.Expires.Relative || m.Expires.Time != 90 {
				t.Errorf("expires %+v", m.Expires)
			}
		}}},
		{"mentions", func() (*Message, error) {
			return b.Markdown("Hi " + gfm.Mention("Bob", bob) + " and " + gfm.Mention("", cathy) + ", see [docs](https://example.com)")
		}, []check{func(t *testing.T, m *Message) {
			if got := m.MentionedURIs(); !slices.Equal(got, []string{bob, cathy}) {
				t.Errorf("mentions %v", got)
			}
		}}},
		{"multipart with topic, subject, native ID, language", func() (*Message, error) {
			return b.New(Multipart(ProcessAll, PlainText("a"), Markdown("b")), Topic([]byte("thread-1")), WithSubject("Befund"),
				WithExternalID(ExternalID{ID: []byte("$abc"), Domain: "klinik-a.example"}), WithLanguage("de"))
		}, []check{func(t *testing.T, m *Message) {
			s, _ := m.Extensions.Subject()
			x, _ := m.Extensions.ExternalMessageID()
			if string(m.TopicID) != "thread-1" || s != "Befund" || string(x.ID) != "$abc" || m.Body.Language != "de" {
				t.Errorf("message %+v", m)
			}
		}}},
		{"status report", func() (*Message, error) {
			return b.Status(StatusReport{{MessageID: target, Status: StatusDelivered}, {MessageID: reaction, Status: StatusRead}})
		}, []check{func(t *testing.T, m *Message) {
			rep, ok, err := m.StatusReport()
			if err != nil || !ok || len(rep) != 2 || rep[0].Status != StatusDelivered || rep[1].MessageID != reaction {
				t.Errorf("report %v %v %v", rep, ok, err)
			}
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			built, err := tc.build()
			if err != nil {
				t.Fatal(err)
			}
			data, id, err := built.EncodeWithID(IDDraft08)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			again, err := m.Encode()
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("decoded message re-encodes differently: %v", err)
			}
			if id2, _ := ComputeID(IDDraft08, data, alice, room); id2 != id || id[0] != HashAlgSHA256 {
				t.Errorf("ID %s vs %s", id, id2)
			}
			if m.Extensions.SenderURI() != alice || m.Extensions.RoomURI() != room {
				t.Errorf("URIs %q %q", m.Extensions.SenderURI(), m.Extensions.RoomURI())
			}
			if ts, ok := m.Extensions.SenderTimestamp(); !ok || !ts.Equal(now) {
				t.Errorf("sender timestamp %v %v", ts, ok)
			}
			if m.Salt == (Salt{}) {
				t.Error("zero salt")
			}
			for _, c := range tc.checks {
				c(t, m)
			}
		})
	}
	// Two messages never share a salt.
	m1, _ := b.Text("same")
	m2, _ := b.Text("same")
	if m1.Salt == m2.Salt {
		t.Error("salt reused")
	}
}

func TestBuilderErrors(t *testing.T) {
	b := &Builder{SenderURI: alice, RoomURI: room}
	if _, err := (&Builder{RoomURI: room}).Text("x"); !errors.Is(err, ErrNoURI) {
		t.Errorf("no sender: %v", err)
	}
	if _, err := b.Reaction(MessageID{1}, ""); !errors.Is(err, ErrSchema) {
		t.Errorf("empty reaction: %v", err)
	}
	if _, err := b.Text("x", ExpiresAfterRead(0)); !errors.Is(err, ErrSchema) {
		t.Errorf("zero relative expiry: %v", err)
	}
	if _, err := b.Text("x", Topic(make([]byte, MaxTopicIDSize+1))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("long topic: %v", err)
	}
	if _, err := b.New(Multipart(ChooseOne, PlainText("only one"))); !errors.Is(err, ErrSchema) {
		t.Errorf("one-part multipart: %v", err)
	}
	if _, err := b.Attachment(ExternalPart{}, DispAttachment); !errors.Is(err, ErrSchema) {
		t.Errorf("attachment without URL: %v", err)
	}
	if _, err := (&Builder{SenderURI: alice, RoomURI: room, Rand: bytes.NewReader([]byte{1, 2})}).Text("x"); err == nil {
		t.Error("short random source accepted")
	}
}

func TestAttachment(t *testing.T) {
	rnd := mrand.NewChaCha8([32]byte{7})
	file := bytes.Repeat([]byte("Röntgenbild "), 1000)
	part, ct, err := EncryptAttachment(rnd, file, AttachmentMeta{ContentType: "image/png", Filename: "roentgen.png", Description: "Thorax"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("Röntgenbild")) || part.Size != uint64(len(ct)) || len(part.Key) != 16 || len(part.Nonce) != 12 {
		t.Fatalf("part %+v", part)
	}
	part.URL = "https://assets.klinik-a.example/a/1"
	b := &Builder{SenderURI: bob, RoomURI: room, Rand: rnd}
	m, err := b.Attachment(part, DispAttachment)
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	x := got.Body.Body.(ExternalPart)
	if got.Body.Disposition != DispAttachment || x.Filename != "roentgen.png" || x.URL != part.URL {
		t.Fatalf("decoded %+v", got.Body)
	}
	pt, err := x.Decrypt(ct)
	if err != nil || !bytes.Equal(pt, file) {
		t.Fatalf("Decrypt: %v", err)
	}

	// Tampering is detected: by the hash, by the AEAD when the hash was
	// updated too, and by the size.
	bad := bytes.Clone(ct)
	bad[10] ^= 1
	if _, err := x.Decrypt(bad); !errors.Is(err, ErrIntegrity) {
		t.Errorf("tampered file: %v", err)
	}
	rehashed := x
	h, _ := newHash(HashAlgSHA256)
	h.Write(bad)
	rehashed.ContentHash = h.Sum(nil)
	if _, err := rehashed.Decrypt(bad); !errors.Is(err, ErrIntegrity) {
		t.Errorf("tampered file with matching hash: %v", err)
	}
	if _, err := x.Decrypt(ct[:len(ct)-1]); !errors.Is(err, ErrIntegrity) {
		t.Errorf("truncated file: %v", err)
	}
	wrongKey := x
	wrongKey.Key = make([]byte, 16)
	if _, err := wrongKey.Decrypt(ct); !errors.Is(err, ErrIntegrity) {
		t.Errorf("wrong key: %v", err)
	}
	// Fresh key and nonce for each file.
	part2, _, err := EncryptAttachment(nil, file, AttachmentMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(part2.Key, part.Key) || bytes.Equal(part2.Nonce, part.Nonce) {
		t.Error("key or nonce reused")
	}
}

func TestPartIndexAndCID(t *testing.T) {
	m, err := Decode(readVector(t, "multipart-3"))
	if err != nil {
		t.Fatal(err)
	}
	parts := m.Parts()
	if len(parts) != 11 {
		t.Fatalf("%d parts, want 11", len(parts))
	}
	if p, err := m.ResolveCID(CIDRef(5)); err != nil || p.Body.(SinglePart).ContentType != "image/gif" {
		t.Errorf("cid 5: %v %v", p, err)
	}
	if p, err := m.ResolveCID("cid:10@local.invalid"); err != nil || p.Body.(SinglePart).ContentType != "image/png" {
		t.Errorf("cid 10: %v %v", p, err)
	}
	if _, err := m.ResolveCID(CIDRef(2)); err == nil {
		t.Error("a multipart can be referenced")
	}
	if _, err := m.ResolveCID(CIDRef(11)); err == nil {
		t.Error("index out of range resolved")
	}
	// First choices everywhere: English HTML of the GIF version; the GIF is
	// referenced by it and therefore not handled again.
	got := m.Renderable(nil)
	if len(got) != 1 || got[0].Index != 3 {
		t.Errorf("Renderable(nil) = %v", indexes(got))
	}
	// Choosing the PNG version and French.
	choose := func(mp MultiPart) int {
		if len(mp.Parts) == 2 && mp.Parts[0].Language == "en" {
			return 1
		}
		if mp.Parts[0].Body.Cardinality() == CardMulti {
			return 1
		}
		return 0
	}
	if got := m.Renderable(choose); !slices.Equal(indexes(got), []int{9}) {
		t.Errorf("Renderable(png, fr) = %v", indexes(got))
	}
	// Without references, processAll parts are all handled.
	m2, _ := Decode(readVector(t, "multipart-2"))
	if got := m2.Renderable(nil); !slices.Equal(indexes(got), []int{1, 2, 3}) {
		t.Errorf("multipart-2 renderable %v", indexes(got))
	}
}

func indexes(ps []IndexedPart) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.Index)
	}
	return out
}

func TestMentionVectors(t *testing.T) {
	for _, name := range []string{"mention", "mention-html"} {
		m, err := Decode(readVector(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.MentionedURIs(); !slices.Equal(got, []string{alice}) {
			t.Errorf("%s: mentions %v, want [%s]", name, got, alice)
		}
	}
	m, _ := Decode(readVector(t, "original"))
	if got := m.MentionedURIs(); len(got) != 0 {
		t.Errorf("original mentions %v", got)
	}
}
