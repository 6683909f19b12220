package main

import (
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestStartProvider starts the MIMI endpoint as run does and claims key material from it over
// mutual TLS as a configured partner.
func TestStartProvider(t *testing.T) {
	ctx := context.Background()
	ca := protocoltest.NewCA(t)
	certFile, keyFile := protocoltest.WriteFiles(t, ca.Issue(t, "a.example"))
	addr := freeAddr(t)
	cfg := &config.Config{Domain: "a.example",
		MIMI:     config.MIMI{Address: addr, CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.File},
		Partners: []config.Partner{{Domain: "b.example", BaseURL: "https://b.example/", CAFile: ca.File}}}
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(t.TempDir(), "nats")}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	stop, err := startProvider(ctx, adapterDeps{Config: cfg, Bus: b, Store: st, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})

	// Partner b.example calls a.example's endpoint.
	n := protocoltest.NewNetwork()
	n.Set("a.example", addr)
	base, _ := url.Parse("https://a.example/")
	client, err := protocol.NewClient(protocol.ClientConfig{Domain: "b.example", Certificate: ca.Issue(t, "b.example"),
		Partners: protocol.NewPartners(protocol.Partner{Domain: "a.example", BaseURL: base, RootCAs: ca.Pool}), DialContext: n.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	target := event.NewUserURI("a.example", "nobody")
	req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: "mimi://b.example/u/bob",
		TargetUser: protocol.IdentifierURI(target), AcceptableCipherSuites: []mls.CipherSuite{signer.CipherSuite},
		RequesterSignatureKey: signer.Public, RequesterCredential: mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("mimi://b.example/u/bob")}}
	if err := req.Sign(signer.Private); err != nil {
		t.Fatal(err)
	}
	resp, err := client.KeyMaterial(ctx, "a.example", target, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.UserStatus != protocol.KeyMaterialUserUnknown {
		t.Fatalf("user status %d, want unknown", resp.UserStatus)
	}
}

// TestStartProviderDisabled: without mimi.address nothing listens and nothing needs stopping.
func TestStartProviderDisabled(t *testing.T) {
	stop, err := startProvider(context.Background(), adapterDeps{Config: &config.Config{Domain: "a.example"}, Log: slog.New(slog.DiscardHandler)})
	if err != nil || stop != nil {
		t.Fatalf("stop %v, err %v", stop != nil, err)
	}
}
