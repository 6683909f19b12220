package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Asset URLs (reading R26): a provider's stored attachment is
// https://<provider domain>/assets/<id>, id being 32 lower-case hex digits (128 random bits). The
// provider serves the ciphertext at that path on its mutual-TLS listener; the URL host names the
// provider (its asset domain is its provider domain, or the host of its configured base_url).

// AssetPathPrefix is the path prefix under which a provider serves its assets.
const AssetPathPrefix = "/assets/"

// AssetIDLength is the length of an asset ID (hex digits).
const AssetIDLength = 32

// DefaultMaxAssetSize bounds an asset served or fetched when no other limit is given: 100 MiB of
// plaintext plus the AES-GCM tag.
const DefaultMaxAssetSize = 100<<20 + 16

// ErrAssetURL means a string is not an asset URL this package accepts.
var ErrAssetURL = errors.New("protocol: not an asset URL")

// ErrAssetTooLarge means an asset exceeds the size limit.
var ErrAssetTooLarge = errors.New("protocol: asset too large")

// AssetHandler is the optional capability of a Handler that serves stored assets at
// GET /assets/<id>. OpenAsset returns the ciphertext and its exact size; an unknown or expired
// asset is a *StatusError with 404.
type AssetHandler interface {
	OpenAsset(ctx context.Context, peer Peer, id string) (io.ReadCloser, int64, error)
}

// ParseAssetID checks an asset ID: exactly AssetIDLength lower-case hex digits.
func ParseAssetID(s string) (string, error) {
	if len(s) != AssetIDLength {
		return "", fmt.Errorf("%w: asset ID of %d characters, want %d", ErrAssetURL, len(s), AssetIDLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("%w: asset ID has a character other than 0-9a-f at %d", ErrAssetURL, i)
		}
	}
	return s, nil
}

// AssetURL is the URL of asset id stored by the provider of domain.
func AssetURL(domain event.Domain, id string) string {
	return "https://" + string(domain) + AssetPathPrefix + id
}

// ParseAssetURL splits an asset URL into its host (lower case, no port) and ID. Only
// https://<host>/assets/<id> is accepted: no user info, port, query, fragment or escaping.
func ParseAssetURL(raw string) (host, id string, err error) {
	if len(raw) > MaxURILength {
		return "", "", fmt.Errorf("%w: %d bytes (limit %d)", ErrAssetURL, len(raw), MaxURILength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrAssetURL, err)
	}
	switch {
	case u.Scheme != "https":
		return "", "", fmt.Errorf("%w: scheme %q, want https", ErrAssetURL, u.Scheme)
	case u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "":
		return "", "", fmt.Errorf("%w: user info, query or fragment in %q", ErrAssetURL, raw)
	case u.Port() != "" || strings.HasSuffix(u.Host, ":"):
		return "", "", fmt.Errorf("%w: port in %q", ErrAssetURL, raw)
	case u.RawPath != "":
		return "", "", fmt.Errorf("%w: escaped path in %q", ErrAssetURL, raw)
	}
	h := strings.ToLower(u.Hostname())
	if h == "" || strings.Trim(h, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		return "", "", fmt.Errorf("%w: %q has no plain host name", ErrAssetURL, raw)
	}
	rest, ok := strings.CutPrefix(u.Path, AssetPathPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: path is not %s<id>", ErrAssetURL, AssetPathPrefix)
	}
	if id, err = ParseAssetID(rest); err != nil {
		return "", "", err
	}
	return string(normDomain(h)), id, nil
}

// assetPartner returns the partner whose asset domain host is: its provider domain or the host
// of its configured base URL.
func (p *Partners) assetPartner(host string) (Partner, bool) {
	if x, ok := p.Lookup(event.Domain(host)); ok {
		return x, true
	}
	m := p.m.Load()
	if m == nil {
		return Partner{}, false
	}
	for _, x := range *m {
		if x.BaseURL != nil && string(normDomain(x.BaseURL.Hostname())) == host {
			return x, true
		}
	}
	return Partner{}, false
}

// AssetPartner reports which configured partner owns the asset domain host, if any.
func (p *Partners) AssetPartner(host string) (event.Domain, bool) {
	x, ok := p.assetPartner(string(normDomain(host)))
	return x.Domain, ok
}

// serveAsset answers GET /assets/<id> for an authenticated partner.
func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, rawID string) {
	peer, code, detail := s.authenticate(r)
	if code != 0 {
		s.log.Info("refused an asset request", "status", code, "reason", detail)
		s.fail(w, code, detail)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.fail(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	id, err := ParseAssetID(rawID)
	if err != nil {
		s.fail(w, http.StatusNotFound, "no such asset")
		return
	}
	h, ok := s.cfg.Handler.(AssetHandler)
	if !ok {
		s.fail(w, http.StatusNotFound, "this provider serves no assets")
		return
	}
	rc, size, err := h.OpenAsset(r.Context(), peer, id)
	if err != nil {
		s.handlerError(w, "assets", err)
		return
	}
	defer rc.Close()
	limit := s.cfg.Limits.asset()
	if size < 0 || size > limit {
		s.log.Error("stored asset exceeds the serving limit", "id", id, "size", size, "limit", limit)
		s.fail(w, http.StatusInternalServerError, "asset exceeds the size limit")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, no-transform")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.CopyN(w, rc, size); err != nil {
		s.log.Warn("serving an asset failed", "id", id, "err", err)
	}
}

// asset is the limit of a served asset.
func (l Limits) asset() int64 {
	if l.Asset > 0 {
		return l.Asset
	}
	return DefaultMaxAssetSize
}

// OpenAsset fetches the ciphertext of a partner's asset directly (GET /assets/<id>) over mutual
// TLS. The URL host must be a configured partner's asset domain (ErrNotPartner otherwise); the
// request goes to the partner's endpoint base (base_url when configured, else https://<domain>/)
// with the partner's server certificate verified for its provider domain (reading R19). It
// returns the body, of at most limit bytes (reading past the limit fails with ErrAssetTooLarge),
// and its declared length (-1 when unknown). A non-200 answer is an *HTTPError.
func (c *Client) OpenAsset(ctx context.Context, rawURL string, limit int64) (io.ReadCloser, int64, error) {
	host, id, err := ParseAssetURL(rawURL)
	if err != nil {
		return nil, 0, err
	}
	p, ok := c.cfg.Partners.assetPartner(host)
	if !ok {
		return nil, 0, fmt.Errorf("%w: asset host %s", ErrNotPartner, host)
	}
	u := AssetURL(p.Domain, id)
	if p.BaseURL != nil {
		u = p.BaseURL.JoinPath(strings.TrimPrefix(AssetPathPrefix, "/"), id).String()
	}
	return c.getStream(ctx, p, "assets", u, limit)
}

// getStream GETs u from partner p and returns the body of a 200 answer, bounded by limit.
func (c *Client) getStream(ctx context.Context, p Partner, label Endpoint, u string, limit int64) (io.ReadCloser, int64, error) {
	if limit <= 0 {
		limit = DefaultMaxAssetSize
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, 0, fmt.Errorf("protocol: %s from %s: %w", label, p.Domain, err)
	}
	req.Host = string(p.Domain)
	req.Header.Set("From", FromLocalPart+"@"+string(c.cfg.Domain))
	resp, err := c.transport(p).RoundTrip(req)
	if err != nil {
		cancel()
		c.metrics.requests.WithLabelValues(string(label), "0").Inc()
		return nil, 0, fmt.Errorf("protocol: %s from %s: %w", label, p.Domain, err)
	}
	c.metrics.requests.WithLabelValues(string(label), strconv.Itoa(resp.StatusCode)).Inc()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		return nil, 0, &HTTPError{Endpoint: label, Status: resp.StatusCode, Detail: string(b),
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())}
	}
	if resp.ContentLength > limit {
		resp.Body.Close()
		cancel()
		return nil, 0, fmt.Errorf("%w: %s from %s declares %d bytes (limit %d)", ErrAssetTooLarge, label, p.Domain, resp.ContentLength, limit)
	}
	return &limitedBody{rc: resp.Body, left: limit, cancel: cancel, what: fmt.Sprintf("%s from %s", label, p.Domain), limit: limit}, resp.ContentLength, nil
}

// limitedBody reads at most limit bytes and fails, rather than truncating, beyond it.
type limitedBody struct {
	rc     io.ReadCloser
	left   int64
	limit  int64
	what   string
	cancel context.CancelFunc
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, fmt.Errorf("%w: %s exceeds %d bytes", ErrAssetTooLarge, b.what, b.limit)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n - int(-b.left), fmt.Errorf("%w: %s exceeds %d bytes", ErrAssetTooLarge, b.what, b.limit)
	}
	return n, err
}

func (b *limitedBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// OpenProxyDownload is ProxyDownload as a stream: it asks hub's /proxyDownload for downloadURL
// and returns the body (at most limit bytes) and its declared length (-1 when unknown).
func (c *Client) OpenProxyDownload(ctx context.Context, hub event.Domain, downloadURL string, limit int64) (io.ReadCloser, int64, error) {
	p, err := c.partner(hub)
	if err != nil {
		return nil, 0, err
	}
	dir, err := c.directory(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	u, err := dir.URL(EndpointProxyDownload, IdentifierURI(downloadURL))
	if err != nil {
		return nil, 0, err
	}
	return c.getStream(ctx, p, EndpointProxyDownload, u, limit)
}
