package matrix

import (
	"context"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/hsprobe"
)

var _ bridges.ServerWaiter = (*Adapter)(nil)

// ServerUnreachable implements bridges.ServerWaiter: err says that the homeserver did not answer
// (hsprobe.Unreachable).
func (a *Adapter) ServerUnreachable(err error) bool { return hsprobe.Unreachable(err) }

// WaitServer implements bridges.ServerWaiter: it returns once the homeserver answers again
// (hsprobe.Wait).
func (a *Adapter) WaitServer(ctx context.Context) error {
	return hsprobe.Wait(ctx, a.client.Client, a.cfg.HomeserverURL)
}
