package matrix

import (
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/ghost"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// MaxIDLength bounds every Matrix identifier the adapter accepts (mxevent.MaxIDLength).
const MaxIDLength = mxevent.MaxIDLength

// UserURIOf maps a Matrix user ID to its MIMI user URI: @alice:klinik-a.example becomes
// mimi://klinik-a.example/u/alice (the user URI form of docs/architecture.md).
func UserURIOf(u id.UserID) (event.UserURI, error) {
	local, server, err := u.ParseAndValidateRelaxed()
	if err != nil || len(u) > MaxIDLength {
		return "", fmt.Errorf("matrix: user ID %q: invalid", truncate(string(u), 64))
	}
	uri := event.NewUserURI(event.Domain(strings.ToLower(server)), local)
	if _, err := event.ParseUserURI(string(uri)); err != nil {
		return "", fmt.Errorf("matrix: user ID %q: %w", truncate(string(u), 64), err)
	}
	return uri, nil
}

// RoomURIOf is the MIMI room the gateway hosts (as hub) for a Matrix room that was not created as the
// portal of an existing MIMI room: mimi://<gateway domain>/r/<room ID>, percent-encoded.
func RoomURIOf(d event.Domain, r id.RoomID) (event.RoomURI, error) {
	if !strings.HasPrefix(string(r), "!") || len(r) > MaxIDLength || !strings.Contains(string(r), ":") {
		return "", fmt.Errorf("matrix: room ID %q: invalid", truncate(string(r), 64))
	}
	uri := event.NewRoomURI(d, string(r))
	if _, err := event.ParseRoomURI(string(uri)); err != nil {
		return "", fmt.Errorf("matrix: room ID %q: %w", truncate(string(r), 64), err)
	}
	return uri, nil
}

// Ghosts names and recognises the ghost users of MIMI users of other providers (ghost.Namespace).
type Ghosts = ghost.Namespace

var truncate = mxevent.Truncate
