package matrix

import (
	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
)

// Matrix events as the adapter reads them, with their limits: bridges/matrix/mxevent.

// Parsed is mxevent.Parsed.
type Parsed = mxevent.Parsed

var (
	// ErrMalformed is mxevent.ErrMalformed.
	ErrMalformed = mxevent.ErrMalformed
	// ErrIgnored is mxevent.ErrIgnored.
	ErrIgnored = mxevent.ErrIgnored
)

func parseEvent(evt *mevent.Event) (*Parsed, error) { return mxevent.FromEvent(evt) }
