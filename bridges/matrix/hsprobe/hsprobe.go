// Package hsprobe tells whether a request failed because the Matrix homeserver did not answer
// at all, and waits until it answers again (bridges.ServerWaiter of the Matrix adapter).
package hsprobe

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
)

// homeserverPoll is how often Wait asks an unreachable homeserver whether it is back.
const homeserverPoll = 250 * time.Millisecond

// Unreachable reports whether err says that the homeserver did not answer (no connection, a
// reset or a time-out on the way, or 502/503/504 from a proxy in front of it). A homeserver that
// answers with an error is not unreachable.
func Unreachable(err error) bool {
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

// Wait asks the homeserver at hsURL for its versions through hc every 250 ms until it answers
// (plain requests: mautrix would log every refused one as an error), or ctx ends.
func Wait(ctx context.Context, hc *http.Client, hsURL string) error {
	u := strings.TrimSuffix(hsURL, "/") + "/_matrix/client/versions"
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
			return fmt.Errorf("matrix: homeserver %s still unreachable: %w", hsURL, err)
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
