package protocol

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// CertInfo describes one certificate of a chain, for operators.
type CertInfo struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// SHA256 is the hex SHA-256 fingerprint of the DER certificate.
	SHA256 string `json:"sha256"`
}

// DescribeCert returns c's operator-facing description.
func DescribeCert(c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	return CertInfo{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(), DNSNames: append([]string(nil), c.DNSNames...),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), SHA256: hex.EncodeToString(sum[:]),
	}
}

// CheckResult is the outcome of Client.Check: a fresh fetch of the partner's directory over
// mutual TLS.
type CheckResult struct {
	Domain event.Domain `json:"domain"`
	// URL is the directory URL fetched.
	URL string `json:"url"`
	// Time is when the check started; Latency how long it took.
	Time    time.Time     `json:"time"`
	Latency time.Duration `json:"latency"`
	// Status is the HTTP status (0: no answer).
	Status int `json:"status"`
	// Chain is the partner's server certificate chain as presented (leaf first).
	Chain []CertInfo `json:"chain,omitempty"`
	// Endpoints are the endpoint names the directory lists.
	Endpoints []string `json:"endpoints,omitempty"`
	// Error is empty when the partner answered with a valid directory.
	Error string `json:"error,omitempty"`
}

// OK reports whether the check succeeded.
func (r CheckResult) OK() bool { return r.Error == "" }

// Check fetches partner d's directory now, bypassing the discovery cache, over the same
// mutual-TLS transport as every other request, and reports the certificate chain the partner
// presented. The directory is fetched from the static base URL's host when one is configured,
// else from https://<domain>. The result is also recorded as the partner's last success or error
// (see Reachability).
func (c *Client) Check(ctx context.Context, d event.Domain) CheckResult {
	start := time.Now()
	res := CheckResult{Domain: d, Time: start.UTC()}
	fail := func(err error) CheckResult {
		res.Latency = time.Since(start)
		res.Error = err.Error()
		c.noteResult(d, err)
		return res
	}
	p, err := c.partner(d)
	if err != nil {
		return fail(err)
	}
	res.Domain = p.Domain
	res.URL = "https://" + string(p.Domain) + DirectoryPath
	if p.BaseURL != nil {
		res.URL = "https://" + p.BaseURL.Host + DirectoryPath
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, res.URL, nil)
	if err != nil {
		return fail(fmt.Errorf("protocol: check %s: %w", d, err))
	}
	req.Host = string(p.Domain)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("From", FromLocalPart+"@"+string(c.cfg.Domain))
	resp, err := c.transport(p).RoundTrip(req)
	if err != nil {
		return fail(fmt.Errorf("protocol: check %s: %w", d, err))
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	if resp.TLS != nil {
		for _, cert := range resp.TLS.PeerCertificates {
			res.Chain = append(res.Chain, DescribeCert(cert))
		}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxDirectorySize+1))
	switch {
	case err != nil:
		return fail(fmt.Errorf("protocol: check %s: %w", d, err))
	case resp.StatusCode != http.StatusOK:
		return fail(fmt.Errorf("protocol: check %s: HTTP %d", d, resp.StatusCode))
	case len(b) > MaxDirectorySize:
		return fail(fmt.Errorf("protocol: check %s: directory larger than %d bytes", d, MaxDirectorySize))
	}
	var dir Directory
	if err := json.Unmarshal(b, &dir); err != nil {
		return fail(fmt.Errorf("protocol: check %s: directory is not a JSON object of strings: %w", d, err))
	}
	for e := range dir {
		res.Endpoints = append(res.Endpoints, string(e))
	}
	sort.Strings(res.Endpoints)
	res.Latency = time.Since(start)
	c.noteResult(d, nil)
	return res
}

// PartnerReachability is what the client saw of one partner: the last request that got an
// answer (any HTTP status) and the last one that failed without an answer or with a 5xx.
type PartnerReachability struct {
	Domain      event.Domain `json:"domain"`
	LastSuccess time.Time    `json:"last_success,omitzero"`
	LastError   time.Time    `json:"last_error,omitzero"`
	// LastErrorText is the last error's text.
	LastErrorText string `json:"last_error_text,omitempty"`
	// DownSince is the first failure since the partner last answered (zero while it answers).
	DownSince time.Time `json:"down_since,omitzero"`
	// CertNotAfter is when the server certificate the partner last presented to us expires.
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
}

// Reachable reports whether the last outcome was a success.
func (r PartnerReachability) Reachable() bool {
	return !r.LastSuccess.IsZero() && !r.LastSuccess.Before(r.LastError)
}

// reach records PartnerReachability per partner domain, and tells the listeners and waiters
// of reachable.go when a partner answers again.
type reach struct {
	mu sync.Mutex
	m  map[event.Domain]*PartnerReachability
	// back holds, per partner that is down, a channel closed when it answers again.
	back map[event.Domain]chan struct{}
	// listeners are called (on their own goroutines) when a partner answers again after failing.
	listeners    map[int]func(event.Domain)
	nextListener int
}

// noteResult records the outcome of a request to d: err nil means the partner answered.
func (c *Client) noteResult(d event.Domain, err error) {
	var he *HTTPError
	if errors.As(err, &he) && he.Status < 500 {
		err = nil // the partner answered; a 4xx is about the request, not reachability
	}
	if errors.Is(err, ErrNotPartner) {
		return
	}
	d = normDomain(string(d))
	now := c.cfg.Now().UTC()
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	if c.reach.m == nil {
		c.reach.m = make(map[event.Domain]*PartnerReachability)
	}
	r := c.reach.m[d]
	if r == nil {
		r = &PartnerReachability{Domain: d}
		c.reach.m[d] = r
	}
	if err == nil {
		r.LastSuccess = now
		if !r.DownSince.IsZero() {
			r.DownSince = time.Time{}
			c.answeredAgain(d) // reachable.go
		}
		return
	}
	if r.DownSince.IsZero() {
		r.DownSince = now
	}
	r.LastError = now
	r.LastErrorText = strings.ToValidUTF8(err.Error(), "?")
	if len(r.LastErrorText) > 512 {
		r.LastErrorText = r.LastErrorText[:512]
	}
}

// Reachability returns what the client saw of partner d since it started (zero times if it
// has not talked to d yet).
func (c *Client) Reachability(d event.Domain) PartnerReachability {
	d = normDomain(string(d))
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	if r := c.reach.m[d]; r != nil {
		return *r
	}
	return PartnerReachability{Domain: d}
}

// statusErr is the reachability outcome of an HTTP answer: an error for 5xx, nil otherwise.
func statusErr(status int) error {
	if status >= 500 {
		return fmt.Errorf("HTTP %d", status)
	}
	return nil
}
