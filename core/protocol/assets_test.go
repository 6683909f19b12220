package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

var assetID = strings.Repeat("0123456789abcdef", 2)

func TestParseAssetURL(t *testing.T) {
	tests := []struct {
		in       string
		host, id string
	}{
		{"https://b.example/assets/" + assetID, "b.example", assetID},
		{"https://B.Example./assets/" + assetID, "b.example", assetID},
		{"https://mimi.b-2.example/assets/" + assetID, "mimi.b-2.example", assetID},
		{"https://127.0.0.1/assets/" + assetID, "127.0.0.1", assetID},
		{"http://b.example/assets/" + assetID, "", ""},
		{"https://b.example:8443/assets/" + assetID, "", ""},
		{"https://b.example:/assets/" + assetID, "", ""},
		{"https://user@b.example/assets/" + assetID, "", ""},
		{"https://b.example/assets/" + assetID + "?x", "", ""},
		{"https://b.example/assets/" + assetID + "?", "", ""},
		{"https://b.example/assets/" + assetID + "#f", "", ""},
		{"https://b.example/assets/" + assetID + "/", "", ""},
		{"https://b.example/assets/" + strings.ToUpper(assetID), "", ""},
		{"https://b.example/assets/" + assetID[:31], "", ""},
		{"https://b.example/assets/%30" + assetID[1:], "", ""},
		{"https://b.example/assets/../" + assetID, "", ""},
		{"https://b.example/x/assets/" + assetID, "", ""},
		{"https://[::1]/assets/" + assetID, "", ""},
		{"https://b%2eexample/assets/" + assetID, "", ""},
		{"https:///assets/" + assetID, "", ""},
		{"https:b.example/assets/" + assetID, "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		host, id, err := protocol.ParseAssetURL(tc.in)
		if tc.host == "" {
			if err == nil || !errors.Is(err, protocol.ErrAssetURL) {
				t.Errorf("ParseAssetURL(%q) = %q, %q, %v; want ErrAssetURL", tc.in, host, id, err)
			}
			continue
		}
		if err != nil || host != tc.host || id != tc.id {
			t.Errorf("ParseAssetURL(%q) = %q, %q, %v; want %q, %q", tc.in, host, id, err, tc.host, tc.id)
		}
	}
}

// FuzzParseAssetURL: no panic, and an accepted URL is exactly the canonical URL of its parts
// up to the case and trailing dot of the host.
func FuzzParseAssetURL(f *testing.F) {
	for _, s := range []string{"https://b.example/assets/" + assetID, "https://B.example./assets/" + assetID, "https://b.example:1/assets/x",
		"https://[::1]/assets/" + assetID, "mimi://b.example/u/x", "https://b.example/assets/" + assetID + "?#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, id, err := protocol.ParseAssetURL(s)
		if err != nil {
			return
		}
		if _, err := protocol.ParseAssetID(id); err != nil {
			t.Fatalf("accepted ID %q: %v", id, err)
		}
		canon := protocol.AssetURL("HOST", id)
		got := strings.Replace(strings.ToLower(s), strings.ToLower(host)+".", host, 1)
		if strings.Replace(canon, "HOST", host, 1) != strings.Replace(got, "/assets/"+strings.ToLower(id), "/assets/"+id, 1) {
			t.Fatalf("%q accepted as host %q id %q", s, host, id)
		}
		h2, id2, err := protocol.ParseAssetURL(protocol.AssetURL("x", id))
		if err != nil || h2 != "x" || id2 != id {
			t.Fatalf("canonical URL of %q does not parse: %v", id, err)
		}
	})
}

// assetServer serves two fixed assets.
type assetServer struct{ handler }

var _ protocol.AssetHandler = (*assetServer)(nil)

func (h *assetServer) OpenAsset(_ context.Context, peer protocol.Peer, id string) (io.ReadCloser, int64, error) {
	switch id {
	case assetID:
		b := []byte("ciphertext for " + string(peer.Domain))
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	case strings.Repeat("f", 32):
		return io.NopCloser(bytes.NewReader(make([]byte, 2048))), 2048, nil
	}
	return nil, 0, &protocol.StatusError{Status: http.StatusNotFound, Detail: "no such asset"}
}

// assetPair starts a (serving with ha) and b as each other's partners on network n.
func assetPair(t *testing.T, ha protocol.Handler) (*protocoltest.Network, *protocoltest.Provider, *protocoltest.Provider) {
	t.Helper()
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	a := protocoltest.NewProvider(t, n, ca, domainA, ha, protocoltest.Options{})
	b := protocoltest.NewProvider(t, n, ca, domainB, &handler{}, protocoltest.Options{})
	a.Partners.Set([]protocol.Partner{b.PartnerEntry(false)})
	b.Partners.Set([]protocol.Partner{a.PartnerEntry(false)})
	return n, a, b
}

// TestServeAsset: GET /assets/<id> on the mTLS listener, through the client's direct download.
func TestServeAsset(t *testing.T) {
	n, a, b := assetPair(t, &assetServer{})
	ctx := t.Context()
	read := func(u string, limit int64) (string, error) {
		rc, _, err := b.Client.OpenAsset(ctx, u, limit)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		return string(got), err
	}
	got, err := read("https://a.example/assets/"+assetID, 1024)
	if err != nil || got != "ciphertext for b.example" {
		t.Fatalf("download = %q, %v", got, err)
	}
	var he *protocol.HTTPError
	if _, err := read("https://a.example/assets/"+strings.Repeat("1", 32), 1024); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("unknown asset: %v", err)
	}
	if _, err := read("https://a.example/assets/"+strings.Repeat("f", 32), 1024); !errors.Is(err, protocol.ErrAssetTooLarge) {
		t.Errorf("asset over the client's limit: %v", err)
	}
	if _, err := read("https://c.example/assets/"+assetID, 1024); !errors.Is(err, protocol.ErrNotPartner) {
		t.Errorf("asset of a non-partner: %v", err)
	}
	// A partner configured with a base URL: its host is an asset domain of the partner too, and
	// the download goes to the base URL.
	e := a.PartnerEntry(false)
	e.BaseURL, _ = url.Parse("https://a.example/mimi/")
	b.Partners.Set([]protocol.Partner{e})
	if _, err := read("https://a.example/assets/"+assetID, 1024); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("download below the base URL path: %v, want 404 from /mimi/assets/", err)
	}
	if d, ok := b.Partners.AssetPartner("A.example."); !ok || d != domainA {
		t.Errorf("AssetPartner = %q, %v", d, ok)
	}
	b.Partners.Set([]protocol.Partner{a.PartnerEntry(false)})

	// The server side, with raw requests: bad IDs, methods, the server's own size limit.
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodHead, "/assets/" + assetID, http.StatusOK},
		{http.MethodPost, "/assets/" + assetID, http.StatusMethodNotAllowed},
		{http.MethodGet, "/assets/" + strings.ToUpper(assetID), http.StatusNotFound},
		{http.MethodGet, "/assets/" + assetID + "/x", http.StatusNotFound},
		{http.MethodGet, "/assets/", http.StatusNotFound},
	} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, "https://a.example"+tc.path, nil)
		req.Header.Set("From", "mimi@b.example")
		resp, err := rawClient(b.CA, n, &b.Certificate, string(domainA)).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
	}
	// A provider without the capability answers 404.
	_, b2 := protocoltest.NewPair(t, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	if _, _, err := b2.Client.OpenAsset(ctx, "https://a.example/assets/"+assetID, 1024); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("no capability: %v", err)
	}
}

// TestServeAssetLimit: the server refuses to serve a stored asset above Limits.Asset.
func TestServeAssetLimit(t *testing.T) {
	n, a, b := assetPair(t, &assetServer{})
	srv, err := protocol.NewServer(protocol.ServerConfig{Domain: domainA, Certificate: a.Certificate, ClientCAs: a.CA.Pool,
		Partners: a.Partners, Handler: &assetServer{}, Store: a.Store, Limits: protocol.Limits{Asset: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	_ = a.Server.Shutdown(t.Context())
	n.Set(string(domainA), addr.String())
	var he *protocol.HTTPError
	if _, _, err := b.Client.OpenAsset(t.Context(), "https://a.example/assets/"+strings.Repeat("f", 32), 1<<20); !errors.As(err, &he) || he.Status != http.StatusInternalServerError {
		t.Errorf("asset over the server's limit: %v", err)
	}
	rc, _, err := b.Client.OpenAsset(t.Context(), "https://a.example/assets/"+assetID, 1<<20)
	if err != nil {
		t.Fatalf("asset within the limit: %v", err)
	}
	rc.Close()
}
