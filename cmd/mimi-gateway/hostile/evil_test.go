package hostile

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// evil is evil.example: a provider written for these tests with core/protocol and core/mls only.
// It holds a valid certificate from the partners' CA, answers claims for its user eve with
// KeyPackages it makes, keeps what hubs send it, and does whatever a test tells it.
type evil struct {
	t        testing.TB
	domain   event.Domain
	cert     tls.Certificate
	ca       *protocoltest.CA
	Client   *protocol.Client
	partners *protocol.Partners
	srv      *protocol.Server
	Addr     string

	eve    event.UserURI
	signer *mls.Signer

	mu      sync.Mutex
	private map[string]*mls.KeyPackagePrivate // eve's KeyPackages by ref (hex)
	issued  map[string]*mls.KeyPackage
	fanout  chan *protocol.Notification
}

var _ protocol.Handler = (*evil)(nil)

// newEvil starts evil.example on a loopback port; partners are given with setPartners.
func newEvil(t testing.TB, ca *protocoltest.CA) *evil {
	t.Helper()
	signer, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	e := &evil{t: t, domain: "evil.example", cert: ca.Issue(t, "evil.example"), ca: ca,
		eve: event.NewUserURI("evil.example", "eve"), signer: signer,
		private: map[string]*mls.KeyPackagePrivate{}, issued: map[string]*mls.KeyPackage{},
		fanout: make(chan *protocol.Notification, 64), partners: protocol.NewPartners()}
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	if err := st.Migrate(context.Background(), protocol.Schema); err != nil {
		t.Fatal(err)
	}
	e.Client, err = protocol.NewClient(protocol.ClientConfig{Domain: e.domain, Certificate: e.cert, Partners: e.partners, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Client.CloseIdleConnections)
	e.srv, err = protocol.NewServer(protocol.ServerConfig{Domain: e.domain, Certificate: e.cert, ClientCAs: ca.Pool,
		Partners: e.partners, Handler: e, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := e.srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.Addr = addr.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.srv.Shutdown(ctx)
	})
	return e
}

// setPartners makes the gateways evil's partners (and evil theirs, for their next start).
func (e *evil) setPartners(gws ...*gatewaytest.Gateway) {
	var ps []protocol.Partner
	for _, g := range gws {
		u, err := url.Parse("https://" + g.MIMIAddr + "/")
		if err != nil {
			e.t.Fatal(err)
		}
		ps = append(ps, protocol.Partner{Domain: event.Domain(g.Domain), BaseURL: u, RootCAs: e.ca.Pool})
		g.AddPartner(string(e.domain), e.Addr, e.ca.File)
	}
	e.partners.Set(ps)
}

// KeyMaterial answers claims for eve with a fresh KeyPackage; nobody else exists here.
func (e *evil) KeyMaterial(_ context.Context, _ protocol.Peer, target event.UserURI, _ *protocol.KeyMaterialRequest) (*protocol.KeyMaterialResponse, error) {
	resp := &protocol.KeyMaterialResponse{Protocol: protocol.ProtocolMLS10, UserURI: protocol.IdentifierURI(target), UserStatus: protocol.KeyMaterialUserNoConsent}
	if target != e.eve {
		return resp, nil
	}
	kp, priv, err := mls.NewKeyPackage(e.signer, credential(e.eve), mls.KeyPackageOptions{Lifetime: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	ref, err := kp.Ref()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.private[hex.EncodeToString(ref)], e.issued[hex.EncodeToString(ref)] = priv, kp
	e.mu.Unlock()
	resp.UserStatus = protocol.KeyMaterialUserSuccess
	resp.Clients = []protocol.ClientKeyMaterial{{ClientStatus: protocol.KeyMaterialClientSuccess,
		ClientURI: protocol.IdentifierURI(event.NewDeviceURI(e.domain, "eve", "1")), KeyPackage: kp}}
	return resp, nil
}

// Notify keeps a hub's fanout for the test.
func (e *evil) Notify(_ context.Context, _ *store.Tx, n *protocol.Notification) error {
	select {
	case e.fanout <- n:
		return nil
	default:
		return fmt.Errorf("evil: fanout queue full")
	}
}

// next returns the next fanout message of room that matches, failing after a minute.
func (e *evil) next(t testing.TB, r event.RoomURI, what string, match func(*protocol.FanoutMessage) bool) *protocol.FanoutMessage {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case n := <-e.fanout:
			if n.Room != r {
				continue
			}
			for _, f := range n.Messages {
				if match(f) {
					return f
				}
			}
		case <-deadline:
			t.Fatalf("evil: no %s in %s's fanout", what, r.Domain())
		}
	}
}

// joinFromWelcome waits for the Welcome the hub sends eve and joins with it.
func (e *evil) joinFromWelcome(t testing.TB, r event.RoomURI) *mls.Group {
	t.Helper()
	f := e.next(t, r, "Welcome", func(f *protocol.FanoutMessage) bool { return f.Message.WireFormat == mls.WireFormatWelcome })
	w := f.Message.Welcome
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range w.Secrets {
		ref := hex.EncodeToString(s.NewMember)
		if priv, ok := e.private[ref]; ok {
			var tree mls.RatchetTree
			if f.RatchetTreeOption != nil {
				tree = f.RatchetTreeOption.RatchetTree
			}
			g, err := mls.JoinFromWelcome(w, e.issued[ref], priv, e.signer, mls.JoinOptions{RatchetTree: tree})
			if err != nil {
				t.Fatalf("evil: join: %v", err)
			}
			return g
		}
	}
	t.Fatal("evil: the Welcome is not for eve")
	return nil
}

// commit is a commit of g as the /update bundle a follower sends (no Welcome), and the state
// after it.
func commit(t testing.TB, g *mls.Group, o mls.CommitOptions) (protocol.HandshakeBundle, *mls.PendingCommit) {
	t.Helper()
	o.AppData = room.Updater{}
	pc, err := g.Commit(o)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := pc.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	return protocol.HandshakeBundle{ProposalOrCommit: pc.Commit,
		GroupInfoOption:   &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: gi.GroupInfo},
		RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeDistributionService}}, pc
}

// forged is a KeyPackage whose credential names victim, signed with a key evil made.
func forged(t testing.TB, victim event.UserURI) *mls.KeyPackage {
	t.Helper()
	s, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	kp, _, err := mls.NewKeyPackage(s, credential(victim), mls.KeyPackageOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func credential(u event.UserURI) mls.Credential {
	return mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte(u)}
}

// text is MIMI content from sender in r, framed for a room that advertises MIMI content (as the
// gateway's rooms do) when framed is set.
func text(t testing.TB, sender event.UserURI, r event.RoomURI, s string, framed bool) []byte {
	t.Helper()
	b := content.Builder{SenderURI: string(sender), RoomURI: string(r)}
	m, err := b.New(content.PlainText(s))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !framed {
		return raw
	}
	f := &mls.ApplicationFraming{MediaType: mls.MediaType{Type: "application/mimi-content"}, Content: raw}
	out, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// claimRequest is a signed claim of eve for target (for room r, or for no room).
func (e *evil) claimRequest(t testing.TB, requester, target event.UserURI, r event.RoomURI) *protocol.KeyMaterialRequest {
	t.Helper()
	req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: protocol.IdentifierURI(requester),
		TargetUser: protocol.IdentifierURI(target), RoomID: protocol.IdentifierURI(r),
		AcceptableCipherSuites: []mls.CipherSuite{e.signer.CipherSuite}, RequesterSignatureKey: e.signer.Public,
		RequesterCredential: credential(requester)}
	if err := req.Sign(e.signer.Private); err != nil {
		t.Fatal(err)
	}
	return req
}

// rawPost sends body to a gateway's endpoint as evil over mutual TLS and returns the status, the
// Retry-After header and the exact response body.
func (e *evil) rawPost(t testing.TB, c *http.Client, g *gatewaytest.Gateway, ep protocol.Endpoint, id protocol.IdentifierURI, body io.Reader, length int64) (int, string, []byte) {
	t.Helper()
	return rawPost(t, c, g, e.domain, ep, id, body, length)
}

// rawPost sends body to a gateway's endpoint over c as provider from.
func rawPost(t testing.TB, c *http.Client, g *gatewaytest.Gateway, from event.Domain, ep protocol.Endpoint, id protocol.IdentifierURI, body io.Reader, length int64) (int, string, []byte) {
	t.Helper()
	u := "https://" + g.MIMIAddr + protocol.APIPrefix + string(ep) + "/" + protocol.EncodePathID(id)
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", protocol.MediaType)
	req.Header.Set("From", protocol.FromLocalPart+"@"+string(from))
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header.Get("Retry-After"), b
}

// slowPost starts a request of size bytes to a gateway's endpoint that sends the first 4 KiB
// (at most size − 1 bytes) of its body and then nothing until the test ends. It returns a
// channel that receives the answer ("<status> <body>") if there is one.
func (e *evil) slowPost(t testing.TB, c *http.Client, g *gatewaytest.Gateway, ep protocol.Endpoint, id protocol.IdentifierURI, size int64) chan string {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	done := make(chan string, 1)
	go func() {
		status, _, b := e.rawPost(t, c, g, ep, id, pr, size)
		done <- fmt.Sprintf("%d %.200s", status, b)
	}()
	go func() { _, _ = pw.Write(make([]byte, min(4096, size-1))) }()
	return done
}

// httpClient is an HTTP/2 client with evil's certificate for gateway g.
func (e *evil) httpClient(g *gatewaytest.Gateway) *http.Client { return e.httpClientWith(e.cert, g) }

// httpClientWith is an HTTP/2 client with certificate cert for gateway g.
func (e *evil) httpClientWith(cert tls.Certificate, g *gatewaytest.Gateway) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: e.ca.Pool,
		ServerName: g.Domain, MinVersion: tls.VersionTLS13}, ForceAttemptHTTP2: true, MaxConnsPerHost: 4}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}
