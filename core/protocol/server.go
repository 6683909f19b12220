package protocol

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Peer is the partner provider that made a request, authenticated by its TLS client certificate
// and its From header.
type Peer struct {
	Domain event.Domain
}

// Notification is one accepted /notify body.
type Notification struct {
	// Hub is the sending provider (authenticated).
	Hub Peer
	// Room is the room in the request path; its domain is Hub's.
	Room event.RoomURI
	// Body is the exact request body; Messages its decoding.
	Body     []byte
	Messages []*FanoutMessage
}

// Handler is what every provider serves: its users' key material and fanout from hubs.
type Handler interface {
	// KeyMaterial answers a claim for target's KeyPackages. The request's signature has been
	// verified.
	// target is the user in the path; it may be on another domain when we are the hub relaying a
	// claim (§5.2).
	KeyMaterial(ctx context.Context, peer Peer, target event.UserURI, req *KeyMaterialRequest) (*KeyMaterialResponse, error)
	// Notify stores a fanout durably inside tx. The server has already marked the body as
	// processed in tx: when Notify returns nil the transaction commits and the hub gets 201; on
	// an error it rolls back and the hub retries later. Redeliveries of a processed body are
	// answered 201 without calling Notify. tx may be shared with concurrent /notify requests
	// (store.InGroupTx: Notify runs in its own savepoint, and its error rolls back only its
	// writes), so keep it short and never wait in it for another request.
	Notify(ctx context.Context, tx *store.Tx, n *Notification) error
}

// NotifyCommitter is the optional capability of a Handler that acts on a /notify body only once
// it is committed, e.g. wakes the worker that reads what Notify stored (a wake-up from inside
// Notify would come before the commit and find nothing). NotifyCommitted is called after the
// transaction in which Notify ran has committed, not for redeliveries.
type NotifyCommitter interface {
	NotifyCommitted(room event.RoomURI)
}

// HubHandler is the optional capability of a Handler that hosts rooms (a hub).
type HubHandler interface {
	// Update sequences a handshake for room.
	Update(ctx context.Context, peer Peer, room event.RoomURI, req *UpdateRequest) (*UpdateRoomResponse, error)
	// SubmitMessage sequences an application message for room.
	SubmitMessage(ctx context.Context, peer Peer, room event.RoomURI, req *SubmitMessageRequest) (*SubmitMessageResponse, error)
	// GroupInfo answers an external joiner. The request's signature has been verified.
	GroupInfo(ctx context.Context, peer Peer, room event.RoomURI, req *GroupInfoRequest) (*GroupInfoResponse, error)
}

// ProxyDownloadHandler is the optional capability of serving /proxyDownload (§5.10). It writes
// the asset itself; download is the unescaped downloadUrl from the path.
type ProxyDownloadHandler interface {
	ProxyDownload(ctx context.Context, peer Peer, download string, w http.ResponseWriter) error
}

// StatusError lets a handler choose the HTTP answer (e.g. 503 with Retry-After while it cannot
// take a request, 404 for an unknown room). Other errors become 500.
type StatusError struct {
	Status     int
	RetryAfter time.Duration
	Detail     string
	Err        error
}

// Error describes the status and detail.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("protocol: HTTP %d", e.Status)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error, if any.
func (e *StatusError) Unwrap() error { return e.Err }

// Limits bound request bodies per endpoint (bytes), and the size of an asset served at
// /assets/<id> (Asset, default DefaultMaxAssetSize).
type Limits struct {
	KeyMaterial, Update, SubmitMessage, Notify, GroupInfo int64
	// Consent bounds requestConsent and updateConsent, IdentifierQuery and ReportAbuse their
	// endpoints.
	Consent, IdentifierQuery, ReportAbuse int64
	Asset                                 int64
}

// DefaultLimits are the body limits used for zero fields.
var DefaultLimits = Limits{
	KeyMaterial:   64 << 10,
	Update:        8 << 20,
	SubmitMessage: 1 << 20,
	Notify:        16 << 20,
	GroupInfo:     64 << 10,
	// A grant may carry a few KeyPackages.
	Consent:         256 << 10,
	IdentifierQuery: 64 << 10,
	// A report carries the reported messages' content (at most MaxAbusiveContent each).
	ReportAbuse: 4 << 20,
}

func (l Limits) of(e Endpoint) int64 {
	pick := func(v, d int64) int64 {
		if v > 0 {
			return v
		}
		return d
	}
	switch e {
	case EndpointKeyMaterial:
		return pick(l.KeyMaterial, DefaultLimits.KeyMaterial)
	case EndpointUpdate:
		return pick(l.Update, DefaultLimits.Update)
	case EndpointSubmitMessage:
		return pick(l.SubmitMessage, DefaultLimits.SubmitMessage)
	case EndpointNotify:
		return pick(l.Notify, DefaultLimits.Notify)
	case EndpointGroupInfo:
		return pick(l.GroupInfo, DefaultLimits.GroupInfo)
	case EndpointRequestConsent, EndpointUpdateConsent:
		return pick(l.Consent, DefaultLimits.Consent)
	case EndpointIdentifierQuery:
		return pick(l.IdentifierQuery, DefaultLimits.IdentifierQuery)
	case EndpointReportAbuse:
		return pick(l.ReportAbuse, DefaultLimits.ReportAbuse)
	}
	return 0
}

// NotifyScope is the store.MarkProcessed scope of /notify deduplication.
const NotifyScope store.Scope = "protocol.notify"

// ServerConfig configures a Server.
type ServerConfig struct {
	// Domain is our provider domain.
	Domain event.Domain
	// Certificate is our certificate for Domain (server side of mutual TLS).
	Certificate tls.Certificate
	// ClientCAs verify partners' client certificates.
	ClientCAs *x509.CertPool
	// Partners lists who may call us.
	Partners *Partners
	// Handler serves the endpoints; it may implement HubHandler and ProxyDownloadHandler.
	Handler Handler
	// Store deduplicates /notify durably (migrate Schema first).
	Store *store.Store
	// PublicBaseURL is our endpoint base as published in the directory; empty means
	// https://<Domain>/.
	PublicBaseURL string
	// DirectoryMaxAge is the Cache-Control max-age of the directory (default 1h).
	DirectoryMaxAge time.Duration
	Limits          Limits
	// KeyMaterialPartnerRate and KeyMaterialTargetRate limit /keyMaterial claims per partner
	// and per partner and target user (zero: DefaultKeyMaterialPartnerRate, DefaultKeyMaterialTargetRate).
	KeyMaterialPartnerRate, KeyMaterialTargetRate RateLimit
	// IdentifierQueryRate and ConsentRequestRate limit identifier queries and requests for
	// consent per partner (zero: DefaultIdentifierQueryRate, DefaultConsentRequestRate).
	IdentifierQueryRate, ConsentRequestRate RateLimit
	// BodyBudget bounds the memory for request bodies in flight over all partners, each
	// costing BodyCost times its size (0: DefaultBodyBudget), one partner holding at most the
	// budget less 1/PartnerReserve of it; PartnerConcurrency bounds one partner's requests in
	// flight (0: DefaultPartnerConcurrency). limits.go.
	BodyBudget         int64
	PartnerConcurrency int
	Logger             *slog.Logger
	// Registerer receives the server's metrics (nil: none).
	Registerer prometheus.Registerer
	// PeerSeen, if set, is called with the partner domain of every authenticated request (the
	// partner is reachable: Client.PartnerAnswered).
	PeerSeen func(event.Domain)
}

// Server is the MIMI server-to-server HTTPS endpoint with mutual TLS.
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	http    *http.Server
	metrics *serverMetrics
	// listening is the address Listen serves on while it serves ("" otherwise).
	listening atomic.Value
	limits    *limits
}

type serverMetrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	duplicates prometheus.Counter
}

// NewServer checks cfg and returns a Server; start it with Serve or ListenAndServe.
func NewServer(cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Domain == "":
		return nil, errors.New("protocol: server: no domain")
	case cfg.Certificate.Certificate == nil:
		return nil, errors.New("protocol: server: no certificate")
	case cfg.ClientCAs == nil:
		return nil, errors.New("protocol: server: no client CAs")
	case cfg.Partners == nil:
		return nil, errors.New("protocol: server: no partners")
	case cfg.Handler == nil:
		return nil, errors.New("protocol: server: no handler")
	case cfg.Store == nil:
		return nil, errors.New("protocol: server: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DirectoryMaxAge <= 0 {
		cfg.DirectoryMaxAge = time.Hour
	}
	if cfg.PublicBaseURL == "" {
		cfg.PublicBaseURL = "https://" + string(cfg.Domain) + "/"
	}
	if !strings.HasSuffix(cfg.PublicBaseURL, "/") {
		cfg.PublicBaseURL += "/"
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "protocol.server")}
	s.metrics = &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_server_requests_total",
			Help: "MIMI server-to-server requests received, by endpoint and HTTP status.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mimi_gateway_protocol_server_request_seconds",
			Help:    "Time to answer MIMI server-to-server requests, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_notify_duplicates_total",
			Help: "Redelivered /notify bodies answered 201 without processing.",
		}),
	}
	s.limits = newLimits(&cfg, s.log)
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.metrics.requests, s.metrics.duration, s.metrics.duplicates, s.limits.refusals} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("protocol: server metrics: %w", err)
			}
		}
	}
	s.http = &http.Server{
		Handler:           s,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// TLSConfig is the server's TLS configuration: TLS 1.3 only, our certificate, client
// certificates verified against ClientCAs when given. A missing certificate is answered with
// 401 and a problem body rather than a handshake failure, so the partner learns why.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{s.cfg.Certificate},
		ClientAuth:       tls.RequestClientCert,
		ClientCAs:        s.cfg.ClientCAs,
		VerifyConnection: s.verifyClientCertificate,
		NextProtos:       []string{"h2", "http/1.1"},
	}
}

// verifyClientCertificate verifies a client certificate, when one is given, against ClientCAs.
// Reading R24 (§4.1: "ordinary WebPKI server certificates used as client certificates"): a chain
// whose extended key usage allows serverAuth is accepted as well as clientAuth, since WebPKI CAs
// are dropping clientAuth from server certificates. A certificate that does not verify fails the
// handshake; no certificate at all is answered 401 by authenticate.
func (s *Server) verifyClientCertificate(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         s.cfg.ClientCAs,
		Intermediates: inter,
		KeyUsages:     clientCertificateKeyUsages,
	})
	if err != nil {
		return fmt.Errorf("protocol: client certificate: %w", err)
	}
	return nil
}

// Serve accepts TLS connections on ln (a plain TCP listener) until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(tls.NewListener(ln, s.http.TLSConfig))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Listen opens addr and serves in a goroutine; it returns the bound address.
func (s *Server) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("protocol: listen %s: %w", addr, err)
	}
	s.listening.Store(ln.Addr().String())
	go func() {
		err := s.Serve(ln)
		s.listening.Store("")
		if err != nil {
			s.log.Error("MIMI listener stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}

// Ready reports whether the listener that Listen opened still accepts connections (a readiness
// check): it connects to it (on loopback when it listens on every address).
func (s *Server) Ready(ctx context.Context) error {
	addr, _ := s.listening.Load().(string)
	if addr == "" {
		return errors.New("protocol: the MIMI listener is not running")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("protocol: listener address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return fmt.Errorf("protocol: the MIMI listener does not accept connections: %w", err)
	}
	return c.Close()
}

// Shutdown stops accepting and waits for requests in flight (bounded by ctx).
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// problem is an RFC 9457 problem body.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func (s *Server) fail(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
}

// authenticate checks the mTLS peer against the From header and the partner list.
func (s *Server) authenticate(r *http.Request) (Peer, int, string) {
	// The certificate, if any, was verified in the handshake (verifyClientCertificate).
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return Peer{}, http.StatusUnauthorized, "a client certificate from a partner CA is required (mutual TLS)"
	}
	from := r.Header.Get("From")
	if from == "" {
		return Peer{}, http.StatusUnauthorized, "the From header (mimi@<your domain>) is required"
	}
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return Peer{}, http.StatusBadRequest, "the From header is not an address mimi@<domain>"
	}
	local, domain, ok := strings.Cut(addr.Address, "@")
	if !ok || local != FromLocalPart || domain == "" {
		return Peer{}, http.StatusBadRequest, "the From header must be mimi@<domain>"
	}
	d := normDomain(domain)
	if _, ok := s.cfg.Partners.Lookup(d); !ok {
		return Peer{}, http.StatusForbidden, fmt.Sprintf("%s is not a partner of this provider", d)
	}
	if err := r.TLS.PeerCertificates[0].VerifyHostname(string(d)); err != nil {
		return Peer{}, http.StatusForbidden, fmt.Sprintf("the client certificate is not valid for %s, the domain of the From header", d)
	}
	return Peer{Domain: d}, 0, ""
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	// counted is set when the refusal was counted with its own reason (Server.refuse).
	counted bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ServeHTTP routes a request (Server is an http.Handler for embedding and tests).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	ep := s.route(rec, r)
	label := string(ep)
	if label == "" {
		label = "other"
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.requests.WithLabelValues(label, strconv.Itoa(status)).Inc()
	s.metrics.duration.WithLabelValues(label).Observe(time.Since(start).Seconds())
	if !rec.counted && status >= 400 && status != http.StatusInternalServerError {
		s.limits.refusals.WithLabelValues(label, statusReason(status)).Inc()
	}
}

// refuse counts a refusal of ep for reason (and feeds the WARN line about peer, when known).
func (s *Server) refuse(w http.ResponseWriter, ep Endpoint, peer event.Domain, reason string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.counted = true
	}
	s.limits.refuse(ep, peer, reason)
}

// statusReason is the refusal reason of an answer whose refusal had no reason of its own.
func statusReason(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusBadGateway:
		return "bad_gateway"
	}
	return strconv.Itoa(status)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) Endpoint {
	path := r.URL.EscapedPath()
	if path == DirectoryPath {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.fail(w, http.StatusMethodNotAllowed, "use GET")
			return "directory"
		}
		s.serveDirectory(w)
		return "directory"
	}
	if id, ok := strings.CutPrefix(path, AssetPathPrefix); ok {
		s.serveAsset(w, r, id)
		return "assets"
	}
	rest, ok := strings.CutPrefix(path, APIPrefix)
	if !ok {
		s.fail(w, http.StatusNotFound, "no such endpoint")
		return ""
	}
	name, rawID, _ := strings.Cut(rest, "/")
	ep := Endpoint(name)
	switch ep {
	case EndpointKeyMaterial, EndpointUpdate, EndpointSubmitMessage, EndpointNotify, EndpointGroupInfo, EndpointProxyDownload,
		EndpointRequestConsent, EndpointUpdateConsent, EndpointIdentifierQuery, EndpointReportAbuse:
	default:
		s.fail(w, http.StatusNotFound, "no such endpoint")
		return ""
	}
	peer, code, detail := s.authenticate(r)
	if code != 0 {
		s.log.Info("refused a MIMI request", "endpoint", ep, "status", code, "reason", detail)
		s.refuse(w, ep, "", authReason(code))
		s.fail(w, code, detail)
		return ep
	}
	if s.cfg.PeerSeen != nil {
		s.cfg.PeerSeen(peer.Domain)
	}
	if ep == EndpointProxyDownload {
		release, code, retry, detail, reason := s.limits.admit(ep, peer.Domain, "", 0)
		if code != 0 {
			s.refuse(w, ep, peer.Domain, reason)
			s.refuseLimit(w, code, retry, detail)
			return ep
		}
		defer release()
		s.serveProxyDownload(w, r, peer, rawID)
		return ep
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.fail(w, http.StatusMethodNotAllowed, "use POST")
		return ep
	}
	id, err := DecodePathID(rawID)
	if err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return ep
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != MediaType {
		s.fail(w, http.StatusUnsupportedMediaType, "the body must be "+MediaType)
		return ep
	}
	limit := s.cfg.Limits.of(ep)
	if r.ContentLength > limit {
		s.refuse(w, ep, peer.Domain, "body_too_large")
		s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", limit))
		return ep
	}
	size := limit
	if r.ContentLength >= 0 {
		size = r.ContentLength
	}
	release, code, retry, detail, reason := s.limits.admit(ep, peer.Domain, id, size)
	if code != 0 {
		s.refuse(w, ep, peer.Domain, reason)
		s.refuseLimit(w, code, retry, detail)
		return ep
	}
	defer release()
	body, err := readBody(w, r.Body, r.ContentLength, limit)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.refuse(w, ep, peer.Domain, "body_too_large")
			s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", limit))
		} else {
			s.refuse(w, ep, peer.Domain, "body_unreadable")
			s.fail(w, http.StatusBadRequest, "reading the body failed")
		}
		return ep
	}
	room, code, detail := s.checkRoom(ep, peer, id)
	if code != 0 {
		s.fail(w, code, detail)
		return ep
	}
	s.dispatch(w, r.Context(), ep, peer, id, room, body)
	return ep
}

// readBody reads a request body, failing with *http.MaxBytesError beyond limit. A declared
// length (declared >= 0) is read into one buffer of that size.
func readBody(w http.ResponseWriter, body io.ReadCloser, declared, limit int64) ([]byte, error) {
	initial := int64(64 << 10)
	if declared >= 0 {
		initial = min(declared, limit) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, initial))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, body, limit))
	return buf.Bytes(), err
}

// refuseLimit answers a request refused by a resource limit (429 or 503 with Retry-After).
func (s *Server) refuseLimit(w http.ResponseWriter, code int, retry time.Duration, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	s.fail(w, code, detail)
}

// authReason is the refusal reason of an authentication failure's status.
func authReason(code int) string {
	if code == http.StatusForbidden {
		return "not_partner"
	}
	return "unauthenticated"
}

// checkRoom enforces who may talk about a room: /notify only from the room's hub (the domain of
// the room URI), and update, submitMessage and groupInfo only for rooms we are the hub of.
// It returns the parsed room ("" for endpoints that are not about a room).
func (s *Server) checkRoom(ep Endpoint, peer Peer, id IdentifierURI) (event.RoomURI, int, string) {
	switch ep {
	case EndpointNotify, EndpointUpdate, EndpointSubmitMessage, EndpointGroupInfo, EndpointReportAbuse:
	default:
		return "", 0, ""
	}
	room, err := event.ParseRoomURI(string(id))
	if err != nil {
		return "", http.StatusBadRequest, fmt.Sprintf("%q is not a room URI", id)
	}
	hub := normDomain(string(room.Domain()))
	if ep == EndpointNotify {
		if hub != peer.Domain {
			return "", http.StatusForbidden, fmt.Sprintf("only the room's hub %s may notify about it", hub)
		}
		return room, 0, ""
	}
	if hub != normDomain(string(s.cfg.Domain)) {
		return "", http.StatusNotFound, fmt.Sprintf("this provider is not the hub of rooms of %s", hub)
	}
	return room, 0, ""
}

func (s *Server) dispatch(w http.ResponseWriter, ctx context.Context, ep Endpoint, peer Peer, id IdentifierURI, room event.RoomURI, body []byte) {
	hub, isHub := s.cfg.Handler.(HubHandler)
	var (
		resp interface{ Encode() ([]byte, error) }
		err  error
	)
	switch ep {
	case EndpointNotify:
		s.serveNotify(w, ctx, peer, room, body)
		return
	case EndpointRequestConsent, EndpointUpdateConsent, EndpointIdentifierQuery, EndpointReportAbuse:
		s.serveDirect(w, ctx, ep, peer, id, room, body)
		return
	case EndpointKeyMaterial:
		target, perr := event.ParseUserURI(string(id))
		if perr != nil {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("%q is not a user URI", id))
			return
		}
		req, derr := DecodeKeyMaterialRequest(body)
		if derr != nil {
			s.fail(w, http.StatusBadRequest, derr.Error())
			return
		}
		if req.TargetUser != IdentifierURI(target) {
			s.fail(w, http.StatusBadRequest, "targetUser in the body differs from the path")
			return
		}
		if verr := req.Verify(); verr != nil {
			s.fail(w, http.StatusBadRequest, verr.Error())
			return
		}
		var r *KeyMaterialResponse
		r, err = s.cfg.Handler.KeyMaterial(ctx, peer, target, req)
		resp = r
	case EndpointUpdate, EndpointSubmitMessage, EndpointGroupInfo:
		if !isHub {
			s.fail(w, http.StatusNotFound, "this provider hosts no rooms")
			return
		}
		switch ep {
		case EndpointUpdate:
			req, derr := DecodeUpdateRequest(body)
			if derr != nil {
				s.fail(w, http.StatusBadRequest, derr.Error())
				return
			}
			var r *UpdateRoomResponse
			r, err = hub.Update(ctx, peer, room, req)
			resp = r
		case EndpointSubmitMessage:
			req, derr := DecodeSubmitMessageRequest(body)
			if derr != nil {
				s.fail(w, http.StatusBadRequest, derr.Error())
				return
			}
			var r *SubmitMessageResponse
			r, err = hub.SubmitMessage(ctx, peer, room, req)
			resp = r
		default:
			req, derr := DecodeGroupInfoRequest(body)
			if derr != nil {
				s.fail(w, http.StatusBadRequest, derr.Error())
				return
			}
			if verr := req.Verify(); verr != nil {
				s.fail(w, http.StatusBadRequest, verr.Error())
				return
			}
			var r *GroupInfoResponse
			r, err = hub.GroupInfo(ctx, peer, room, req)
			resp = r
		}
	}
	if err != nil {
		s.handlerError(w, ep, err)
		return
	}
	out, err := resp.Encode()
	if err != nil {
		s.handlerError(w, ep, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", MediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func (s *Server) handlerError(w http.ResponseWriter, ep Endpoint, err error) {
	var se *StatusError
	if errors.As(err, &se) {
		if se.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((se.RetryAfter+time.Second-1)/time.Second)))
		}
		s.fail(w, se.Status, se.Detail)
		return
	}
	s.log.Error("MIMI handler failed", "endpoint", ep, "err", err)
	s.fail(w, http.StatusInternalServerError, "internal error")
}

// notifyKey is the dedupe key of a /notify body: SHA-256 over the hub domain, a zero byte and
// the body.
func notifyKey(hub event.Domain, body []byte) string {
	h := sha256.New()
	h.Write([]byte(hub))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) serveNotify(w http.ResponseWriter, ctx context.Context, peer Peer, room event.RoomURI, body []byte) {
	msgs, err := DecodeFanoutMessages(body)
	if err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	key := notifyKey(peer.Domain, body)
	dup := false
	// Concurrent /notify requests (one per room and batch, over several connections) share a
	// commit; each gets its 201 only after that commit.
	err = s.cfg.Store.InGroupTx(ctx, func(tx *store.Tx) error {
		first, err := tx.MarkProcessed(ctx, NotifyScope, key)
		if err != nil {
			return fmt.Errorf("mark /notify processed: %w", err)
		}
		if !first {
			dup = true
			return nil
		}
		return s.cfg.Handler.Notify(ctx, tx, &Notification{Hub: peer, Room: room, Body: body, Messages: msgs})
	})
	if err != nil {
		s.handlerError(w, EndpointNotify, err)
		return
	}
	if dup {
		s.metrics.duplicates.Inc()
	} else if nc, ok := s.cfg.Handler.(NotifyCommitter); ok {
		nc.NotifyCommitted(room)
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *Server) serveProxyDownload(w http.ResponseWriter, r *http.Request, peer Peer, rawID string) {
	pd, ok := s.cfg.Handler.(ProxyDownloadHandler)
	if !ok {
		s.fail(w, http.StatusNotFound, "proxyDownload is not offered")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.fail(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	id, err := DecodePathID(rawID)
	if err != nil {
		s.fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := pd.ProxyDownload(r.Context(), peer, string(id), w); err != nil {
		s.handlerError(w, EndpointProxyDownload, err)
	}
}
