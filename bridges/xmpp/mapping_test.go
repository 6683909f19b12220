package xmpp

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/content"
)

func intp(i int) *int { return &i }

func TestStripFallback(t *testing.T) {
	fb := func(ns string, s, e *int) []xstanza.InFallback {
		return []xstanza.InFallback{{For: ns, Body: []xstanza.InFallbackBody{{Start: s, End: e}}}}
	}
	tests := []struct {
		name, body string
		fbs        []xstanza.InFallback
		want       string
	}{
		{"none", "hello", nil, "hello"},
		{"quote", "> a\nb", fb(xstanza.NSReply, intp(0), intp(4)), "b"},
		{"code points not bytes", "> ä\nb", fb(xstanza.NSReply, intp(0), intp(4)), "b"},
		{"other namespace", "> a\nb", fb(xstanza.NSRetract, intp(0), intp(4)), "> a\nb"},
		{"negative start", "abc", fb(xstanza.NSReply, intp(-1), intp(2)), "abc"},
		{"end past body", "abc", fb(xstanza.NSReply, intp(0), intp(9)), "abc"},
		{"end before start", "abc", fb(xstanza.NSReply, intp(2), intp(1)), "abc"},
		{"no range is the whole body", "abc", fb(xstanza.NSReply, nil, nil), ""},
	}
	for _, tc := range tests {
		if got := xstanza.StripFallback(tc.body, tc.fbs, xstanza.NSReply); got != tc.want {
			t.Errorf("%s: xstanza.StripFallback = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, ok := range []string{"a", "m-1", "AXhLy6jmHY6nJSwOwbkGhbujOhBehgbM1dg7S5wDBMk", "ü"} {
		if !xstanza.ValidID(ok) {
			t.Errorf("xstanza.ValidID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a\nb", "\x7f", string(make([]byte, xstanza.MaxIDLen+1)), "\xff"} {
		if xstanza.ValidID(bad) {
			t.Errorf("xstanza.ValidID(%q) = true", bad)
		}
	}
}

func TestRender(t *testing.T) {
	b := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	md, _ := b.Markdown("**Befund** liegt vor")
	if got, oob := render(md); got != "Befund liegt vor" || oob != nil {
		t.Errorf("markdown: %q %v", got, oob)
	}
	html, _ := b.MarkdownWithHTML("*a*", "<em>a</em>")
	if got, _ := render(html); got != "a" {
		t.Errorf("chooseOne: %q", got)
	}
	att, _ := b.Attachment(content.ExternalPart{ContentType: "image/png", URL: "https://x.example/a.png", Filename: "a.png"}, content.DispInline)
	if got, oob := render(att); got != "https://x.example/a.png" || oob == nil || oob.URL != "https://x.example/a.png" {
		t.Errorf("attachment: %q %+v", got, oob)
	}
	enc, _ := b.Attachment(content.ExternalPart{ContentType: "image/png", URL: "https://x.example/a.bin", Filename: "scan.png",
		EncAlg: content.AEADAES128GCM, Key: make([]byte, 16), Nonce: make([]byte, 12)}, content.DispAttachment)
	if got, oob := render(enc); got != "[encrypted attachment scan.png not available on XMPP]" || oob != nil {
		t.Errorf("encrypted attachment: %q %+v", got, oob)
	}
	two, _ := b.New(content.Multipart(content.ProcessAll,
		content.NestedPart{Disposition: content.DispAttachment, Body: content.ExternalPart{URL: "https://x.example/a.pdf"}},
		content.NestedPart{Disposition: content.DispAttachment, Body: content.ExternalPart{URL: "https://y.example/b.pdf"}}))
	if got, oob := render(two); got != "https://x.example/a.pdf\nhttps://y.example/b.pdf" || oob == nil || oob.URL != "https://x.example/a.pdf" {
		t.Errorf("two links: %q %+v", got, oob)
	}
	odd, _ := b.New(content.NestedPart{Disposition: content.DispRender, Body: content.SinglePart{ContentType: "application/x-thing", Content: []byte{1}}})
	if got, _ := render(odd); got != "[content of type application/x-thing not shown]" {
		t.Errorf("unknown type: %q", got)
	}
}
