package matrix

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges"
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
	asset, err := st.Put(t.Context(), bytes.NewReader([]byte("scan")), bridges.AssetMeta{ContentType: "image/png", Filename: "scan.png"})
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
