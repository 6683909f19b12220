// Package event defines what travels on the gateway's bus: the canonical Envelope and the typed
// identifiers (MIMI URIs and native IDs) that keep Matrix, XMPP and MIMI names from being mixed.
//
// An adapter turns a native event into an Envelope whose Content is MIMI content (CBOR, see
// core/content) and publishes it; the MIMI endpoint consumes it, and the reverse direction uses the
// same type. The encoding is versioned (see Marshal) and documented in docs/architecture.md.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Version is the envelope encoding version written by this code. Decoders accept this version and
// reject others with ErrVersion.
const Version = 1

// MaxEnvelopeSize bounds an encoded envelope (content included).
const MaxEnvelopeSize = 1 << 20

// Errors returned by Unmarshal and Validate.
var (
	ErrVersion  = errors.New("event: unsupported envelope version")
	ErrTooLarge = errors.New("event: envelope too large")
	ErrInvalid  = errors.New("event: invalid envelope")
)

// Kind says what an envelope carries.
type Kind uint8

// Kinds of envelope. Message-like kinds carry MIMI content; membership and metadata kinds carry the
// fields of Membership or Metadata; control kinds ask a component to act.
const (
	KindUnknown       Kind = iota
	KindMessage            // a new message (text, media, reply: all MIMI content)
	KindEdit               // MIMI content that replaces an earlier message
	KindDelete             // MIMI content that deletes (retracts) an earlier message
	KindReaction           // MIMI content with a reaction (or an unreact)
	KindReceipt            // a message status report (delivered, read, ...)
	KindMembership         // a join, leave, invite, kick or ban; see Membership
	KindRoomMetadata       // room name or topic changed; see Metadata
	KindPortalRequest      // control: the provider asks an adapter to create a portal for a room
	KindNotice             // control: tell a local user that something they caused failed; see Notice
	kindEnd
)

var kindNames = [...]string{"unknown", "message", "edit", "delete", "reaction", "receipt", "membership", "room_metadata", "portal_request", "notice"}

// String returns the kind's name as used in logs and metrics.
func (k Kind) String() string {
	if k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// HasContent reports whether envelopes of this kind carry MIMI content.
func (k Kind) HasContent() bool {
	return k >= KindMessage && k <= KindReceipt
}

// EventID identifies an event across the gateway: deterministic, so that a redelivered native event
// gets the same ID and is deduplicated on the bus (Nats-Msg-Id) and in the store.
type EventID string

// NewEventID derives the event ID of a native event: "<network>:" followed by the hex SHA-256 of the
// network, native room and native event ID (truncated to 128 bits). The room is included because
// some networks (XMPP) do not guarantee globally unique stanza IDs.
func NewEventID(n Network, room NativeRoomID, ev NativeEventID) EventID {
	h := sha256.New()
	for _, s := range []string{string(n), string(room), string(ev)} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return EventID(string(n) + ":" + hex.EncodeToString(h.Sum(nil)[:16]))
}

// Origin says where an event came from on a legacy network, or on the MIMI side.
type Origin struct {
	Network Network       `cbor:"1,keyasint"`
	Room    NativeRoomID  `cbor:"2,keyasint,omitempty"`
	Event   NativeEventID `cbor:"3,keyasint,omitempty"`
	Sender  NativeUserID  `cbor:"4,keyasint,omitempty"`
}

// MembershipAction is the change a membership envelope reports.
type MembershipAction uint8

// Membership actions.
const (
	MembershipUnknown MembershipAction = iota
	MembershipInvite
	MembershipJoin
	MembershipLeave
	MembershipKick
	MembershipBan
	// MembershipRole asks for Target's role in the room to become Membership.Role.
	MembershipRole
)

// Membership is the payload of a KindMembership envelope: Sender acted on Target.
type Membership struct {
	Action MembershipAction `cbor:"1,keyasint"`
	Target UserURI          `cbor:"2,keyasint"`
	Reason string           `cbor:"3,keyasint,omitempty"`
	// Role is the room-policy role index (draft-ietf-mimi-room-policy-03) Target gets, for
	// MembershipRole; see core/room for the roles of rooms the gateway creates.
	Role Role `cbor:"4,keyasint,omitempty"`
	// Direct marks a 1:1 conversation: on an invite from an adapter, the inviter starts a 1:1
	// with Target (Matrix is_direct, an XMPP chat), and the provider marks the room so
	// (core/room base_room_policy fixed_membership); on a portal request, the room is such a
	// 1:1 and Sender is the peer.
	Direct bool `cbor:"5,keyasint,omitempty"`
}

// Role is a role_index of draft-ietf-mimi-room-policy-03 §4.1: a participant's role in a room.
type Role uint32

// Role indexes with a meaning in the draft, and those of the default role set of the rooms the
// gateway creates (core/room.DefaultRoles).
const (
	// RoleNone (0) is "not in the participant list"; its capabilities are what outsiders can do.
	RoleNone Role = 0
	// RoleBanned (1, named "banned") is the ban role of canBan and canUnBan.
	RoleBanned Role = 1
	// RoleRegular, RoleAdmin and RoleOwner are the default role set's participants.
	RoleRegular Role = 2
	RoleAdmin   Role = 3
	RoleOwner   Role = 4
)

// Metadata is the payload of a KindRoomMetadata envelope. Empty fields are unchanged.
type Metadata struct {
	Name  string `cbor:"1,keyasint,omitempty"`
	Topic string `cbor:"2,keyasint,omitempty"`
}

// NoticeCode says, in a stable and language-neutral way, what a Notice reports. Adapters word it for
// people (in the user's language); logs and metrics use String. Codes are never renumbered.
type NoticeCode uint8

// Notice codes.
const (
	NoticeUnknown NoticeCode = iota
	// NoticeInviteFailed: Target could not be added to the room (Reason says why in a word:
	// "userUnknown", "noConsent", "notAllowed", ...). The adapter also undoes what it showed (the
	// ghost leaves, the puppet is marked).
	NoticeInviteFailed
	// NoticeRefused: the event Event (a message, edit, reaction, ...) was refused by the room's hub
	// or its policy and will not be delivered.
	NoticeRefused
	// NoticeUndelivered: the event Event could not be delivered and the gateway has stopped trying.
	NoticeUndelivered
	// NoticePartnerUnreachable: Partner has not answered for a while; messages to it are kept and
	// will be delivered when it is back.
	NoticePartnerUnreachable
	// NoticePartnerReachable: Partner answers again after a NoticePartnerUnreachable.
	NoticePartnerReachable
	// NoticeRoomFailed: the room could not be created or joined on the MIMI side.
	NoticeRoomFailed
	// NoticeConsentPending: Target, a partner's user, has not accepted the Sender yet; the
	// invite waits, a request for consent was sent, and the invite goes on when she accepts.
	// (A user who does not exist or reaches nobody outside gets the same notice.)
	NoticeConsentPending
	// NoticeConsentRequest: Target, a partner's user, asks the Sender (a local user) to accept
	// her; the adapter says how to answer (the consent commands).
	NoticeConsentRequest
	// NoticeConsentGranted: Target, a partner's user, accepted the Sender; a waiting invite goes on.
	NoticeConsentGranted
	noticeEnd
)

var noticeNames = [...]string{"unknown", "invite_failed", "refused", "undelivered", "partner_unreachable", "partner_reachable", "room_failed",
	"consent_pending", "consent_request", "consent_granted"}

// String returns the code's name as used in logs and metrics.
func (c NoticeCode) String() string {
	if c < noticeEnd {
		return noticeNames[c]
	}
	return fmt.Sprintf("notice(%d)", uint8(c))
}

// Notice is the payload of a KindNotice envelope: something the envelope's Sender (a local user)
// caused failed, and that user should be told, in words, in their app. The envelope's Room is the
// room it happened in and Origin the native room (when known) where the notice is shown.
type Notice struct {
	Code NoticeCode `cbor:"1,keyasint"`
	// Correlation is shown to the user and logged with the technical detail, so that an admin can
	// find the log lines of a failure a user reports.
	Correlation string `cbor:"2,keyasint"`
	// Target is the user the failed action was about (the invitee), if any.
	Target UserURI `cbor:"3,keyasint,omitempty"`
	// Event is the envelope that failed, if any; Native its native event ID, so the adapter can
	// attach the notice to the user's own message.
	Event  EventID       `cbor:"4,keyasint,omitempty"`
	Native NativeEventID `cbor:"5,keyasint,omitempty"`
	// Partner is the provider domain involved, if any.
	Partner Domain `cbor:"6,keyasint,omitempty"`
	// Reason is a short machine-readable reason (a MIMI response code name such as "userUnknown",
	// "notAllowed", "noConsent", or "unreachable"); never user content, never a secret.
	Reason string `cbor:"7,keyasint,omitempty"`
}

// Envelope is the canonical event on the bus.
type Envelope struct {
	// Version is the encoding version; Marshal sets it.
	Version int `cbor:"0,keyasint"`
	// ID is the deterministic event ID, also used as Nats-Msg-Id.
	ID EventID `cbor:"1,keyasint"`
	// Kind says what the envelope carries.
	Kind Kind `cbor:"2,keyasint"`
	// Room is the MIMI room.
	Room RoomURI `cbor:"3,keyasint"`
	// Sender is the MIMI user who caused the event.
	Sender UserURI `cbor:"4,keyasint"`
	// Content is MIMI content (application/mimi-content, CBOR) for kinds that carry it.
	Content []byte `cbor:"5,keyasint,omitempty"`
	// Origin names the native network, room, event and sender.
	Origin Origin `cbor:"6,keyasint"`
	// Timestamp is when the event happened at its origin.
	Timestamp time.Time `cbor:"7,keyasint"`
	// Membership is set for KindMembership.
	Membership *Membership `cbor:"8,keyasint,omitempty"`
	// Metadata is set for KindRoomMetadata.
	Metadata *Metadata `cbor:"9,keyasint,omitempty"`
	// MessageID is the MIMI message ID of Content (computed by core/content), when known.
	MessageID []byte `cbor:"10,keyasint,omitempty"`
	// Notice is set for KindNotice.
	Notice *Notice `cbor:"11,keyasint,omitempty"`
}

var (
	encMode   cbor.EncMode
	decMode   cbor.DecMode
	probeMode cbor.DecMode // reads only the version, ignoring other keys
)

func init() {
	var err error
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	if encMode, err = eo.EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{
		MaxNestedLevels:   16,
		MaxArrayElements:  1024,
		MaxMapPairs:       64,
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		UTF8:              cbor.UTF8RejectInvalid,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}).DecMode(); err != nil {
		panic(err)
	}
	if probeMode, err = (cbor.DecOptions{MaxNestedLevels: 16, IndefLength: cbor.IndefLengthForbidden}).DecMode(); err != nil {
		panic(err)
	}
}

// Validate checks the envelope's invariants: an ID, a known kind, a valid room and sender URI, an
// origin network, content present for content kinds, and the payload that the kind requires.
func (e *Envelope) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: empty ID", ErrInvalid)
	case e.Kind == KindUnknown || e.Kind >= kindEnd:
		return fmt.Errorf("%w: kind %s", ErrInvalid, e.Kind)
	case !e.Origin.Network.Valid():
		return fmt.Errorf("%w: origin network %q", ErrInvalid, e.Origin.Network)
	}
	if _, err := ParseRoomURI(string(e.Room)); err != nil {
		return fmt.Errorf("%w: room: %w", ErrInvalid, err)
	}
	if _, err := ParseUserURI(string(e.Sender)); err != nil {
		return fmt.Errorf("%w: sender: %w", ErrInvalid, err)
	}
	if e.Kind.HasContent() && len(e.Content) == 0 {
		return fmt.Errorf("%w: %s without content", ErrInvalid, e.Kind)
	}
	if e.Kind == KindMembership {
		if e.Membership == nil {
			return fmt.Errorf("%w: membership envelope without membership", ErrInvalid)
		}
		if _, err := ParseUserURI(string(e.Membership.Target)); err != nil {
			return fmt.Errorf("%w: membership target: %w", ErrInvalid, err)
		}
	}
	if e.Kind == KindRoomMetadata && e.Metadata == nil {
		return fmt.Errorf("%w: room metadata envelope without metadata", ErrInvalid)
	}
	if e.Kind == KindNotice {
		switch {
		case e.Notice == nil:
			return fmt.Errorf("%w: notice envelope without notice", ErrInvalid)
		case e.Notice.Code == NoticeUnknown || e.Notice.Code >= noticeEnd:
			return fmt.Errorf("%w: notice code %s", ErrInvalid, e.Notice.Code)
		case e.Notice.Correlation == "":
			return fmt.Errorf("%w: notice without correlation ID", ErrInvalid)
		}
		if e.Notice.Target != "" {
			if _, err := ParseUserURI(string(e.Notice.Target)); err != nil {
				return fmt.Errorf("%w: notice target: %w", ErrInvalid, err)
			}
		}
	}
	return nil
}

// Marshal validates e and encodes it as deterministic CBOR (a map with integer keys; key 0 is the
// version). The encoding is documented in docs/architecture.md.
func Marshal(e *Envelope) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	c := *e
	c.Version = Version
	b, err := encMode.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("event: encode %s: %w", e.ID, err)
	}
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	return b, nil
}

// Unmarshal decodes and validates an envelope. Unknown keys, other versions, oversized input and
// invalid fields are errors.
func Unmarshal(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	var probe struct {
		Version int `cbor:"0,keyasint"`
	}
	if err := probeMode.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if probe.Version != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, probe.Version)
	}
	var e Envelope
	if err := decMode.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}
