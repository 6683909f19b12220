package xcontent

import (
	"net/url"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/content"
)

func TestRender(t *testing.T) {
	b := &content.Builder{SenderURI: "mimi://clinic-b.example/u/bob", RoomURI: "mimi://localhost/r/ward7"}
	md, _ := b.Markdown("**Befund** liegt vor")
	if got, oob := Render(md); got != "Befund liegt vor" || oob != nil {
		t.Errorf("markdown: %q %v", got, oob)
	}
	html, _ := b.MarkdownWithHTML("*a*", "<em>a</em>")
	if got, _ := Render(html); got != "a" {
		t.Errorf("chooseOne: %q", got)
	}
	att, _ := b.Attachment(content.ExternalPart{ContentType: "image/png", URL: "https://x.example/a.png", Filename: "a.png"}, content.DispInline)
	if got, oob := Render(att); got != "https://x.example/a.png" || oob == nil || oob.URL != "https://x.example/a.png" {
		t.Errorf("attachment: %q %+v", got, oob)
	}
	enc, _ := b.Attachment(content.ExternalPart{ContentType: "image/png", URL: "https://x.example/a.bin", Filename: "scan.png",
		EncAlg: content.AEADAES128GCM, Key: make([]byte, 16), Nonce: make([]byte, 12)}, content.DispAttachment)
	if got, oob := Render(enc); got != "[encrypted attachment scan.png not available on XMPP]" || oob != nil {
		t.Errorf("encrypted attachment: %q %+v", got, oob)
	}
	two, _ := b.New(content.Multipart(content.ProcessAll,
		content.NestedPart{Disposition: content.DispAttachment, Body: content.ExternalPart{URL: "https://x.example/a.pdf"}},
		content.NestedPart{Disposition: content.DispAttachment, Body: content.ExternalPart{URL: "https://y.example/b.pdf"}}))
	if got, oob := Render(two); got != "https://x.example/a.pdf\nhttps://y.example/b.pdf" || oob == nil || oob.URL != "https://x.example/a.pdf" {
		t.Errorf("two links: %q %+v", got, oob)
	}
	odd, _ := b.New(content.NestedPart{Disposition: content.DispRender, Body: content.SinglePart{ContentType: "application/x-thing", Content: []byte{1}}})
	if got, _ := Render(odd); got != "[content of type application/x-thing not shown]" {
		t.Errorf("unknown type: %q", got)
	}
}

// TestFilePart: the type from the extension, the name from the last path element and the
// description from the link, each left out when unusable.
func TestFilePart(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		link, desc string
		want       content.ExternalPart
	}{
		{"https://up.example/abc/scan.pdf", "Befund", content.ExternalPart{ContentType: "application/pdf", Filename: "scan.pdf", Description: "Befund"}},
		{"https://up.example/abc/notes", "", content.ExternalPart{ContentType: "application/octet-stream", Filename: "notes"}},
		{"https://up.example/", "", content.ExternalPart{ContentType: "application/octet-stream"}},
		{"https://up.example/abc/" + long + ".png", strings.Repeat("d", 1025), content.ExternalPart{ContentType: "image/png"}},
		{"https://up.example/abc/a.png", "\xff", content.ExternalPart{ContentType: "image/png", Filename: "a.png"}},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.link)
		if err != nil {
			t.Fatal(err)
		}
		tc.want.URL = tc.link
		if got := FilePart(u, tc.desc); got.ContentType != tc.want.ContentType || got.Filename != tc.want.Filename ||
			got.Description != tc.want.Description || got.URL != tc.want.URL {
			t.Errorf("FilePart(%s, %q) = %+v, want %+v", tc.link, tc.desc, got, tc.want)
		}
	}
}
