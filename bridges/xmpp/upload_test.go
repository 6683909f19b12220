package xmpp

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestUploadStoredEncrypted sends an XEP-0066 link to the XMPP server's upload service (a real
// HTTP server on loopback standing in for mod_http_file_share): the adapter downloads the file,
// stores it encrypted in the asset store and sends an encrypted ExternalPart that decrypts to the
// original. Links to other hosts pass unchanged; oversized and missing files are refused.
func TestUploadStoredEncrypted(t *testing.T) {
	file := bytes.Repeat([]byte("PNGDATA-"), 4096)
	upload := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/share/abc/scan.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(file)
		case "/share/big.bin":
			_, _ = w.Write(make([]byte, 70<<10))
		default:
			http.NotFound(w, r)
		}
	}))
	defer upload.Close()
	store, err := assets.New(filepath.Join(t.TempDir(), "assets"), "gw.localhost", 0)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(upload.URL, "http://")
	e := newEnvWith(t, func(c *Config) { c.UploadHosts, c.MaxUploadBytes = []string{host}, 64<<10 }, withAssets(store))
	alice := dialClient(t, e.p, "alice", "phone")

	link := upload.URL + "/share/abc/scan.png"
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='u1'><body>` + link + `</body><x xmlns='jabber:x:oob'><url>` + link + `</url></x></message>`)
	env := e.out.wait(t, "upload", func(x *event.Envelope) bool { return x.Origin.Event == "u1" })
	xp, ok := decodeContent(t, env).Body.Body.(content.ExternalPart)
	if !ok || xp.EncAlg != content.AEADAES128GCM || !strings.HasPrefix(xp.URL, "https://gw.localhost/assets/") || xp.ContentType != "image/png" || xp.Filename != "scan.png" {
		t.Fatalf("external part: %+v", xp)
	}
	rc, err := store.Open(t.Context(), &assets.Asset{URL: xp.URL, Key: xp.Key, Nonce: xp.Nonce, HashAlg: xp.HashAlg, Hash: xp.ContentHash})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, file) {
		t.Fatalf("stored file differs: %d bytes, want %d", len(got), len(file))
	}

	other := "https://elsewhere.example/x.pdf"
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='u2'><body>` + other + `</body><x xmlns='jabber:x:oob'><url>` + other + `</url></x></message>`)
	env = e.out.wait(t, "foreign link", func(x *event.Envelope) bool { return x.Origin.Event == "u2" })
	if text := plainText(t, decodeContent(t, env)); text != other {
		t.Fatalf("a link to a host that is not an upload host: %+v, want the link as text", decodeContent(t, env).Body)
	}
	// An OOB link the body does not carry is added to the text.
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='u5'><body>Befund</body><x xmlns='jabber:x:oob'><url>` + other + `</url></x></message>`)
	env = e.out.wait(t, "a link beside text", func(x *event.Envelope) bool { return x.Origin.Event == "u5" })
	if text := plainText(t, decodeContent(t, env)); text != "Befund\n"+other {
		t.Fatalf("text with a link: %q", text)
	}

	for id, tc := range map[string]struct{ path, cond string }{
		"u3": {"/share/big.bin", "policy-violation"},
		"u4": {"/share/missing.png", "item-not-found"},
	} {
		l := upload.URL + tc.path
		alice.send(`<message to='` + testBobPuppet + `' type='chat' id='` + id + `'><body>` + l + `</body><x xmlns='jabber:x:oob'><url>` + l + `</url></x></message>`)
		if c := errorCondition(alice.expect(tc.path, isError(id))); c != tc.cond {
			t.Errorf("%s: condition %q, want %q", tc.path, c, tc.cond)
		}
	}
}
