package matrix

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
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
// 250 ms until it answers.
func (a *Adapter) WaitServer(ctx context.Context) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := a.client.Versions(rctx)
		cancel()
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
