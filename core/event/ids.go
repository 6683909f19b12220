package event

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Domain is a provider's DNS domain, such as "klinik-a.example". It is the authority of every MIMI
// URI the provider issues.
type Domain string

// Network names a legacy network adapter. It appears in bus subjects, so it is a single lower-case
// token.
type Network string

// The networks the gateway bridges.
const (
	NetworkMatrix Network = "matrix"
	NetworkXMPP   Network = "xmpp"
	// NetworkMIMI marks events that originate on the MIMI side (a partner provider).
	NetworkMIMI Network = "mimi"
)

// Valid reports whether n is usable as a bus subject token: 1 to 32 characters from [a-z0-9_-].
func (n Network) Valid() bool {
	if len(n) == 0 || len(n) > 32 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// UserURI identifies a user: mimi://<domain>/u/<user>.
type UserURI string

// DeviceURI identifies an MLS client of a user: mimi://<domain>/d/<user>/<client>.
type DeviceURI string

// RoomURI identifies a MIMI room: mimi://<domain>/r/<room>. The domain is the room's hub.
type RoomURI string

// Kinds of MIMI URI path, from draft-ietf-mimi-protocol §3 and draft-mahy-mimi-identity.
const (
	pathUser   = "u"
	pathDevice = "d"
	pathRoom   = "r"
)

// MaxURILength bounds every MIMI URI the gateway accepts.
const MaxURILength = 1024

// ErrInvalidURI is returned (wrapped) for a malformed MIMI URI.
var ErrInvalidURI = errors.New("invalid MIMI URI")

// NewUserURI builds the URI of a user from its domain and native local part (a Matrix localpart, an
// XMPP node). Characters outside the RFC 3986 unreserved set are percent-encoded, so any local part
// maps to exactly one URI and back.
func NewUserURI(d Domain, local string) UserURI {
	return UserURI(buildURI(d, pathUser, local))
}

// NewDeviceURI builds the URI of a user's MLS client.
func NewDeviceURI(d Domain, user, client string) DeviceURI {
	return DeviceURI(buildURI(d, pathDevice, user, client))
}

// NewRoomURI builds the URI of a room hosted (as hub) by domain d.
func NewRoomURI(d Domain, id string) RoomURI {
	return RoomURI(buildURI(d, pathRoom, id))
}

func buildURI(d Domain, kind string, segs ...string) string {
	var b strings.Builder
	b.WriteString("mimi://")
	b.WriteString(strings.ToLower(string(d)))
	b.WriteString("/")
	b.WriteString(kind)
	for _, s := range segs {
		b.WriteString("/")
		b.WriteString(escapeSegment(s))
	}
	return b.String()
}

// escapeSegment percent-encodes everything except RFC 3986 unreserved characters.
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// parsed is a decomposed MIMI URI.
type parsed struct {
	domain Domain
	kind   string
	segs   []string // unescaped
}

func parseURI(s string) (parsed, error) {
	if len(s) > MaxURILength {
		return parsed{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidURI, MaxURILength)
	}
	rest, ok := strings.CutPrefix(s, "mimi://")
	if !ok {
		return parsed{}, fmt.Errorf("%w: %q does not start with mimi://", ErrInvalidURI, s)
	}
	host, path, ok := strings.Cut(rest, "/")
	if !ok || host == "" {
		return parsed{}, fmt.Errorf("%w: %q has no domain and path", ErrInvalidURI, s)
	}
	if err := validDomain(host); err != nil {
		return parsed{}, fmt.Errorf("%w: %q: %w", ErrInvalidURI, s, err)
	}
	if strings.ContainsAny(path, "?#") {
		return parsed{}, fmt.Errorf("%w: %q has a query or fragment", ErrInvalidURI, s)
	}
	parts := strings.Split(path, "/")
	p := parsed{domain: Domain(host), kind: parts[0]}
	for _, raw := range parts[1:] {
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return parsed{}, fmt.Errorf("%w: %q: %w", ErrInvalidURI, s, err)
		}
		if seg == "" {
			return parsed{}, fmt.Errorf("%w: %q has an empty path segment", ErrInvalidURI, s)
		}
		p.segs = append(p.segs, seg)
	}
	return p, nil
}

// validDomain accepts lower-case DNS names and loopback-style host:port authorities used in tests.
func validDomain(h string) error {
	if len(h) > 253 {
		return errors.New("domain too long")
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']') {
			return fmt.Errorf("domain %q: character %q not allowed (domains are lower case)", h, c)
		}
	}
	return nil
}

// ParseUserURI validates s as a user URI.
func ParseUserURI(s string) (UserURI, error) {
	p, err := parseURI(s)
	if err != nil {
		return "", err
	}
	if p.kind != pathUser || len(p.segs) != 1 {
		return "", fmt.Errorf("%w: %q is not of the form mimi://<domain>/u/<user>", ErrInvalidURI, s)
	}
	return UserURI(s), nil
}

// ParseDeviceURI validates s as a device URI (mimi://<domain>/d/<segments...>).
func ParseDeviceURI(s string) (DeviceURI, error) {
	p, err := parseURI(s)
	if err != nil {
		return "", err
	}
	if p.kind != pathDevice || len(p.segs) == 0 {
		return "", fmt.Errorf("%w: %q is not of the form mimi://<domain>/d/<client>", ErrInvalidURI, s)
	}
	return DeviceURI(s), nil
}

// ParseRoomURI validates s as a room URI.
func ParseRoomURI(s string) (RoomURI, error) {
	p, err := parseURI(s)
	if err != nil {
		return "", err
	}
	if p.kind != pathRoom || len(p.segs) != 1 {
		return "", fmt.Errorf("%w: %q is not of the form mimi://<domain>/r/<room>", ErrInvalidURI, s)
	}
	return RoomURI(s), nil
}

// Domain returns the provider domain of the user.
func (u UserURI) Domain() Domain { p, _ := parseURI(string(u)); return p.domain }

// Local returns the unescaped user part of the URI.
func (u UserURI) Local() string {
	p, _ := parseURI(string(u))
	if len(p.segs) == 0 {
		return ""
	}
	return p.segs[0]
}

// Domain returns the hub domain of the room.
func (r RoomURI) Domain() Domain { p, _ := parseURI(string(r)); return p.domain }

// Local returns the unescaped room part of the URI.
func (r RoomURI) Local() string {
	p, _ := parseURI(string(r))
	if len(p.segs) == 0 {
		return ""
	}
	return p.segs[0]
}

// Domain returns the provider domain of the device.
func (d DeviceURI) Domain() Domain { p, _ := parseURI(string(d)); return p.domain }

// Token returns the room's bus subject token: the first 20 bytes of SHA-256 over the URI, in
// lower-case unpadded base32 (32 characters). Subjects never carry raw IDs, which may contain dots.
func (r RoomURI) Token() string {
	sum := sha256.Sum256([]byte(r))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}

// NativeRoomID is a room's ID on a legacy network (a Matrix room ID, a MUC bare JID).
type NativeRoomID string

// NativeEventID is a message or event ID on a legacy network (a Matrix event ID, an XMPP stanza or
// stanza-id).
type NativeEventID string

// NativeUserID is a user's ID on a legacy network (a Matrix user ID, a bare JID).
type NativeUserID string
