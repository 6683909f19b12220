package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// assetNode is a provider (real store, embedded NATS, mTLS server) with an asset store whose
// clock the test moves.
type assetNode struct {
	domain event.Domain
	dir    string
	assets *assets.Store
	tp     *protocoltest.Provider
	now    atomic.Int64 // Unix seconds of the asset store's clock
}

func newAssetNode(t *testing.T, n *protocoltest.Network, ca *protocoltest.CA, domain event.Domain, maxSize int64) *assetNode {
	t.Helper()
	ctx := context.Background()
	nd := &assetNode{domain: domain, dir: filepath.Join(t.TempDir(), "assets")}
	nd.now.Store(time.Now().Unix())
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(t.TempDir(), "nats")},
		ReadyTimeout: 15 * time.Second}, testLogger())
	if err != nil {
		t.Fatalf("bus: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	nd.assets, err = assets.New(nd.dir, string(domain), maxSize, assets.WithExpiry(time.Hour),
		assets.WithClock(func() time.Time { return time.Unix(nd.now.Load(), 0) }))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ctx, Config{Domain: domain, Store: st, Bus: b, Assets: nd.assets, Logger: testLogger().With("domain", domain)})
	if err != nil {
		t.Fatal(err)
	}
	nd.tp = protocoltest.NewProvider(t, n, ca, domain, p, protocoltest.Options{Store: st})
	nd.assets.SetDownloader(nd.tp.Client)
	return nd
}

func (nd *assetNode) put(t *testing.T, data []byte) *assets.Asset {
	t.Helper()
	a, err := nd.assets.Put(t.Context(), bytes.NewReader(data), assets.Meta{ContentType: "application/pdf", Filename: "befund.pdf", Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (nd *assetNode) open(ctx context.Context, a *assets.Asset, room event.RoomURI) ([]byte, error) {
	x := *a
	x.Room = room
	rc, err := nd.assets.Open(ctx, &x)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAssetsAcrossProviders: a.example is the hub of the room, b.example and c.example are its
// partners but not each other's. B's attachment reaches A directly and C through A's
// /proxyDownload, byte-exact; the refusals, expiry, tampering and size limits are checked on the
// real mTLS listeners.
func TestAssetsAcrossProviders(t *testing.T) {
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	a := newAssetNode(t, n, ca, "a.example", 0)
	b := newAssetNode(t, n, ca, "b.example", 0)
	c := newAssetNode(t, n, ca, "c.example", 1<<10)
	a.tp.Partners.Set([]protocol.Partner{b.tp.PartnerEntry(false), c.tp.PartnerEntry(false)})
	b.tp.Partners.Set([]protocol.Partner{a.tp.PartnerEntry(false)})
	c.tp.Partners.Set([]protocol.Partner{a.tp.PartnerEntry(false)})
	const room event.RoomURI = "mimi://a.example/r/fallkonferenz"
	ctx := t.Context()

	plain := randomBytes(t, 700)
	asset := b.put(t, plain)
	if !strings.HasPrefix(asset.URL, "https://b.example/assets/") {
		t.Fatalf("URL %s", asset.URL)
	}

	t.Run("direct", func(t *testing.T) {
		got, err := a.open(ctx, asset, room)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatal("A decrypted other bytes than B stored")
		}
	})
	t.Run("through the hub", func(t *testing.T) {
		got, err := c.open(ctx, asset, room)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatal("C decrypted other bytes than B stored")
		}
	})
	t.Run("no room, no hub", func(t *testing.T) {
		if _, err := c.open(ctx, asset, ""); !errors.Is(err, assets.ErrNotAllowed) {
			t.Fatalf("C without a hub: %v", err)
		}
	})
	t.Run("hub is the owner", func(t *testing.T) {
		// C never asks B's own hub to proxy B's asset: the owner refused or is unknown.
		if _, err := c.open(ctx, asset, "mimi://b.example/r/x"); !errors.Is(err, assets.ErrNotAllowed) {
			t.Fatalf("C with B as hub: %v", err)
		}
	})
	t.Run("hub refuses foreign hosts", func(t *testing.T) {
		id := strings.TrimPrefix(asset.URL, "https://b.example/assets/")
		for _, u := range []string{
			"https://evil.example/assets/" + id,
			"https://127.0.0.1/assets/" + id,
			"https://localhost/assets/" + id,
		} {
			var buf bytes.Buffer
			var he *protocol.HTTPError
			err := c.tp.Client.ProxyDownload(ctx, "a.example", u, &buf, 1<<20)
			if !errors.As(err, &he) || he.Status != http.StatusForbidden || buf.Len() != 0 {
				t.Errorf("proxyDownload %s: %v (%d bytes)", u, err, buf.Len())
			}
		}
		var he *protocol.HTTPError
		for _, u := range []string{"https://b.example/etc/passwd", "http://b.example/assets/" + id, "https://b.example/assets/" + id + "?x=1"} {
			if err := c.tp.Client.ProxyDownload(ctx, "a.example", u, io.Discard, 1<<20); !errors.As(err, &he) || he.Status != http.StatusBadRequest {
				t.Errorf("proxyDownload %s: %v", u, err)
			}
		}
	})
	t.Run("hub serves its own", func(t *testing.T) {
		own := randomBytes(t, 300)
		aa := a.put(t, own)
		got, err := c.open(ctx, aa, room)
		if err != nil || !bytes.Equal(got, own) {
			t.Fatalf("C opening A's asset: %v", err)
		}
	})

	t.Run("client certificates", func(t *testing.T) {
		u := "https://b.example/assets/" + strings.TrimPrefix(asset.URL, "https://b.example/assets/")
		get := func(cert *tls.Certificate, from string) (int, error) {
			cfg := &tls.Config{RootCAs: ca.Pool, ServerName: "b.example", MinVersion: tls.VersionTLS13}
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
			hc := &http.Client{Transport: &http.Transport{DialContext: n.DialContext, TLSClientConfig: cfg}}
			defer hc.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			req.Header.Set("From", from)
			resp, err := hc.Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			return resp.StatusCode, nil
		}
		if code, err := get(nil, "mimi@a.example"); err != nil || code != http.StatusUnauthorized {
			t.Errorf("no certificate: %d %v", code, err)
		}
		stranger := ca.Issue(t, "d.example")
		if code, err := get(&stranger, "mimi@d.example"); err != nil || code != http.StatusForbidden {
			t.Errorf("certificate of a non-partner: %d %v", code, err)
		}
		if code, err := get(&stranger, "mimi@a.example"); err != nil || code != http.StatusForbidden {
			t.Errorf("non-partner certificate claiming a partner: %d %v", code, err)
		}
		other := protocoltest.NewCA(t).Issue(t, "a.example")
		if _, err := get(&other, "mimi@a.example"); err == nil {
			t.Error("certificate from an unknown CA accepted")
		}
		cA := a.tp.Certificate
		if code, err := get(&cA, "mimi@a.example"); err != nil || code != http.StatusOK {
			t.Errorf("partner: %d %v", code, err)
		}
	})

	t.Run("tampered", func(t *testing.T) {
		tam := b.put(t, randomBytes(t, 500))
		id := strings.TrimPrefix(tam.URL, "https://b.example/assets/")
		path := filepath.Join(b.dir, id)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)/2] ^= 0x40
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := a.open(ctx, tam, room); !errors.Is(err, assets.ErrIntegrity) {
			t.Errorf("A opening a tampered asset: %v", err)
		}
		if _, err := c.open(ctx, tam, room); !errors.Is(err, assets.ErrIntegrity) {
			t.Errorf("C opening a tampered asset through the hub: %v", err)
		}
	})

	t.Run("size limit", func(t *testing.T) {
		big := b.put(t, randomBytes(t, 4<<10)) // C's limit is 1 KiB
		if _, err := c.open(ctx, big, room); !errors.Is(err, assets.ErrTooLarge) {
			t.Errorf("C opening an oversized asset: %v", err)
		}
		if _, _, err := a.tp.Client.OpenAsset(ctx, big.URL, 1<<10); !errors.Is(err, protocol.ErrAssetTooLarge) {
			t.Errorf("an oversized direct download: %v", err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		exp := b.put(t, randomBytes(t, 100))
		id := strings.TrimPrefix(exp.URL, "https://b.example/assets/")
		if !exp.Expires.Equal(time.Unix(b.now.Load(), 0).Add(time.Hour)) {
			t.Errorf("Expires = %v", exp.Expires)
		}
		b.now.Add(int64(time.Hour / time.Second))
		var he *protocol.HTTPError
		if _, _, err := a.tp.Client.OpenAsset(ctx, exp.URL, 1<<20); !errors.As(err, &he) || he.Status != http.StatusNotFound {
			t.Errorf("expired asset fetched: %v", err)
		}
		if _, err := a.open(ctx, exp, room); !errors.Is(err, assets.ErrNotFound) {
			t.Errorf("A opening an expired asset: %v", err)
		}
		if _, err := c.open(ctx, exp, room); !errors.Is(err, assets.ErrNotFound) {
			t.Errorf("C opening an expired asset through the hub: %v", err)
		}
		if _, err := os.Stat(filepath.Join(b.dir, id)); err != nil {
			t.Fatalf("swept before the sweep: %v", err)
		}
		removed, err := b.assets.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if removed < 2 {
			t.Errorf("sweep removed %d files", removed)
		}
		for _, name := range []string{id, id + ".meta"} {
			if _, err := os.Stat(filepath.Join(b.dir, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s after the sweep: %v", name, err)
			}
		}
	})
}
