package ops

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Probe limits.
const (
	// DefaultProbeTimeout bounds Probe when ctx has no deadline.
	DefaultProbeTimeout = 5 * time.Second
	maxProbeBody        = 4 << 10
)

// Probe asks the admin listener at adminAddr ("host:port", as configured)
// whether the gateway is ready: GET /readyz must answer 200. A wildcard
// host (":9464", "0.0.0.0:9464", "[::]:9464") is probed on loopback. The
// returned error carries the status and the start of the body, which names
// the failing checks. Without a deadline on ctx it uses
// DefaultProbeTimeout. The CLI's healthcheck subcommand calls it for
// container probes.
func Probe(ctx context.Context, adminAddr string) error {
	target, err := probeTarget(adminAddr)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultProbeTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("ops: probe %s: %w", target, err)
	}
	client := &http.Client{
		// Never follow redirects or use a proxy for a local probe.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ops: probe %s: %w", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ops: probe %s: not ready (HTTP %d): %s", target, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// probeTarget turns a listen address into a dialable one.
func probeTarget(addr string) (string, error) {
	if addr == "" {
		addr = DefaultAdminAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("ops: probe: admin address %q: %w", addr, err)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("ops: probe: admin address %q has no port", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
