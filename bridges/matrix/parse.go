package matrix

import (
	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
)

// Matrix events as the adapter reads them: bridges/matrix/mxevent.
type (
	// Parsed is mxevent.Parsed.
	Parsed = mxevent.Parsed
	// Media is mxevent.Media.
	Media = mxevent.Media
)

// Limits and errors of mxevent.
const (
	MaxEventSize       = mxevent.MaxEventSize
	MaxBodySize        = mxevent.MaxBodySize
	MaxMentions        = mxevent.MaxMentions
	MaxReactionKeySize = mxevent.MaxReactionKeySize
)

var (
	// ErrMalformed is mxevent.ErrMalformed.
	ErrMalformed = mxevent.ErrMalformed
	// ErrIgnored is mxevent.ErrIgnored.
	ErrIgnored = mxevent.ErrIgnored
)

// ParseEvent is mxevent.Parse.
func ParseEvent(raw []byte) (*Parsed, error) { return mxevent.Parse(raw) }

func parseEvent(evt *mevent.Event) (*Parsed, error) { return mxevent.FromEvent(evt) }
