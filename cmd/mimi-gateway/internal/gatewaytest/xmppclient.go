package gatewaytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/prosodytest"
)

// Stanza is a received XMPP element, decoded generically for assertions.
type Stanza struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []Stanza   `xml:",any"`
	// At is when the client received it.
	At time.Time `xml:"-"`
}

// Attr returns the value of the attribute with the local name.
func (s *Stanza) Attr(local string) string {
	for _, a := range s.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child with the namespace (empty matches any) and local name, or nil.
func (s *Stanza) Child(space, local string) *Stanza {
	for i := range s.Children {
		c := &s.Children[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

// Body is the text of the <body/> child ("" if none).
func (s *Stanza) Body() string {
	if b := s.Child("", "body"); b != nil {
		return b.Text
	}
	return ""
}

// String is the stanza as XML.
func (s *Stanza) String() string {
	b, _ := xml.Marshal(s)
	return string(b)
}

// XMPPClient is an XMPP user's client: c2s to Prosody with STARTTLS (verified with the test
// CA), SASL and resource binding (mellium.im/xmpp), raw stanzas out, every stanza in kept for
// assertions.
type XMPPClient struct {
	// JID is the bound full JID; Bare is user@domain.
	JID, Bare string

	srv      *prosodytest.Server
	roots    *x509.CertPool
	user, pw string
	resource string

	connMu  sync.Mutex // serialises connect and close
	mu      sync.Mutex
	sess    *xmpp.Session
	buf     []*Stanza
	all     []*Stanza
	wake    chan struct{}
	served  chan struct{}
	idCount int
	onConn  []func()
	conns   int
}

// DialXMPP connects user to the server and sends initial presence. roots verify the server's
// certificate. The connection is closed when the test ends.
func DialXMPP(t testing.TB, srv *prosodytest.Server, roots *x509.CertPool, user, password, resource string) *XMPPClient {
	t.Helper()
	c := &XMPPClient{srv: srv, roots: roots, user: user, pw: password, resource: resource, wake: make(chan struct{}, 1)}
	c.connMu.Lock()
	err := c.connect()
	c.connMu.Unlock()
	if err != nil {
		t.Fatalf("xmpp client %s@%s: %v", user, srv.Domain, err)
	}
	t.Cleanup(c.Close)
	return c
}

func (c *XMPPClient) connect() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := jid.New(c.user, c.srv.Domain, c.resource)
	if err != nil {
		return err
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.srv.C2SAddr())
	if err != nil {
		return err
	}
	sess, err := xmpp.NewClientSession(ctx, addr, conn,
		xmpp.StartTLS(&tls.Config{ServerName: c.srv.Domain, RootCAs: c.roots, MinVersion: tls.VersionTLS12}),
		xmpp.SASL("", c.pw, sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource())
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("session: %w", err)
	}
	served := make(chan struct{})
	c.mu.Lock()
	c.sess, c.served = sess, served
	c.JID, c.Bare = sess.LocalAddr().String(), sess.LocalAddr().Bare().String()
	c.mu.Unlock()
	go func() {
		defer close(served)
		_ = sess.Serve(xmpp.HandlerFunc(c.handle))
	}()
	if err := c.send(`<presence/>`); err != nil {
		return err
	}
	c.mu.Lock()
	c.conns++
	again := c.conns > 1
	hooks := append([]func(){}, c.onConn...)
	c.mu.Unlock()
	if again {
		for _, f := range hooks {
			f()
		}
	}
	return nil
}

// OnReconnect registers f to run after every new session but the first, as a client rejoins its
// group chats after a reconnect.
func (c *XMPPClient) OnReconnect(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onConn = append(c.onConn, f)
}

func (c *XMPPClient) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	st := &Stanza{}
	if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(st); err != nil {
		return nil // not decodable: keep the session, it is a test client
	}
	st.At = time.Now()
	c.mu.Lock()
	c.buf = append(c.buf, st)
	c.all = append(c.all, st)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	// Answer pings and disco requests so the server and the gateway see a well-behaved client.
	if start.Name.Local == "iq" {
		typ := st.Attr("type")
		if typ == "get" || typ == "set" {
			reply := fmt.Sprintf(`<iq type='result' id='%s' to='%s'/>`, xmlEscape(st.Attr("id")), xmlEscape(st.Attr("from")))
			if st.Child("", "ping") == nil {
				reply = fmt.Sprintf(`<iq type='error' id='%s' to='%s'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
					xmlEscape(st.Attr("id")), xmlEscape(st.Attr("from")))
			}
			return copyRaw(r, reply)
		}
	}
	return nil
}

// Reconnect opens a new session after the server or the connection went away.
func (c *XMPPClient) Reconnect(t testing.TB) {
	t.Helper()
	c.Close()
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if err := c.connect(); err != nil {
		t.Fatalf("xmpp client %s reconnect: %v", c.Bare, err)
	}
}

// EnsureConnected opens a new session if the last one ended (e.g. the server was restarted),
// as a client reconnects; it returns the error of a failed attempt.
func (c *XMPPClient) EnsureConnected() error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.Connected() {
		return nil
	}
	c.closeLocked()
	return c.connect()
}

// Connected reports whether the session is being served.
func (c *XMPPClient) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.served == nil {
		return false
	}
	select {
	case <-c.served:
		return false
	default:
		return true
	}
}

// Close ends the session.
func (c *XMPPClient) Close() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	c.closeLocked()
}

func (c *XMPPClient) closeLocked() {
	c.mu.Lock()
	sess, served := c.sess, c.served
	c.sess = nil
	c.mu.Unlock()
	if sess == nil {
		return
	}
	_ = sess.Close()
	_ = sess.Conn().Close()
	<-served
}

// NewID returns a stanza ID unique for this client.
func (c *XMPPClient) NewID(prefix string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idCount++
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, c.idCount)
}

// Send sends one raw stanza (XML text without a namespace on the stanza element itself).
func (c *XMPPClient) Send(t testing.TB, raw string) {
	t.Helper()
	if err := c.send(raw); err != nil {
		t.Fatalf("xmpp client %s send: %v", c.Bare, err)
	}
}

// TrySend is Send returning the error (for sending while the server is down).
func (c *XMPPClient) TrySend(raw string) error { return c.send(raw) }

func (c *XMPPClient) send(raw string) error {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return errors.New("not connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return sess.Send(ctx, rawTokens(raw))
}

// rawTokens turns XML text into tokens for mellium's encoder, keeping namespace declarations as
// written (RawToken does not resolve prefixes).
func rawTokens(raw string) xml.TokenReader {
	d := xml.NewDecoder(strings.NewReader(raw))
	return xmlstream.ReaderFunc(func() (xml.Token, error) {
		tok, err := d.RawToken()
		if err != nil {
			return nil, err
		}
		return xml.CopyToken(tok), nil
	})
}

func copyRaw(w xmlstream.TokenWriter, raw string) error {
	_, err := xmlstream.Copy(w, rawTokens(raw))
	return err
}

// Expect waits for a received stanza matching pred, removes it (and nothing else) from the
// buffer and returns it; after timeout (scaled for the machine, servertest.Scale) it fails the
// test listing what was received.
func (c *XMPPClient) Expect(t testing.TB, timeout time.Duration, what string, pred func(*Stanza) bool) *Stanza {
	t.Helper()
	timeout = servertest.Scale(timeout)
	st, err := c.Wait(timeout, pred)
	if err != nil {
		t.Fatalf("%s: timed out after %s waiting for %s; unconsumed:\n%s", c.Bare, timeout, what, c.Pending())
	}
	return st
}

// Wait is Expect returning an error instead of failing.
func (c *XMPPClient) Wait(timeout time.Duration, pred func(*Stanza) bool) (*Stanza, error) {
	deadline := time.Now().Add(timeout)
	for {
		if st := c.Take(pred); st != nil {
			return st, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("timed out")
		}
		select {
		case <-c.wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Take removes and returns the first buffered stanza matching pred, or nil.
func (c *XMPPClient) Take(pred func(*Stanza) bool) *Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, st := range c.buf {
		if pred(st) {
			c.buf = append(c.buf[:i:i], c.buf[i+1:]...)
			return st
		}
	}
	return nil
}

// Unread puts a stanza taken from the buffer back at its front.
func (c *XMPPClient) Unread(st *Stanza) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append([]*Stanza{st}, c.buf...)
}

// Received returns every stanza received so far matching pred (consumed or not), in order.
func (c *XMPPClient) Received(pred func(*Stanza) bool) []*Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Stanza
	for _, st := range c.all {
		if pred(st) {
			out = append(out, st)
		}
	}
	return out
}

// Pending lists the unconsumed stanzas (for failure messages).
func (c *XMPPClient) Pending() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, st := range c.buf {
		b.WriteString(st.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Upload puts data on the server's upload service (XEP-0363: a slot from the upload component,
// then an HTTP PUT) and returns the GET URL.
func (c *XMPPClient) Upload(t testing.TB, name, contentType string, data []byte) string {
	t.Helper()
	if c.srv.UploadDomain == "" {
		t.Fatal("the XMPP server has no upload service")
	}
	id := c.NewID("slot")
	c.Send(t, fmt.Sprintf(`<iq type='get' id='%s' to='%s'><request xmlns='urn:xmpp:http:upload:0' filename='%s' size='%d' content-type='%s'/></iq>`,
		id, c.srv.UploadDomain, xmlEscape(name), len(data), xmlEscape(contentType)))
	res := c.Expect(t, 30*time.Second, "upload slot", func(s *Stanza) bool { return s.XMLName.Local == "iq" && s.Attr("id") == id })
	slot := res.Child("", "slot")
	if res.Attr("type") != "result" || slot == nil || slot.Child("", "put") == nil || slot.Child("", "get") == nil {
		t.Fatalf("upload slot refused: %s", res.String())
	}
	put := slot.Child("", "put")
	req, err := http.NewRequest(http.MethodPut, put.Attr("url"), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for _, h := range put.Children {
		if h.XMLName.Local == "header" {
			req.Header.Set(h.Attr("name"), h.Text)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload PUT: %v", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("upload PUT: %s: %s", resp.Status, body)
	}
	return slot.Child("", "get").Attr("url")
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&apos;")
}

// XMLEscape escapes s for XML text and single-quoted attributes.
func XMLEscape(s string) string { return xmlEscape(s) }
