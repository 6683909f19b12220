package assets

import (
	"errors"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// ErrUnavailable is wrapped by Open errors that a retry cannot fix (unknown or expired, failed
// integrity check, too large, host not allowed); an adapter renders the message without the
// attachment instead of redelivering it.
var ErrUnavailable = errors.New("assets: attachment unavailable")

// Meta describes a file handed to Put.
type Meta struct {
	ContentType string
	Filename    string
	Size        int64
	// Owner is the user who sent the file (so that erasing the user removes it); may be empty.
	Owner event.UserURI
}

// Asset is a stored, encrypted attachment: the fields an ExternalPart carries.
type Asset struct {
	URL         string
	ContentType string
	Filename    string
	Size        uint64 // plaintext size
	Key         []byte // AES-128-GCM key
	Nonce       []byte
	HashAlg     uint8  // IANA named information hash algorithm; 1 = SHA-256
	Hash        []byte // over the ciphertext
	// Expires is when the store deletes the asset (Put sets it; zero is unknown or never).
	Expires time.Time
	// Room, when set on Open, is the MIMI room whose message referenced the asset: a store that
	// cannot fetch a partner's asset directly may ask the room's hub (/proxyDownload).
	Room event.RoomURI
}
