package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

var _ bridges.UserChecker = (*Adapter)(nil)

// UserExists reports whether u is a user of the homeserver: its profile, looked up by the
// appservice bot or the functional account, exists. The adapter's own users (the bot, the
// functional account, ghosts) are not. A homeserver that refuses profile lookups (Synapse with
// limit_profile_requests_to_users_who_share_rooms) or does not answer is an error.
func (a *Adapter) UserExists(ctx context.Context, u event.UserURI) (bool, error) {
	if string(u.Domain()) != strings.ToLower(a.cfg.ServerName) {
		return false, nil
	}
	mx := id.NewUserID(u.Local(), a.cfg.ServerName)
	if _, _, err := mx.ParseAndValidateRelaxed(); err != nil || len(mx) > MaxIDLength {
		return false, nil // no Matrix account can have this name
	}
	if a.isOwn(mx) || a.ghosts.IsGhost(mx) {
		return false, nil
	}
	if a.client == nil {
		return false, errors.New("matrix: adapter not started")
	}
	_, err := a.client.GetProfile(ctx, mx)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mautrix.MNotFound):
		return false, nil
	}
	return false, fmt.Errorf("matrix: profile of %s: %w", mx, err)
}
