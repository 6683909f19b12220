package protocol_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

const (
	domainA event.Domain  = "a.example"
	domainB event.Domain  = "b.example"
	room    event.RoomURI = "mimi://a.example/r/clubhouse" // hub a.example
	roomB   event.RoomURI = "mimi://b.example/r/lounge"    // hub b.example
)

// handler is a real in-memory Handler and HubHandler that records what it is given.
type handler struct {
	mu       sync.Mutex
	notifies []*protocol.Notification
	peers    []protocol.Peer
	// notifyErr, when set, decides the answer to the n-th Notify call (0-based).
	notifyErr func(n int) error
	calls     int
}

var (
	_ protocol.Handler    = (*handler)(nil)
	_ protocol.HubHandler = (*handler)(nil)
)

func (h *handler) KeyMaterial(_ context.Context, peer protocol.Peer, target event.UserURI, req *protocol.KeyMaterialRequest) (*protocol.KeyMaterialResponse, error) {
	h.record(peer)
	return &protocol.KeyMaterialResponse{Protocol: protocol.ProtocolMLS10, UserStatus: protocol.KeyMaterialUserUnknown, UserURI: protocol.IdentifierURI(target)}, nil
}

func (h *handler) Notify(_ context.Context, tx *store.Tx, n *protocol.Notification) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls++
	if h.notifyErr != nil {
		if err := h.notifyErr(c); err != nil {
			return err
		}
	}
	h.notifies = append(h.notifies, n)
	return nil
}

func (h *handler) Update(_ context.Context, peer protocol.Peer, _ event.RoomURI, req *protocol.UpdateRequest) (*protocol.UpdateRoomResponse, error) {
	h.record(peer)
	return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateWrongEpoch, CurrentEpoch: 7}, nil
}

func (h *handler) SubmitMessage(_ context.Context, peer protocol.Peer, _ event.RoomURI, req *protocol.SubmitMessageRequest) (*protocol.SubmitMessageResponse, error) {
	h.record(peer)
	return &protocol.SubmitMessageResponse{Protocol: protocol.ProtocolMLS10, StatusCode: protocol.SubmitAccepted, AcceptedTimestamp: req.AppMessage.PrivateMessage.Epoch + 1000}, nil
}

func (h *handler) GroupInfo(_ context.Context, peer protocol.Peer, room event.RoomURI, _ *protocol.GroupInfoRequest) (*protocol.GroupInfoResponse, error) {
	h.record(peer)
	return &protocol.GroupInfoResponse{Protocol: protocol.ProtocolMLS10, RoomID: protocol.IdentifierURI(room), Status: protocol.GroupInfoNotAuthorized}, nil
}

func (h *handler) record(p protocol.Peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.peers = append(h.peers, p)
}

func (h *handler) notified() []*protocol.Notification {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*protocol.Notification(nil), h.notifies...)
}

// appMessage makes a real MLS PrivateMessage of n bytes of application data.
func appMessage(t testing.TB, n int) *mls.MLSMessage {
	t.Helper()
	cs := mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	s, err := mls.GenerateSigner(cs)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup([]byte("mimi://a.example/g/clubhouse"), s, mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("mimi://a.example/d/alice/1")}, mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Encrypt(bytes.Repeat([]byte{'x'}, n), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func notifyBody(t testing.TB, ts uint64) []byte {
	t.Helper()
	b, err := protocol.EncodeFanoutMessages([]*protocol.FanoutMessage{{Timestamp: ts, Message: appMessage(t, 16)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawClient is an HTTPS client with an optional client certificate, trusting ca, that verifies
// the server as serverName.
func rawClient(ca *protocoltest.CA, n *protocoltest.Network, cert *tls.Certificate, serverName string) *http.Client {
	cfg := &tls.Config{RootCAs: ca.Pool, ServerName: serverName, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DialContext: n.DialContext}}
}

type problemBody struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func post(t *testing.T, c *http.Client, url, from, ctype string, body []byte) (int, problemBody) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if from != "" {
		req.Header.Set("From", from)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p problemBody
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("problem body %q: %v", b, err)
		}
	}
	return resp.StatusCode, p
}

func submitBody(t *testing.T, n int) []byte {
	t.Helper()
	b, err := (&protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: appMessage(t, n), SendingURI: "mimi://b.example/u/bob"}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuthentication covers who may call: the peer's certificate must chain to our partner CA,
// be valid for the From header's domain, and that domain must be a configured partner.
func TestAuthentication(t *testing.T) {
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	h := &handler{}
	a := protocoltest.NewProvider(t, n, ca, domainA, h, protocoltest.Options{})
	a.Partners.Set([]protocol.Partner{{Domain: domainB}})
	otherCA := protocoltest.NewCA(t)

	certB := ca.Issue(t, string(domainB))
	certC := ca.Issue(t, "c.example")
	certBOtherCA := otherCA.Issue(t, string(domainB))
	certBServerOnly := ca.IssueWithUsage(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, string(domainB))
	certBEmailOnly := ca.IssueWithUsage(t, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, string(domainB))
	url := "https://a.example/v1/submitMessage/" + protocol.EncodePathID(protocol.IdentifierURI(room))
	body := submitBody(t, 64)

	tests := []struct {
		name   string
		cert   *tls.Certificate
		from   string
		status int
		detail string
	}{
		{"no client certificate", nil, "mimi@b.example", http.StatusUnauthorized, "client certificate"},
		{"certificate for another domain than From", &certC, "mimi@b.example", http.StatusForbidden, "not valid for b.example"},
		{"unconfigured domain", &certC, "mimi@c.example", http.StatusForbidden, "not a partner"},
		{"no From header", &certB, "", http.StatusUnauthorized, "From header"},
		{"From with another local part", &certB, "alice@b.example", http.StatusBadRequest, "mimi@"},
		{"partner", &certB, "mimi@b.example", http.StatusOK, ""},
		{"partner, upper-case From domain", &certB, "mimi@B.Example", http.StatusOK, ""},
		{"partner with a serverAuth-only WebPKI-style certificate", &certBServerOnly, "mimi@b.example", http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawClient(ca, n, tt.cert, string(domainA))
			status, p := post(t, c, url, tt.from, protocol.MediaType, body)
			if status != tt.status {
				t.Fatalf("status %d (%q), want %d", status, p.Detail, tt.status)
			}
			if tt.detail != "" && !strings.Contains(p.Detail, tt.detail) {
				t.Fatalf("problem detail %q does not mention %q", p.Detail, tt.detail)
			}
		})
	}

	// A certificate from a CA we do not trust, or one for neither server nor client
	// authentication, is refused in the TLS handshake.
	for name, cert := range map[string]*tls.Certificate{"certificate from an unknown CA": &certBOtherCA, "certificate for e-mail protection only": &certBEmailOnly} {
		t.Run(name, func(t *testing.T) {
			refusedInHandshake(t, rawClient(ca, n, cert, string(domainA)), url, body)
		})
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.peers) != 3 || h.peers[0].Domain != domainB || h.peers[1].Domain != domainB || h.peers[2].Domain != domainB {
		t.Fatalf("handler saw peers %+v, want b.example three times", h.peers)
	}
}

func refusedInHandshake(t *testing.T, c *http.Client, url string, body []byte) {
	t.Helper()
	{
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("From", "mimi@b.example")
		req.Header.Set("Content-Type", protocol.MediaType)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("accepted with status %d", resp.StatusCode)
		}
	}
}

func TestMediaTypeAndLimits(t *testing.T) {
	a, b := protocoltest.NewPair(t, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	c := rawClient(a.CA, protocoltest.NewNetwork(), &b.Certificate, string(domainA))
	c.Transport.(*http.Transport).DialContext = nil
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = string(domainA)
	base := "https://" + a.Addr + "/v1/"
	id := protocol.EncodePathID(protocol.IdentifierURI(room))
	tests := []struct {
		name, path, ctype string
		body              []byte
		status            int
	}{
		{"octet-stream", "submitMessage/" + id, "application/octet-stream", submitBody(t, 64), http.StatusUnsupportedMediaType},
		{"no content type", "submitMessage/" + id, "", submitBody(t, 64), http.StatusUnsupportedMediaType},
		{"media type with parameters", "submitMessage/" + id, protocol.MediaType + "; charset=binary", submitBody(t, 64), http.StatusOK},
		{"oversized submitMessage", "submitMessage/" + id, protocol.MediaType, make([]byte, protocol.DefaultLimits.SubmitMessage+1), http.StatusRequestEntityTooLarge},
		{"oversized keyMaterial", "keyMaterial/" + protocol.EncodePathID("mimi://a.example/u/alice"), protocol.MediaType, make([]byte, protocol.DefaultLimits.KeyMaterial+1), http.StatusRequestEntityTooLarge},
		{"garbage body", "submitMessage/" + id, protocol.MediaType, []byte{1, 2, 3}, http.StatusBadRequest},
		{"unknown endpoint", "requestConsent/x", protocol.MediaType, []byte{1}, http.StatusNotFound},
		{"notify from a provider that is not the room's hub", "notify/" + id, protocol.MediaType, notifyBody(t, 1), http.StatusForbidden},
		{"submitMessage for a room of another hub", "submitMessage/" + protocol.EncodePathID(protocol.IdentifierURI(roomB)), protocol.MediaType, submitBody(t, 64), http.StatusNotFound},
		{"notify with a user instead of a room", "notify/" + protocol.EncodePathID("mimi://b.example/u/bob"), protocol.MediaType, notifyBody(t, 1), http.StatusBadRequest},
		{"key material for a room instead of a user", "keyMaterial/" + id, protocol.MediaType, unsignedKMR(t), http.StatusBadRequest},
		{"key material with another target in the body", "keyMaterial/" + protocol.EncodePathID("mimi://a.example/u/carol"), protocol.MediaType, unsignedKMR(t), http.StatusBadRequest},
		{"unsigned key material request", "keyMaterial/" + protocol.EncodePathID("mimi://a.example/u/alice"), protocol.MediaType, unsignedKMR(t), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, p := post(t, c, base+tt.path, "mimi@b.example", tt.ctype, tt.body)
			if status != tt.status {
				t.Fatalf("status %d (%q), want %d", status, p.Detail, tt.status)
			}
		})
	}
}

// TestOversizedStream: a body without Content-Length is cut at the limit (413), too.
func TestOversizedStream(t *testing.T) {
	a, b := protocoltest.NewPair(t, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	c := rawClient(a.CA, protocoltest.NewNetwork(), &b.Certificate, string(domainA))
	c.Transport.(*http.Transport).DialContext = nil
	body := io.MultiReader(bytes.NewReader(make([]byte, protocol.DefaultLimits.SubmitMessage)), bytes.NewReader([]byte{1}))
	req, err := http.NewRequest(http.MethodPost, "https://"+a.Addr+"/v1/submitMessage/"+protocol.EncodePathID(protocol.IdentifierURI(room)), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("From", "mimi@b.example")
	req.Header.Set("Content-Type", protocol.MediaType)
	if req.ContentLength != 0 {
		t.Fatalf("request has a Content-Length %d", req.ContentLength)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func unsignedKMR(t *testing.T) []byte {
	b, err := (&protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: "mimi://b.example/u/bob", TargetUser: "mimi://a.example/u/alice",
		AcceptableCipherSuites: []mls.CipherSuite{1}, RequesterSignatureKey: make([]byte, 32), Signature: make([]byte, 64),
		RequesterCredential: mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("x")}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientEndpoints sends every typed request through the Client over mutual TLS.
func TestClientEndpoints(t *testing.T) {
	for _, discovery := range []bool{false, true} {
		t.Run(fmt.Sprintf("discovery=%v", discovery), func(t *testing.T) {
			ha := &handler{}
			_, b := protocoltest.NewPair(t, domainA, domainB, ha, &handler{}, protocoltest.Options{Discovery: discovery})
			ctx := t.Context()
			app := appMessage(t, 1024)
			sr, err := b.Client.SubmitMessage(ctx, room, &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: app, SendingURI: "mimi://b.example/u/bob"})
			if err != nil {
				t.Fatal(err)
			}
			if sr.StatusCode != protocol.SubmitAccepted || sr.AcceptedTimestamp != app.PrivateMessage.Epoch+1000 {
				t.Fatalf("submit response %+v", sr)
			}
			signer, _ := mls.GenerateSigner(1)
			kmr := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: "mimi://b.example/u/bob", TargetUser: "mimi://a.example/u/alice",
				AcceptableCipherSuites: []mls.CipherSuite{1}, RequesterSignatureKey: signer.Public,
				RequesterCredential: mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("mimi://b.example/d/bob/1")}}
			if err := kmr.Sign(signer.Private); err != nil {
				t.Fatal(err)
			}
			kr, err := b.Client.KeyMaterial(ctx, domainA, "mimi://a.example/u/alice", kmr)
			if err != nil || kr.UserStatus != protocol.KeyMaterialUserUnknown || kr.UserURI != "mimi://a.example/u/alice" {
				t.Fatalf("key material: %+v, %v", kr, err)
			}
			prop, err := mls.DecodeMLSMessage(mustHexProposal(t))
			if err != nil {
				t.Fatal(err)
			}
			ur, err := b.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: prop}})
			if err != nil || ur.ResponseCode != protocol.UpdateWrongEpoch || ur.CurrentEpoch != 7 {
				t.Fatalf("update: %+v, %v", ur, err)
			}
			gir := &protocol.GroupInfoRequest{CipherSuite: 1, RequestingSignatureKey: signer.Public, RequestingCredential: kmr.RequesterCredential, GroupInfoPublicKey: make([]byte, 32)}
			if err := gir.Sign(signer.Private); err != nil {
				t.Fatal(err)
			}
			gr, err := b.Client.GroupInfo(ctx, room, gir)
			if err != nil || gr.Status != protocol.GroupInfoNotAuthorized || gr.RoomID != protocol.IdentifierURI(room) {
				t.Fatalf("group info: %+v, %v", gr, err)
			}
			if err := b.Client.Notify(ctx, domainA, roomB, notifyBody(t, 5)); err != nil {
				t.Fatal(err)
			}
			if got := ha.notified(); len(got) != 1 || got[0].Hub.Domain != domainB || got[0].Room != roomB || got[0].Messages[0].Timestamp != 5 {
				t.Fatalf("notified %+v", got)
			}
			if _, err := b.Client.SubmitMessage(ctx, "mimi://c.example/r/x", &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: app, SendingURI: "mimi://b.example/u/bob"}); !errors.Is(err, protocol.ErrNotPartner) {
				t.Fatalf("request to a non-partner: %v, want ErrNotPartner", err)
			}
		})
	}
}

// mustHexProposal is a PublicMessage Add proposal made with core/mls.
func mustHexProposal(t *testing.T) []byte {
	t.Helper()
	cs := mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	s, _ := mls.GenerateSigner(cs)
	g, err := mls.CreateGroup([]byte("mimi://a.example/g/clubhouse"), s, mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("alice")}, mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := mls.GenerateSigner(cs)
	kp, _, err := mls.NewKeyPackage(s2, mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("carol")}, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.ProposeAdd(kp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNotifyDedupe: a redelivered body gets 201 and reaches the handler once, also after a
// server restart (the record is in the store), on SQLite and PostgreSQL.
func TestNotifyDedupe(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ha := &handler{}
		a, b := protocoltest.NewPair(t, domainA, domainB, ha, &handler{}, protocoltest.Options{Store: st})
		ctx := t.Context()
		body := notifyBody(t, 1)
		other := notifyBody(t, 2)
		for i := 0; i < 2; i++ {
			if err := b.Client.Notify(ctx, domainA, roomB, body); err != nil {
				t.Fatalf("delivery %d: %v", i, err)
			}
		}
		if got := len(ha.notified()); got != 1 {
			t.Fatalf("handler called %d times, want 1", got)
		}
		a.Stop(t)
		a.Start(t)
		b.Client.CloseIdleConnections()
		if err := b.Client.Notify(ctx, domainA, roomB, body); err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if err := b.Client.Notify(ctx, domainA, roomB, other); err != nil {
			t.Fatal(err)
		}
		got := ha.notified()
		if len(got) != 2 || !bytes.Equal(got[0].Body, body) || !bytes.Equal(got[1].Body, other) {
			t.Fatalf("handler got %d notifications, want the two distinct bodies once each", len(got))
		}
	})
}

// TestNotifyHandlerFailure: a failing handler rolls back the dedupe record, so the retry is
// processed; a StatusError's Retry-After reaches the hub.
func TestNotifyHandlerFailure(t *testing.T) {
	ha := &handler{notifyErr: func(n int) error {
		if n == 0 {
			return &protocol.StatusError{Status: http.StatusServiceUnavailable, RetryAfter: 3 * time.Second, Detail: "busy"}
		}
		return nil
	}}
	_, b := protocoltest.NewPair(t, domainA, domainB, ha, &handler{}, protocoltest.Options{})
	body := notifyBody(t, 1)
	err := b.Client.Notify(t.Context(), domainA, roomB, body)
	var he *protocol.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || he.RetryAfter != 3*time.Second {
		t.Fatalf("first delivery: %v, want HTTP 503 with Retry-After 3s", err)
	}
	if err := b.Client.Notify(t.Context(), domainA, roomB, body); err != nil {
		t.Fatal(err)
	}
	if got := len(ha.notified()); got != 1 {
		t.Fatalf("handler accepted %d, want 1", got)
	}
}

func TestDirectoryServed(t *testing.T) {
	a, b := protocoltest.NewPair(t, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{Discovery: true})
	_ = a
	dir, err := b.Client.Directory(t.Context(), domainA)
	if err != nil {
		t.Fatal(err)
	}
	want := map[protocol.Endpoint]string{
		protocol.EndpointKeyMaterial:   "https://a.example/v1/keyMaterial/{targetUser}",
		protocol.EndpointUpdate:        "https://a.example/v1/update/{roomId}",
		protocol.EndpointNotify:        "https://a.example/v1/notify/{roomId}",
		protocol.EndpointSubmitMessage: "https://a.example/v1/submitMessage/{roomId}",
		protocol.EndpointGroupInfo:     "https://a.example/v1/groupInfo/{roomId}",
		protocol.EndpointProxyDownload: "https://a.example/v1/proxyDownload/{downloadUrl}",
	}
	for e, u := range want {
		if dir[e] != u {
			t.Errorf("%s: %q, want %q", e, dir[e], u)
		}
	}
}

// downloader is a Handler with the ProxyDownloadHandler capability.
type downloader struct{ handler }

var _ protocol.ProxyDownloadHandler = (*downloader)(nil)

func (d *downloader) ProxyDownload(_ context.Context, peer protocol.Peer, download string, w http.ResponseWriter) error {
	if download != "https://assets.b.example/x/1" {
		return &protocol.StatusError{Status: http.StatusNotFound, Detail: "no such asset"}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, err := w.Write([]byte("ciphertext of " + string(peer.Domain)))
	return err
}

func TestProxyDownload(t *testing.T) {
	_, b := protocoltest.NewPair(t, domainA, domainB, &downloader{}, &handler{}, protocoltest.Options{})
	var buf bytes.Buffer
	if err := b.Client.ProxyDownload(t.Context(), domainA, "https://assets.b.example/x/1", &buf, 1024); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "ciphertext of b.example" {
		t.Fatalf("got %q", buf.String())
	}
	buf.Reset()
	if err := b.Client.ProxyDownload(t.Context(), domainA, "https://assets.b.example/x/1", &buf, 4); err == nil {
		t.Fatal("an asset over the limit was accepted")
	}
	var he *protocol.HTTPError
	if err := b.Client.ProxyDownload(t.Context(), domainA, "https://elsewhere.example/", &buf, 1024); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Fatalf("unknown asset: %v, want 404", err)
	}
	// A provider without the capability answers 404.
	a2, b2 := protocoltest.NewPair(t, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	_ = a2
	if err := b2.Client.ProxyDownload(t.Context(), domainA, "https://assets.b.example/x/1", &buf, 1024); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Fatalf("no capability: %v, want 404", err)
	}
}

// TestClientVerifiesServer: the client refuses a partner whose server certificate is not valid
// for the partner's domain, or does not chain to the CA configured for it.
func TestClientVerifiesServer(t *testing.T) {
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	otherCA := protocoltest.NewCA(t)
	a := protocoltest.NewProvider(t, n, ca, domainA, &handler{}, protocoltest.Options{})
	a.Partners.Set([]protocol.Partner{{Domain: domainB}})

	// A server on "a.example" presenting a certificate for evil.example.
	evil, err := protocol.NewServer(protocol.ServerConfig{Domain: domainA, Certificate: ca.Issue(t, "evil.example"), ClientCAs: ca.Pool,
		Partners: a.Partners, Handler: &handler{}, Store: a.Store})
	if err != nil {
		t.Fatal(err)
	}
	evilAddr, err := evil.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = evil.Shutdown(context.Background()) })

	tests := []struct {
		name    string
		addr    string
		rootCAs *protocoltest.CA
		ok      bool
	}{
		{"right domain, right CA", a.Addr, ca, true},
		{"certificate for another domain", evilAddr.String(), ca, false},
		{"certificate from another CA than configured", a.Addr, otherCA, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.Set(string(domainA), tt.addr)
			c, err := protocol.NewClient(protocol.ClientConfig{Domain: domainB, Certificate: ca.Issue(t, string(domainB)),
				Partners: protocol.NewPartners(protocol.Partner{Domain: domainA, RootCAs: tt.rootCAs.Pool, BaseURL: a.PartnerEntry(false).BaseURL}), DialContext: n.DialContext})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			err = c.Notify(t.Context(), domainA, roomB, notifyBody(t, 1))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
