package protocol

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Directory is the JSON object of URL templates served at /.well-known/mimi-protocol-directory
// (§5.1), keyed by endpoint name; each template has one {variable}.
type Directory map[Endpoint]string

// MaxDirectorySize bounds a fetched directory document.
const MaxDirectorySize = 64 << 10

// NewDirectory returns the templates of the endpoints this package serves under base (which
// ends in "/").
func NewDirectory(base string) Directory {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	d := make(Directory, len(directoryVariables))
	for _, v := range directoryVariables {
		d[v.e] = base + strings.TrimPrefix(APIPrefix, "/") + string(v.e) + "/{" + v.variable + "}"
	}
	return d
}

// URL fills the template of e with id (percent-encoded, reading R3). Only https templates are
// used.
func (d Directory) URL(e Endpoint, id IdentifierURI) (string, error) {
	t, ok := d[e]
	if !ok {
		return "", fmt.Errorf("protocol: the partner's directory has no %s endpoint", e)
	}
	open := strings.IndexByte(t, '{')
	close := strings.IndexByte(t, '}')
	if open < 0 || close < open {
		return "", fmt.Errorf("protocol: directory template for %s has no {variable}", e)
	}
	s := t[:open] + EncodePathID(id) + t[close+1:]
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("protocol: directory template for %s is not an https URL", e)
	}
	return s, nil
}

func (s *Server) serveDirectory(w http.ResponseWriter) {
	b, err := json.Marshal(NewDirectory(s.cfg.PublicBaseURL))
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "directory")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(s.cfg.DirectoryMaxAge/time.Second)))
	_, _ = w.Write(b)
}

// Discovery limits.
const (
	// DefaultDiscoveryTTL caches a directory without Cache-Control max-age.
	DefaultDiscoveryTTL = time.Hour
	// MinDiscoveryTTL and MaxDiscoveryTTL bound the max-age we honour.
	MinDiscoveryTTL = time.Minute
	MaxDiscoveryTTL = 24 * time.Hour
)

type dirEntry struct {
	dir     Directory
	expires time.Time
}

// discovery caches partners' directories.
type discovery struct {
	mu    sync.Mutex
	cache map[event.Domain]dirEntry
	now   func() time.Time
	ttl   time.Duration
}

// maxAge extracts Cache-Control max-age (ok false when absent or no-store/no-cache).
func maxAge(h http.Header) (time.Duration, bool) {
	for _, part := range strings.Split(h.Get("Cache-Control"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(k) {
		case "no-store", "no-cache":
			return 0, true
		case "max-age":
			n, err := strconv.Atoi(strings.Trim(v, `"`))
			if err == nil && n >= 0 {
				return time.Duration(n) * time.Second, true
			}
		}
	}
	return 0, false
}

// directory returns p's directory: derived from the static base URL, or fetched and cached.
func (c *Client) directory(ctx context.Context, p Partner) (Directory, error) {
	if p.BaseURL != nil {
		return NewDirectory(p.BaseURL.String()), nil
	}
	d := &c.disc
	d.mu.Lock()
	e, ok := d.cache[p.Domain]
	d.mu.Unlock()
	if ok && d.now().Before(e.expires) {
		return e.dir, nil
	}
	dir, ttl, err := c.fetchDirectory(ctx, p)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.cache[p.Domain] = dirEntry{dir: dir, expires: d.now().Add(ttl)}
	d.mu.Unlock()
	return dir, nil
}

func (c *Client) fetchDirectory(ctx context.Context, p Partner) (Directory, time.Duration, error) {
	u := "https://" + string(p.Domain) + DirectoryPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("protocol: discovery for %s: %w", p.Domain, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("From", FromLocalPart+"@"+string(c.cfg.Domain))
	resp, err := c.transport(p).RoundTrip(req)
	if err != nil {
		return nil, 0, fmt.Errorf("protocol: discovery for %s: %w", p.Domain, err)
	}
	defer resp.Body.Close()
	c.metrics.discovery.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("protocol: discovery for %s: HTTP %d", p.Domain, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDirectorySize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("protocol: discovery for %s: %w", p.Domain, err)
	}
	if len(b) > MaxDirectorySize {
		return nil, 0, fmt.Errorf("protocol: discovery for %s: directory larger than %d bytes", p.Domain, MaxDirectorySize)
	}
	var dir Directory
	if err := json.Unmarshal(b, &dir); err != nil {
		return nil, 0, fmt.Errorf("protocol: discovery for %s: directory is not a JSON object of strings: %w", p.Domain, err)
	}
	ttl := c.disc.ttl
	if ma, ok := maxAge(resp.Header); ok {
		ttl = min(max(ma, MinDiscoveryTTL), MaxDiscoveryTTL)
	}
	return dir, ttl, nil
}
