package protocol

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// ErrNotPartner means a request was addressed to a domain that is not a configured partner.
var ErrNotPartner = errors.New("protocol: not a configured partner")

// ErrUnreachable is wrapped by the error of a request that got no answer from the partner (no
// connection, no TLS session, no response within the timeout).
var ErrUnreachable = errors.New("partner unreachable")

// HTTPError is a non-success HTTP answer from a partner.
type HTTPError struct {
	Endpoint Endpoint
	Status   int
	// RetryAfter is the partner's Retry-After (0 when absent).
	RetryAfter time.Duration
	// Detail is the start of the problem body, if any.
	Detail string
}

// Error describes the endpoint, status and problem detail.
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("protocol: %s: HTTP %d", e.Endpoint, e.Status)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Domain is our provider domain (the From header).
	Domain event.Domain
	// Certificate is our client certificate for Domain.
	Certificate tls.Certificate
	// Partners lists who can be reached.
	Partners *Partners
	// Timeout bounds one request (default 30s).
	Timeout time.Duration
	// MaxResponseSize bounds a response body (default 16 MiB).
	MaxResponseSize int64
	// DiscoveryTTL caches directories without Cache-Control max-age (default 1h).
	DiscoveryTTL time.Duration
	// DialContext replaces the dialer (tests map partner domains to loopback); nil is net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// Now replaces time.Now (discovery cache tests).
	Now func() time.Time
}

// Client sends MIMI requests to partners over mutual TLS. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	log     *slog.Logger
	disc    discovery
	metrics *clientMetrics

	mu         sync.Mutex
	transports map[event.Domain]*transportEntry

	reach reach // last success and error per partner (check.go)
}

type transportEntry struct {
	p Partner
	t *http.Transport
}

type clientMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	discovery *prometheus.CounterVec
}

// NewClient returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	switch {
	case cfg.Domain == "":
		return nil, errors.New("protocol: client: no domain")
	case cfg.Certificate.Certificate == nil:
		return nil, errors.New("protocol: client: no certificate")
	case cfg.Partners == nil:
		return nil, errors.New("protocol: client: no partners")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxResponseSize <= 0 {
		cfg.MaxResponseSize = 16 << 20
	}
	if cfg.DiscoveryTTL <= 0 {
		cfg.DiscoveryTTL = DefaultDiscoveryTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "protocol.client"),
		disc:       discovery{cache: make(map[event.Domain]dirEntry), now: cfg.Now, ttl: cfg.DiscoveryTTL},
		transports: make(map[event.Domain]*transportEntry),
	}
	c.metrics = &clientMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_client_requests_total",
			Help: "MIMI server-to-server requests sent, by endpoint and HTTP status (0: no answer).",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mimi_gateway_protocol_client_request_seconds",
			Help:    "Round-trip time of MIMI server-to-server requests, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		discovery: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_discovery_fetches_total",
			Help: "Directory fetches from partners, by HTTP status.",
		}, []string{"code"}),
	}
	if cfg.Registerer != nil {
		for _, m := range []prometheus.Collector{c.metrics.requests, c.metrics.duration, c.metrics.discovery, newPartnerCollector(c)} {
			if err := cfg.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("protocol: client metrics: %w", err)
			}
		}
	}
	return c, nil
}

// transport returns the partner's transport: TLS 1.3, our client certificate, the partner's
// server certificate verified for its provider domain (whatever host the URL names) against
// its CAs. It is rebuilt when the partner's configuration changes.
func (c *Client) transport(p Partner) *http.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.transports[p.Domain]; ok && e.p.RootCAs == p.RootCAs {
		return e.t
	}
	if e, ok := c.transports[p.Domain]; ok {
		e.t.CloseIdleConnections()
	}
	dial := c.cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	t := &http.Transport{
		DialContext: dial,
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{c.cfg.Certificate},
			RootCAs:      p.RootCAs,
			ServerName:   string(p.Domain),
		},
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: c.cfg.Timeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		Proxy:                 nil, // never through an HTTP proxy: the peer is authenticated end to end
	}
	c.transports[p.Domain] = &transportEntry{p: p, t: t}
	return t
}

// CloseIdleConnections closes idle connections to every partner.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.transports {
		e.t.CloseIdleConnections()
	}
}

func (c *Client) partner(d event.Domain) (Partner, error) {
	p, ok := c.cfg.Partners.Lookup(d)
	if !ok {
		return Partner{}, fmt.Errorf("%w: %s", ErrNotPartner, d)
	}
	return p, nil
}

// do POSTs body to e/id at partner d and returns the response body for 2xx answers.
func (c *Client) do(ctx context.Context, d event.Domain, e Endpoint, id IdentifierURI, body []byte) (int, []byte, error) {
	p, err := c.partner(d)
	if err != nil {
		return 0, nil, err
	}
	dir, err := c.directory(ctx, p)
	if err != nil {
		c.noteResult(d, err)
		return 0, nil, err
	}
	u, err := dir.URL(e, id)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("protocol: %s to %s: %w", e, d, err)
	}
	req.Host = string(p.Domain)
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set("Accept", MediaType)
	req.Header.Set("From", FromLocalPart+"@"+string(c.cfg.Domain))
	start := time.Now()
	resp, err := c.transport(p).RoundTrip(req)
	c.metrics.duration.WithLabelValues(string(e)).Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.requests.WithLabelValues(string(e), "0").Inc()
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("protocol: %s to %s: %w: %w", e, d, ErrUnreachable, err)
		} else {
			err = fmt.Errorf("protocol: %s to %s: %w", e, d, err)
		}
		c.noteResult(d, err)
		return 0, nil, err
	}
	c.noteResult(d, statusErr(resp.StatusCode))
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		c.noteCertificate(d, resp.TLS.PeerCertificates[0].NotAfter)
	}
	defer resp.Body.Close()
	c.metrics.requests.WithLabelValues(string(e), strconv.Itoa(resp.StatusCode)).Inc()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseSize+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("protocol: %s to %s: read response: %w", e, d, err)
	}
	if int64(len(b)) > c.cfg.MaxResponseSize {
		return resp.StatusCode, nil, fmt.Errorf("protocol: %s to %s: response larger than %d bytes", e, d, c.cfg.MaxResponseSize)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		he := &HTTPError{Endpoint: e, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())}
		if len(b) > 0 {
			he.Detail = string(b[:min(len(b), 512)])
		}
		return resp.StatusCode, nil, he
	}
	return resp.StatusCode, b, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (c *Client) expectBody(ctx context.Context, d event.Domain, e Endpoint, id IdentifierURI, body []byte) ([]byte, error) {
	status, b, err := c.do(ctx, d, e, id, body)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &HTTPError{Endpoint: e, Status: status, Detail: "expected 200 with a body"}
	}
	return b, nil
}

// KeyMaterial claims KeyPackages of target from partner d (the target's provider, or the hub).
func (c *Client) KeyMaterial(ctx context.Context, d event.Domain, target event.UserURI, req *KeyMaterialRequest) (*KeyMaterialResponse, error) {
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	b, err := c.expectBody(ctx, d, EndpointKeyMaterial, IdentifierURI(target), body)
	if err != nil {
		return nil, err
	}
	return DecodeKeyMaterialResponse(b)
}

// Update sends a handshake bundle to the room's hub.
func (c *Client) Update(ctx context.Context, room event.RoomURI, req *UpdateRequest) (*UpdateRoomResponse, error) {
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	b, err := c.expectBody(ctx, room.Domain(), EndpointUpdate, IdentifierURI(room), body)
	if err != nil {
		return nil, err
	}
	return DecodeUpdateRoomResponse(b)
}

// SubmitMessage sends an application message to the room's hub.
func (c *Client) SubmitMessage(ctx context.Context, room event.RoomURI, req *SubmitMessageRequest) (*SubmitMessageResponse, error) {
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	b, err := c.expectBody(ctx, room.Domain(), EndpointSubmitMessage, IdentifierURI(room), body)
	if err != nil {
		return nil, err
	}
	return DecodeSubmitMessageResponse(b)
}

// GroupInfo asks the room's hub for an external join.
func (c *Client) GroupInfo(ctx context.Context, room event.RoomURI, req *GroupInfoRequest) (*GroupInfoResponse, error) {
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	b, err := c.expectBody(ctx, room.Domain(), EndpointGroupInfo, IdentifierURI(room), body)
	if err != nil {
		return nil, err
	}
	return DecodeGroupInfoResponse(b)
}

// Notify POSTs a /notify body (concatenated FanoutMessages) to follower d. It succeeds on 200,
// 201 or 202 (reading R4); otherwise the error is an *HTTPError (with RetryAfter) or a
// transport error. The Outbox calls it; Prov normally enqueues instead.
func (c *Client) Notify(ctx context.Context, d event.Domain, room event.RoomURI, body []byte) error {
	status, _, err := c.do(ctx, d, EndpointNotify, IdentifierURI(room), body)
	if err != nil {
		return err
	}
	if !NotifyAccepted(status) {
		return &HTTPError{Endpoint: EndpointNotify, Status: status}
	}
	return nil
}

// Directory returns partner d's endpoint directory (static base URL, cache, or fetch).
func (c *Client) Directory(ctx context.Context, d event.Domain) (Directory, error) {
	p, err := c.partner(d)
	if err != nil {
		return nil, err
	}
	return c.directory(ctx, p)
}

// ProxyDownload fetches an asset through the hub's /proxyDownload (§5.10) and copies at most
// limit bytes of it to w; a larger asset is an error (ErrAssetTooLarge).
func (c *Client) ProxyDownload(ctx context.Context, hub event.Domain, downloadURL string, w io.Writer, limit int64) error {
	rc, _, err := c.OpenProxyDownload(ctx, hub, downloadURL, limit)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("protocol: proxyDownload from %s: %w", hub, err)
	}
	return nil
}
