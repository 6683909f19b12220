package xmpp

import (
	"context"
	"errors"

	"github.com/mimi-gateway/mimi-gateway/bridges"
)

var _ bridges.ServerWaiter = (*Adapter)(nil)

// ServerUnreachable implements bridges.ServerWaiter: a stanza could not be sent because a
// component is not connected to the XMPP server.
func (a *Adapter) ServerUnreachable(err error) bool { return errors.Is(err, ErrNotConnected) }

// WaitServer implements bridges.ServerWaiter: it returns once both components are connected
// again.
func (a *Adapter) WaitServer(ctx context.Context) error { return a.WaitConnected(ctx) }
