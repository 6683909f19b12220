// Package protocoltest gives tests of MIMI providers real mutual TLS on loopback: a test CA
// (ECDSA P-256) in t.TempDir(), certificates for provider domains, and a pair of configured
// providers (server, client, partner lists, store with the protocol schema) on 127.0.0.1:0.
package protocoltest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// CA is a throw-away certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	Pool *x509.CertPool
	// PEM is the CA certificate in PEM; File is where it was written.
	PEM  []byte
	File string
	dir  string
}

// NewCA creates a CA valid for a day and writes its certificate to a file in t.TempDir().
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mimi-gateway test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	dir := t.TempDir()
	ca := &CA{Cert: cert, Key: key, Pool: pool, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), dir: dir}
	ca.File = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca.File, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

var serial struct {
	sync.Mutex
	n int64
}

// Issue returns a certificate for the DNS names, usable as server and client certificate
// (extended key usages serverAuth and clientAuth).
func (ca *CA) Issue(t testing.TB, dnsNames ...string) tls.Certificate {
	t.Helper()
	return ca.IssueWithUsage(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, dnsNames...)
}

// IssueWithUsage is Issue with the given extended key usages (e.g. serverAuth only, as WebPKI
// server certificates now come).
func (ca *CA) IssueWithUsage(t testing.TB, usage []x509.ExtKeyUsage, dnsNames ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial.Lock()
	serial.n++
	sn := serial.n + 1
	serial.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(sn),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// WriteFiles writes cert (chain and key) as PEM files and returns their paths.
func WriteFiles(t testing.TB, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Network maps provider domains to loopback addresses; its DialContext replaces DNS so that
// https://<domain>/ reaches the provider's listener.
type Network struct {
	mu    sync.Mutex
	addrs map[string]string
}

// NewNetwork returns an empty Network.
func NewNetwork() *Network { return &Network{addrs: make(map[string]string)} }

// Set routes host (any port) to addr.
func (n *Network) Set(host, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addrs[host] = addr
}

// DialContext dials the address registered for addr's host; unknown hosts are refused.
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	target, ok := n.addrs[host]
	n.mu.Unlock()
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such test host", Name: host, IsNotFound: true}}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

// Provider is one configured provider on loopback.
type Provider struct {
	Domain      event.Domain
	Certificate tls.Certificate
	CA          *CA
	Store       *store.Store
	Partners    *protocol.Partners
	Client      *protocol.Client
	Server      *protocol.Server
	Handler     protocol.Handler
	// Limits are the server's body limits, kept across Start.
	Limits protocol.Limits
	Addr   string
	net    *Network
	// configure is Options.Configure, kept across Start.
	configure func(*protocol.ServerConfig)
}

// Options tune NewProvider.
type Options struct {
	// Store is the provider's store; nil opens SQLite in t.TempDir(). The protocol schema is
	// migrated either way.
	Store *store.Store
	// Discovery leaves partners without a static base URL (the client discovers them).
	Discovery bool
	// Limits are the server's body limits (zero fields: protocol.DefaultLimits).
	Limits protocol.Limits
	// Registerer, if set, receives the client's metrics (NewPair: a's only).
	Registerer prometheus.Registerer
	// Configure, when set, adjusts the server's configuration before each start (resource
	// limits, a metrics registerer).
	Configure func(*protocol.ServerConfig)
}

// NewProvider starts a provider for domain with handler h (certificate from ca) on
// 127.0.0.1:0, registered in n. Its partners are set with Partner/SetPartners.
func NewProvider(t testing.TB, n *Network, ca *CA, domain event.Domain, h protocol.Handler, o Options) *Provider {
	t.Helper()
	st := o.Store
	if st == nil {
		st = storetest.Open(t, storetest.SQLiteConfig(t))
	}
	if err := st.Migrate(context.Background(), protocol.Schema); err != nil {
		t.Fatal(err)
	}
	p := &Provider{Domain: domain, Certificate: ca.Issue(t, string(domain)), CA: ca, Store: st, Partners: protocol.NewPartners(), Handler: h, Limits: o.Limits, net: n, configure: o.Configure}
	cl, err := protocol.NewClient(protocol.ClientConfig{Domain: domain, Certificate: p.Certificate, Partners: p.Partners, DialContext: n.DialContext,
		Timeout: 10 * time.Second, Registerer: o.Registerer})
	if err != nil {
		t.Fatal(err)
	}
	p.Client = cl
	t.Cleanup(cl.CloseIdleConnections)
	p.Start(t)
	return p
}

// Start (re)starts the provider's server on a new loopback port with the same store.
func (p *Provider) Start(t testing.TB) {
	t.Helper()
	cfg := protocol.ServerConfig{
		Domain: p.Domain, Certificate: p.Certificate, ClientCAs: p.CA.Pool,
		Partners: p.Partners, Handler: p.Handler, Store: p.Store, Limits: p.Limits,
		PeerSeen: p.Client.PartnerAnswered, // as the gateway wires it
	}
	if p.configure != nil {
		p.configure(&cfg)
	}
	srv, err := protocol.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Server, p.Addr = srv, addr.String()
	p.net.Set(string(p.Domain), p.Addr)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
}

// Stop shuts the server down (for restart tests); Start brings it back.
func (p *Provider) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Server.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// Reconfigure restarts the provider's server (new loopback port, same store) with configure
// adjusting its configuration from then on, as Options.Configure does.
func (p *Provider) Reconfigure(t testing.TB, configure func(*protocol.ServerConfig)) {
	t.Helper()
	p.Stop(t)
	p.configure = configure
	p.Start(t)
}

// PartnerEntry returns how others configure p: discovery, or a static base URL
// https://<domain>/ (resolved through the Network), verified with p's CA.
func (p *Provider) PartnerEntry(discovery bool) protocol.Partner {
	e := protocol.Partner{Domain: p.Domain, RootCAs: p.CA.Pool}
	if !discovery {
		e.BaseURL = mustURL("https://" + string(p.Domain) + "/")
	}
	return e
}

// NewPair starts providers a and b on one Network with one CA, each configured with the other
// as partner. o.Store, if set, is a's store; b gets SQLite in t.TempDir().
func NewPair(t testing.TB, a, b event.Domain, ha, hb protocol.Handler, o Options) (*Provider, *Provider) {
	t.Helper()
	n := NewNetwork()
	ca := NewCA(t)
	oa, ob := o, o
	ob.Store, ob.Registerer = nil, nil // o.Store and o.Registerer, if any, are a's; b always gets its own SQLite
	pa := NewProvider(t, n, ca, a, ha, oa)
	pb := NewProvider(t, n, ca, b, hb, ob)
	pa.Partners.Set([]protocol.Partner{pb.PartnerEntry(o.Discovery)})
	pb.Partners.Set([]protocol.Partner{pa.PartnerEntry(o.Discovery)})
	return pa, pb
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
