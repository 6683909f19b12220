package hostile

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// TestHostileSurfaceBinary: what held when the gateway was first probed by a hostile partner
// stays held on the real binary (hub.example, with good.example as its partner):
//
//   - FromCertificateBinding: evil's certificate with From: mimi@good.example is refused (403);
//   - NotAPartner: a certificate of the same CA for a provider that is not configured (403);
//   - NoClientCertificate: 401;
//   - Oversized: a /notify declaring more than 16 MiB is refused (413) before it is read;
//   - Malformed: garbage bodies get 400;
//   - Replay: the same /notify body twice is answered 201 twice and handled once;
//   - SlowHeaders: a connection that never finishes its request headers is closed;
//   - IdleConnections: 200 idle TLS connections of evil's do not keep a claim from being served,
//     and the hub closes them.
//
// Afterwards the hub is ready and its log has no panic.
func TestHostileSurfaceBinary(t *testing.T) {
	w := newWorld(t, map[string]string{"hub.example": "", "good.example": ""})
	hub, ev := w.gws["hub.example"], w.evil
	alice := event.NewUserURI("hub.example", "alice")
	hub.appear(t, alice)
	c := ev.httpClient(hub.Gateway)
	claimBody, err := ev.claimRequest(t, ev.eve, alice, "").Encode()
	if err != nil {
		t.Fatal(err)
	}
	claim := func(cl *http.Client, from event.Domain) (int, []byte) {
		t.Helper()
		status, _, b := rawPost(t, cl, hub.Gateway, from, protocol.EndpointKeyMaterial, protocol.IdentifierURI(alice), bytes.NewReader(claimBody), int64(len(claimBody)))
		return status, b
	}
	room := protocol.IdentifierURI(event.NewRoomURI(ev.domain, "surface"))

	t.Run("FromCertificateBinding", func(t *testing.T) {
		if status, b := claim(c, "good.example"); status != http.StatusForbidden {
			t.Fatalf("evil's certificate as good.example: %d %s, want 403", status, b)
		}
	})
	t.Run("NotAPartner", func(t *testing.T) {
		stranger := ev.httpClientWith(w.ca.Issue(t, "stranger.example"), hub.Gateway)
		if status, b := claim(stranger, "stranger.example"); status != http.StatusForbidden {
			t.Fatalf("a provider that is not a partner: %d %s, want 403", status, b)
		}
	})
	t.Run("NoClientCertificate", func(t *testing.T) {
		if status, b := claim(ev.httpClientWith(tls.Certificate{}, hub.Gateway), ev.domain); status != http.StatusUnauthorized {
			t.Fatalf("no client certificate: %d %s, want 401", status, b)
		}
	})
	t.Run("Oversized", func(t *testing.T) {
		// The body never comes: the answer must not wait for it.
		pr, pw := io.Pipe()
		defer pw.Close()
		status, _, b := ev.rawPost(t, c, hub.Gateway, protocol.EndpointNotify, room, pr, 16<<20+1)
		if status != http.StatusRequestEntityTooLarge {
			t.Fatalf("/notify of 16 MiB + 1: %d %s, want 413", status, b)
		}
	})
	t.Run("Malformed", func(t *testing.T) {
		garbage := bytes.Repeat([]byte{0xff, 0x00, 0x7f}, 1000)
		for _, ep := range []struct {
			ep protocol.Endpoint
			id protocol.IdentifierURI
		}{{protocol.EndpointNotify, room}, {protocol.EndpointKeyMaterial, protocol.IdentifierURI(alice)}} {
			if status, _, b := ev.rawPost(t, c, hub.Gateway, ep.ep, ep.id, bytes.NewReader(garbage), int64(len(garbage))); status != http.StatusBadRequest {
				t.Fatalf("garbage to %s: %d %s, want 400", ep.ep, status, b)
			}
		}
	})
	t.Run("Replay", func(t *testing.T) {
		g, err := mls.CreateGroup([]byte("mimi://evil.example/g/surface"), ev.signer, credential(ev.eve), mls.GroupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := g.Encrypt([]byte("once"), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := protocol.EncodeFanoutMessages([]*protocol.FanoutMessage{{Timestamp: uint64(time.Now().UnixMilli()), Message: m}})
		if err != nil {
			t.Fatal(err)
		}
		before := hub.metric(t, "mimi_gateway_protocol_notify_duplicates_total")
		for i := range 2 {
			if status, _, b := ev.rawPost(t, c, hub.Gateway, protocol.EndpointNotify, room, bytes.NewReader(body), int64(len(body))); status != http.StatusCreated {
				t.Fatalf("/notify %d: %d %s, want 201", i, status, b)
			}
		}
		if n := hub.metric(t, "mimi_gateway_protocol_notify_duplicates_total") - before; n != 1 {
			t.Errorf("%v duplicates recognised, want 1", n)
		}
	})
	dial := func(t *testing.T) *tls.Conn {
		t.Helper()
		conn, err := tls.Dial("tcp", hub.MIMIAddr, &tls.Config{Certificates: []tls.Certificate{ev.cert}, RootCAs: w.ca.Pool,
			ServerName: hub.Domain, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatalf("dial the hub: %v", err)
		}
		return conn
	}
	// closed waits until the hub closes conn (it gives up on the request headers after
	// ReadHeaderTimeout, 10 s; a minute is allowed on a loaded machine).
	closed := func(t *testing.T, conn *tls.Conn, what string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		_, err := io.ReadAll(bufio.NewReader(conn))
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the hub kept %s open for a minute", what)
		}
	}
	t.Run("SlowHeaders", func(t *testing.T) {
		conn := dial(t)
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST "+protocol.APIPrefix+"keyMaterial/x HTTP/1.1\r\nHost: hub.example\r\nFrom: mimi@evil.example\r\n"); err != nil {
			t.Fatal(err)
		}
		closed(t, conn, "a connection with unfinished headers")
	})
	t.Run("IdleConnections", func(t *testing.T) {
		var conns []*tls.Conn
		for range 200 {
			conn := dial(t)
			t.Cleanup(func() { conn.Close() })
			conns = append(conns, conn)
		}
		if status, b := claim(ev.httpClient(hub.Gateway), ev.domain); status != http.StatusOK {
			t.Fatalf("claim with 200 idle connections open: %d %s", status, b)
		}
		closed(t, conns[0], "an idle connection that never sent a request")
		closed(t, conns[len(conns)-1], "an idle connection that never sent a request")
	})

	if ok, detail := hub.Ready(); !ok {
		t.Errorf("the hub is not ready afterwards: %s", detail)
	}
	if strings.Contains(hub.Log(), "panic") {
		t.Error("the hub's log has a panic")
	}
}
