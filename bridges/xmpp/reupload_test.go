package xmpp

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/prosodytest"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestPartnerAttachmentUploaded: an encrypted attachment from a partner is decrypted and put on
// Prosody's upload service (mod_http_file_share) by the users component, and the XMPP user gets
// its link, which serves the original file. Without an upload service it is announced as text.
func TestPartnerAttachmentUploaded(t *testing.T) {
	p := prosodytest.Start(t, prosodytest.Config{
		Domain:     testDomain,
		Components: []prosodytest.Component{{Domain: testUsers, Secret: testSecretU}, {Domain: testRooms, Secret: testSecretR}},
		Users:      map[string]string{"alice": "pw"},
		Upload:     true,
	})
	store, err := assets.New(filepath.Join(t.TempDir(), "assets"), "clinic-b.example", 0)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, p, func(c *Config) { c.UploadService = p.UploadDomain }, withAssets(store))
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")

	file := bytes.Repeat([]byte("Entlassbrief "), 3000)
	asset, err := store.Put(t.Context(), bytes.NewReader(file), assets.Meta{ContentType: "text/plain", Filename: "brief.txt", Size: int64(len(file))})
	if err != nil {
		t.Fatal(err)
	}
	b := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	msg, err := b.Attachment(content.ExternalPart{ContentType: asset.ContentType, URL: asset.URL, Size: asset.Size + 16,
		EncAlg: content.AEADAES128GCM, Key: asset.Key, Nonce: asset.Nonce, HashAlg: asset.HashAlg, ContentHash: asset.Hash,
		Filename: asset.Filename}, content.DispAttachment)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := mimiEnv(t, event.KindMessage, ward7URI, testBob, msg)
	e.publishIn(in)
	got := alice.expect("the attachment's link", func(n *node) bool {
		return n.XMLName.Local == "message" && n.child("jabber:x:oob", "x") != nil
	})
	link := got.child("jabber:x:oob", "x").child("", "url").Text
	if !strings.HasPrefix(link, p.UploadURL()) {
		t.Fatalf("link %q is not on the upload service %s", link, p.UploadURL())
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, file) {
		t.Fatalf("GET %s: %s, %d bytes, want %d", link, resp.Status, len(body), len(file))
	}

	// An attachment the store cannot open (an unknown asset) is announced as text.
	missing, err := b.Attachment(content.ExternalPart{ContentType: "text/plain", URL: "https://clinic-b.example/assets/unknown",
		EncAlg: content.AEADAES128GCM, Key: asset.Key, Nonce: asset.Nonce, HashAlg: asset.HashAlg, ContentHash: asset.Hash,
		Filename: "fehlt.txt"}, content.DispAttachment)
	if err != nil {
		t.Fatal(err)
	}
	in, _ = mimiEnv(t, event.KindMessage, ward7URI, testBob, missing)
	e.publishIn(in)
	alice.expect("the unavailable attachment as text", func(n *node) bool {
		b := n.child("", "body")
		return n.XMLName.Local == "message" && b != nil && strings.Contains(b.Text, "fehlt.txt")
	})
}
