package matrix

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestAttachmentUnavailable: an expired (or otherwise unavailable) attachment does not hold the
// room's partition with redeliveries; the message goes out with a notice instead.
func TestAttachmentUnavailable(t *testing.T) {
	now := time.Now()
	st, err := assets.New(filepath.Join(t.TempDir(), "assets"), "localhost", 0, assets.WithExpiry(time.Hour),
		assets.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	asset, err := st.Put(t.Context(), bytes.NewReader([]byte("scan")), assets.Meta{ContentType: "image/png", Filename: "scan.png"})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	a := &Adapter{assets: st, log: slog.New(slog.DiscardHandler)}
	o := &outbound{env: &event.Envelope{ID: "e1", Room: "mimi://localhost/r/x"}}
	c := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "Befund anbei"}
	x := &content.ExternalPart{ContentType: asset.ContentType, URL: asset.URL, EncAlg: content.AEADAES128GCM, Key: asset.Key,
		Nonce: asset.Nonce, HashAlg: asset.HashAlg, ContentHash: asset.Hash, Filename: asset.Filename}
	if err := a.attachMedia(t.Context(), o, c, x); err != nil {
		t.Fatalf("attachMedia: %v", err)
	}
	if c.MsgType != mevent.MsgText || !strings.HasPrefix(c.Body, "Befund anbei\n") || !strings.Contains(c.Body, "scan.png is not available") {
		t.Fatalf("content = %+v", c)
	}
}

// TestPlainLinkShownAsLink: an unencrypted external part is a link the gateway does not fetch;
// it reaches the Matrix user as a link (beside the text, once), not as a missing file.
func TestPlainLinkShownAsLink(t *testing.T) {
	a := &Adapter{log: slog.New(slog.DiscardHandler)}
	link := content.NestedPart{Disposition: content.DispAttachment, Body: content.ExternalPart{ContentType: "application/pdf",
		URL: "https://files.amt-b.example/befund.pdf?a=1&b=2", Filename: "befund.pdf"}}
	for _, c := range []struct {
		name       string
		body       content.NestedPart
		text, html string
	}{
		{"link alone", link, "befund.pdf: https://files.amt-b.example/befund.pdf?a=1&b=2",
			`<a href="https://files.amt-b.example/befund.pdf?a=1&amp;b=2">befund.pdf</a>`},
		{"link with text", content.Multipart(content.ProcessAll, content.PlainText("Befund <neu>"), link),
			"Befund <neu>\nbefund.pdf: https://files.amt-b.example/befund.pdf?a=1&b=2",
			`Befund &lt;neu&gt;<br><a href="https://files.amt-b.example/befund.pdf?a=1&amp;b=2">befund.pdf</a>`},
		{"text that carries the link", content.Multipart(content.ProcessAll, content.PlainText("see https://files.amt-b.example/befund.pdf?a=1&b=2"), link),
			"see https://files.amt-b.example/befund.pdf?a=1&b=2", ""},
		{"not a web link", content.NestedPart{Disposition: content.DispAttachment, Body: content.ExternalPart{URL: "ftp://x.example/f"}},
			"ftp://x.example/f", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := &outbound{env: &event.Envelope{ID: "e1", Room: "mimi://localhost/r/x"}, msg: &content.Message{Body: c.body}}
			got, err := a.messageContent(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != c.text || got.FormattedBody != c.html || got.MsgType != mevent.MsgText {
				t.Errorf("content %s body %q html %q; want %q, %q", got.MsgType, got.Body, got.FormattedBody, c.text, c.html)
			}
		})
	}
}
