package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
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
	as, err := assets.New(filepath.Join(t.TempDir(), "assets"), cfg.Domain, 0)
	if err != nil {
		t.Fatal(err)
	}
	admin := ops.NewAdmin()
	admin.MarkStarted()
	stop, err := startProvider(ctx, adapterDeps{Config: cfg, Bus: b, Store: st, Log: slog.New(slog.DiscardHandler), Assets: as, Admin: admin})
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
	if resp.UserStatus != protocol.KeyMaterialUserNoConsent {
		t.Fatalf("user status %d, want noConsent", resp.UserStatus)
	}

	// Readiness covers the MIMI listener; metrics cover the server, the client's view of the
	// partner that called, the certificates and the outbox.
	if r := admin.Check(ctx); !r.Ready || !slices.ContainsFunc(r.Checks, func(c ops.CheckResult) bool { return c.Name == "mimi" && c.OK }) {
		t.Fatalf("readiness %+v, want ready with a passing mimi check", r)
	}
	for _, name := range []string{"mimi_gateway_protocol_server_requests_total", "mimi_gateway_protocol_server_request_seconds",
		"mimi_gateway_partner_up", "mimi_gateway_partner_last_answer_timestamp_seconds", "mimi_gateway_certificate_expiry_timestamp_seconds",
		"mimi_gateway_protocol_outbox_sent_total", "mimi_gateway_protocol_outbox_pending"} {
		if n, err := testutil.GatherAndCount(admin.Registry(), name); err != nil || n == 0 {
			t.Errorf("metric %s: %d series, %v", name, n, err)
		}
	}

	// The shared asset store is served on the same listener.
	plain := []byte("Arztbrief")
	asset, err := as.Put(ctx, bytes.NewReader(plain), assets.Meta{ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := client.OpenAsset(ctx, asset.URL, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	got, err := assets.Decrypt(ct, asset)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(got); !bytes.Equal(b, plain) {
		t.Fatalf("served asset decrypts to %q", b)
	}
}

// TestStartProviderDisabled: without mimi.address nothing listens and nothing needs stopping.
func TestStartProviderDisabled(t *testing.T) {
	stop, err := startProvider(context.Background(), adapterDeps{Config: &config.Config{Domain: "a.example"}, Log: slog.New(slog.DiscardHandler)})
	if err != nil || stop != nil {
		t.Fatalf("stop %v, err %v", stop != nil, err)
	}
}

// TestProviderReloadsPartners runs the gateway with the MIMI endpoint and changes the partner
// list by SIGHUP (runGateway's reload path): the newly added partner's request over mutual TLS
// is served at once, and the removed partner is refused from its next request on, over the
// connection it already holds.
func TestProviderReloadsPartners(t *testing.T) {
	ctx := context.Background()
	ca := protocoltest.NewCA(t)
	certFile, keyFile := protocoltest.WriteFiles(t, ca.Issue(t, "a.example"))
	work := t.TempDir()
	cfgPath := filepath.Join(work, "gw.yaml")
	mimiAddr := freeAddr(t)
	base := fmt.Sprintf("domain: a.example\ndata_dir: %s\nadmin: {address: %q}\n"+
		"mimi: {address: %q, cert_file: %s, key_file: %s, client_ca_file: %s}\n",
		work, freeAddr(t), mimiAddr, certFile, keyFile, ca.File)
	write := func(partners ...string) {
		t.Helper()
		s := base + "partners:\n"
		for _, p := range partners {
			s += fmt.Sprintf("  - {domain: %s, base_url: \"https://%s/\", ca_file: %s}\n", p, p, ca.File)
		}
		writeConfig(t, cfgPath, s)
	}
	write("b.example")

	sigs := make(chan os.Signal, 1)
	started := make(chan struct{})
	reloads := make(chan error, 1)
	done := make(chan error, 1)
	var logs syncBuffer
	go func() {
		done <- runGateway(ctx, runOptions{config: config.Options{Path: cfgPath}, signals: sigs, logOut: &logs,
			started:  func(string, *config.Manager) { close(started) },
			reloaded: func(_ config.ReloadReport, err error) { reloads <- err }})
	}()
	waitStarted(t, started, done, &logs)
	t.Cleanup(func() {
		sigs <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	// Each partner has one client, kept across the reload (its connection stays pooled).
	n := protocoltest.NewNetwork()
	n.Set("a.example", mimiAddr)
	gw, _ := url.Parse("https://a.example/")
	claim := func(from event.Domain, c *protocol.Client) error {
		t.Helper()
		signer, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		requester := "mimi://" + string(from) + "/u/someone"
		target := event.NewUserURI("a.example", "nobody")
		req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: protocol.IdentifierURI(requester),
			TargetUser: protocol.IdentifierURI(target), AcceptableCipherSuites: []mls.CipherSuite{signer.CipherSuite},
			RequesterSignatureKey: signer.Public, RequesterCredential: mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte(requester)}}
		if err := req.Sign(signer.Private); err != nil {
			t.Fatal(err)
		}
		resp, err := c.KeyMaterial(ctx, "a.example", target, req)
		if err != nil {
			return err
		}
		if resp.UserStatus != protocol.KeyMaterialUserNoConsent {
			t.Fatalf("user status %d, want noConsent", resp.UserStatus)
		}
		return nil
	}
	clientOf := func(d event.Domain) *protocol.Client {
		c, err := protocol.NewClient(protocol.ClientConfig{Domain: d, Certificate: ca.Issue(t, string(d)),
			Partners: protocol.NewPartners(protocol.Partner{Domain: "a.example", BaseURL: gw, RootCAs: ca.Pool}), DialContext: n.DialContext})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	forbidden := func(err error) bool {
		var he *protocol.HTTPError
		return errors.As(err, &he) && he.Status == http.StatusForbidden
	}
	b, c := clientOf("b.example"), clientOf("c.example")
	if err := claim("b.example", b); err != nil {
		t.Fatalf("configured partner b: %v", err)
	}
	if err := claim("c.example", c); !forbidden(err) {
		t.Fatalf("unconfigured partner c: %v, want 403", err)
	}

	write("c.example")
	sigs <- syscall.SIGHUP
	if err := <-reloads; err != nil {
		t.Fatalf("reload: %v", err)
	}
	if err := claim("c.example", c); err != nil {
		t.Fatalf("added partner c after the reload: %v", err)
	}
	if err := claim("b.example", b); !forbidden(err) {
		t.Fatalf("removed partner b after the reload: %v, want 403", err)
	}
	logs.waitFor(t, "partners reloaded")
}
