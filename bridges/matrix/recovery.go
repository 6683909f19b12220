package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"maunium.net/go/mautrix"

	"github.com/mimi-gateway/mimi-gateway/bridges"
)

var _ bridges.ServerWaiter = (*Adapter)(nil)

// homeserverPoll is how often WaitServer asks an unreachable homeserver whether it is back.
const homeserverPoll = 250 * time.Millisecond

// ServerUnreachable implements bridges.ServerWaiter: err says that the homeserver did not answer
// (no connection, a reset or a time-out on the way, or 502/503/504 from a proxy in front of it).
// A homeserver that answers with an error is not unreachable.
func (a *Adapter) ServerUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) {
		return homeserverAway(&he)
	}
	var hp *mautrix.HTTPError
	if errors.As(err, &hp) {
		return homeserverAway(hp)
	}
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe)
}

// homeserverAway reports whether a failed request did not reach a homeserver that answers.
func homeserverAway(he *mautrix.HTTPError) bool {
	if he.Response == nil {
		var ue *url.Error
		return errors.As(he.WrappedError, &ue) && !errors.Is(ue, context.Canceled)
	}
	switch he.Response.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// WaitServer implements bridges.ServerWaiter: it asks the homeserver for its versions every
// 250 ms until it answers (plain requests: mautrix would log every refused one as an error).
func (a *Adapter) WaitServer(ctx context.Context) error {
	u := strings.TrimSuffix(a.cfg.HomeserverURL, "/") + "/_matrix/client/versions"
	hc := a.client.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	for {
		err := versionsAnswer(ctx, hc, u)
		if err == nil {
			return nil
		}
		t := time.NewTimer(homeserverPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("matrix: homeserver %s still unreachable: %w", a.cfg.HomeserverURL, err)
		case <-t.C:
		}
	}
}

// versionsAnswer asks the homeserver at u for its versions; nil means it answered 200.
func versionsAnswer(ctx context.Context, hc *http.Client, u string) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}
