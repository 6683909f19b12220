// Package mxevent reads Matrix events (client-server JSON, as in appservice transactions and sync
// timelines) into Parsed, bounded and checked, without touching the network or the store: the
// Matrix adapter's wire format, apart from its bridge logic (bridges/matrix).
package mxevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Limits on incoming Matrix events. The Matrix spec caps a PDU at 65536 bytes; transactions and
// sync responses are bounded separately.
const (
	// MaxEventSize bounds one event's JSON.
	MaxEventSize = 64 << 10
	// MaxBodySize bounds a message's body and formatted_body (each).
	MaxBodySize = 60 << 10
	// MaxMentions bounds m.mentions.user_ids.
	MaxMentions = 256
	// MaxReactionKeySize bounds a reaction key.
	MaxReactionKeySize = 256
	// MaxPowerUsers bounds the users map of an m.room.power_levels event.
	MaxPowerUsers = 1024
	// MaxIDLength bounds every Matrix identifier (the spec allows 255 bytes for user and room
	// IDs; event IDs are shorter).
	MaxIDLength = 255
)

// ErrMalformed is returned (wrapped) for an event that cannot be mapped; the adapter logs it and
// skips the event.
var ErrMalformed = errors.New("matrix: malformed event")

// ErrIgnored is returned (wrapped) for a well-formed event the adapter does not relay (typing,
// unknown types, state it does not mirror).
var ErrIgnored = errors.New("matrix: event not relayed")

// Parsed is a Matrix event reduced to what the MIMI mapping needs. Parse fills it from raw JSON
// without touching the network or the store.
type Parsed struct {
	Kind      event.Kind
	Type      mevent.Type
	Room      id.RoomID
	ID        id.EventID
	Sender    id.UserID
	Timestamp time.Time

	// Message fields (KindMessage, KindEdit): MsgType is m.text, m.notice, m.emote, m.image,
	// m.file, m.audio or m.video.
	MsgType mevent.MessageType
	Body    string
	HTML    string // formatted_body when format is org.matrix.custom.html, unsanitised
	// ReplyTo is the event a message replies to (m.in_reply_to).
	ReplyTo id.EventID
	// Target is the event an edit replaces, a redaction redacts, or a reaction annotates.
	Target id.EventID
	// ReactionKey is the annotation key of a reaction.
	ReactionKey string
	// Mentions are the users in m.mentions.
	Mentions []id.UserID
	// Media describes an attachment.
	Media *Media
	// Membership and MemberTarget are set for m.room.member (KindMembership).
	Membership   mevent.Membership
	MemberTarget id.UserID
	// Encrypted is set for m.room.encrypted events, which must be decrypted first.
	Encrypted bool
	// Event is the parsed mautrix event (content parsed).
	Event *mevent.Event
}

// Media is an attachment referenced by a Matrix media message.
type Media struct {
	URL      id.ContentURI
	File     *mevent.EncryptedFileInfo // set when the file is encrypted
	MimeType string
	Name     string
	Size     int64
}

// Parse decodes one Matrix event (client-server format, as in appservice transactions and
// sync timelines) and checks its fields. It never panics; malformed input gives an error wrapping
// ErrMalformed, events the adapter does not relay give ErrIgnored.
func Parse(raw []byte) (*Parsed, error) {
	if len(raw) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(raw), MaxEventSize)
	}
	var evt mevent.Event
	if err := json.Unmarshal(raw, &evt); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return FromEvent(&evt)
}

// FromEvent checks an already decoded event (from the sync loop or after decryption).
func FromEvent(evt *mevent.Event) (p *Parsed, err error) {
	defer func() {
		// mautrix's content accessors panic on a content of the wrong Go type; a malformed
		// event must never take the adapter down.
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: %v", ErrMalformed, r)
		}
	}()
	if err := CheckID("event_id", string(evt.ID), '$'); err != nil {
		return nil, err
	}
	if err := CheckID("room_id", string(evt.RoomID), '!'); err != nil {
		return nil, err
	}
	if err := CheckID("sender", string(evt.Sender), '@'); err != nil {
		return nil, err
	}
	if evt.Type.Type == "" || len(evt.Type.Type) > 255 {
		return nil, fmt.Errorf("%w: missing or oversized type", ErrMalformed)
	}
	p = &Parsed{Type: evt.Type, Room: evt.RoomID, ID: evt.ID, Sender: evt.Sender, Event: evt,
		Timestamp: time.UnixMilli(evt.Timestamp).UTC()}
	if evt.Timestamp <= 0 {
		p.Timestamp = time.Now().UTC()
	}
	if evt.StateKey != nil {
		evt.Type.Class = mevent.StateEventType
	} else {
		evt.Type.Class = mevent.MessageEventType
	}
	p.Type = evt.Type
	switch evt.Type {
	case mevent.EventMessage, mevent.EventSticker, mevent.EventReaction, mevent.EventRedaction, mevent.EventEncrypted, mevent.StateMember,
		mevent.StatePowerLevels:
	default:
		return nil, fmt.Errorf("%w: type %s", ErrIgnored, evt.Type.Type)
	}
	if len(evt.Content.VeryRaw) == 0 {
		return nil, fmt.Errorf("%w: no content", ErrMalformed)
	}
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, mevent.ErrContentAlreadyParsed) {
		return nil, fmt.Errorf("%w: content of %s: %v", ErrMalformed, evt.Type.Type, err)
	}
	switch evt.Type {
	case mevent.EventEncrypted:
		c := evt.Content.AsEncrypted()
		if c.Algorithm == "" || c.SessionID == "" {
			return nil, fmt.Errorf("%w: encrypted event without algorithm or session", ErrMalformed)
		}
		p.Encrypted = true
		p.Kind = event.KindMessage
		return p, nil
	case mevent.EventRedaction:
		c := evt.Content.AsRedaction()
		target := c.Redacts
		if target == "" {
			target = evt.Redacts
		}
		if err := CheckID("redacts", string(target), '$'); err != nil {
			return nil, err
		}
		p.Kind, p.Target = event.KindDelete, target
		return p, nil
	case mevent.EventReaction:
		c := evt.Content.AsReaction()
		if c.RelatesTo.Type != mevent.RelAnnotation {
			return nil, fmt.Errorf("%w: reaction without m.annotation relation", ErrMalformed)
		}
		if err := CheckID("m.relates_to.event_id", string(c.RelatesTo.EventID), '$'); err != nil {
			return nil, err
		}
		if c.RelatesTo.Key == "" || len(c.RelatesTo.Key) > MaxReactionKeySize || !utf8.ValidString(c.RelatesTo.Key) {
			return nil, fmt.Errorf("%w: reaction key empty, oversized or not UTF-8", ErrMalformed)
		}
		p.Kind, p.Target, p.ReactionKey = event.KindReaction, c.RelatesTo.EventID, c.RelatesTo.Key
		return p, nil
	case mevent.StatePowerLevels:
		if evt.GetStateKey() != "" {
			return nil, fmt.Errorf("%w: power levels with state key %q", ErrIgnored, evt.GetStateKey())
		}
		if n := len(evt.Content.AsPowerLevels().Users); n > MaxPowerUsers {
			return nil, fmt.Errorf("%w: power levels for %d users exceed %d", ErrMalformed, n, MaxPowerUsers)
		}
		p.Kind = event.KindMembership
		return p, nil
	case mevent.StateMember:
		c := evt.Content.AsMember()
		if err := CheckID("state_key", evt.GetStateKey(), '@'); err != nil {
			return nil, err
		}
		p.Kind, p.Membership, p.MemberTarget = event.KindMembership, c.Membership, id.UserID(evt.GetStateKey())
		switch c.Membership {
		case mevent.MembershipInvite, mevent.MembershipJoin, mevent.MembershipLeave, mevent.MembershipBan:
		default:
			return nil, fmt.Errorf("%w: membership %q", ErrIgnored, c.Membership)
		}
		return p, nil
	}
	// m.room.message and m.sticker
	c := evt.Content.AsMessage()
	if c.RelatesTo != nil && c.RelatesTo.Type == mevent.RelReplace {
		if err := CheckID("m.relates_to.event_id", string(c.RelatesTo.EventID), '$'); err != nil {
			return nil, err
		}
		if c.NewContent == nil {
			return nil, fmt.Errorf("%w: edit without m.new_content", ErrMalformed)
		}
		p.Kind, p.Target = event.KindEdit, c.RelatesTo.EventID
		c = c.NewContent
	} else {
		p.Kind = event.KindMessage
		if c.RelatesTo != nil && c.RelatesTo.InReplyTo != nil && c.RelatesTo.InReplyTo.EventID != "" {
			if err := CheckID("m.in_reply_to.event_id", string(c.RelatesTo.InReplyTo.EventID), '$'); err != nil {
				return nil, err
			}
			p.ReplyTo = c.RelatesTo.InReplyTo.EventID
		}
	}
	if evt.Type == mevent.EventSticker {
		c.MsgType = mevent.MsgImage
	}
	p.MsgType = c.MsgType
	if len(c.Body) > MaxBodySize || len(c.FormattedBody) > MaxBodySize {
		return nil, fmt.Errorf("%w: body of %d / formatted_body of %d bytes exceeds %d", ErrMalformed, len(c.Body), len(c.FormattedBody), MaxBodySize)
	}
	if !utf8.ValidString(c.Body) || !utf8.ValidString(c.FormattedBody) {
		return nil, fmt.Errorf("%w: body is not UTF-8", ErrMalformed)
	}
	p.Body = c.Body
	if c.Format == mevent.FormatHTML {
		p.HTML = c.FormattedBody
	}
	if c.Mentions != nil {
		if len(c.Mentions.UserIDs) > MaxMentions {
			return nil, fmt.Errorf("%w: %d mentions exceed %d", ErrMalformed, len(c.Mentions.UserIDs), MaxMentions)
		}
		for _, u := range c.Mentions.UserIDs {
			if CheckID("m.mentions.user_ids", string(u), '@') == nil {
				p.Mentions = append(p.Mentions, u)
			}
		}
	}
	switch c.MsgType {
	case mevent.MsgText, mevent.MsgNotice, mevent.MsgEmote:
		if p.Body == "" && p.HTML == "" {
			return nil, fmt.Errorf("%w: text message without body", ErrMalformed)
		}
	case mevent.MsgImage, mevent.MsgFile, mevent.MsgAudio, mevent.MsgVideo:
		m := &Media{}
		if c.File != nil {
			u, err := c.File.URL.Parse()
			if err != nil {
				return nil, fmt.Errorf("%w: file.url: %v", ErrMalformed, err)
			}
			if c.File.Key.Algorithm != "A256CTR" || c.File.InitVector == "" || c.File.Hashes.SHA256 == "" {
				return nil, fmt.Errorf("%w: encrypted file without A256CTR key, iv or sha256", ErrMalformed)
			}
			m.URL, m.File = u, c.File
		} else {
			u, err := c.URL.Parse()
			if err != nil {
				return nil, fmt.Errorf("%w: url: %v", ErrMalformed, err)
			}
			m.URL = u
		}
		if c.Info != nil {
			m.MimeType, m.Size = c.Info.MimeType, int64(c.Info.Size)
		}
		if len(m.MimeType) > 255 || strings.ContainsAny(m.MimeType, "\r\n") {
			m.MimeType = ""
		}
		m.Name = c.FileName
		if m.Name == "" {
			m.Name = c.Body
		}
		if len(m.Name) > 255 {
			m.Name = m.Name[:255]
		}
		if !utf8.ValidString(m.Name) {
			m.Name = "file"
		}
		p.Media = m
		if c.FileName == "" || c.FileName == c.Body {
			p.Body = "" // the body is just the file name, not a caption
		}
	case "":
		return nil, fmt.Errorf("%w: message without msgtype", ErrMalformed)
	default:
		return nil, fmt.Errorf("%w: msgtype %s", ErrIgnored, c.MsgType)
	}
	return p, nil
}

// CheckID checks a Matrix identifier of a field: not empty, bounded, starting with sigil.
func CheckID(field, v string, sigil byte) error {
	if v == "" {
		return fmt.Errorf("%w: missing %s", ErrMalformed, field)
	}
	if len(v) > MaxIDLength || v[0] != sigil || !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n ") {
		return fmt.Errorf("%w: invalid %s %q", ErrMalformed, field, Truncate(v, 64))
	}
	if sigil != '$' && !strings.Contains(v, ":") {
		return fmt.Errorf("%w: %s %q has no server name", ErrMalformed, field, Truncate(v, 64))
	}
	return nil
}

// Truncate shortens s to n bytes for a log line or error, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// maxReasonLength bounds the reason of a membership change that is relayed.
const maxReasonLength = 1024

// MembershipAction is the MIMI membership action of an m.room.member event: a leave of someone
// else is a kick.
func (p *Parsed) MembershipAction() event.MembershipAction {
	switch p.Membership {
	case mevent.MembershipInvite:
		return event.MembershipInvite
	case mevent.MembershipJoin:
		return event.MembershipJoin
	case mevent.MembershipLeave:
		if p.Sender != p.MemberTarget {
			return event.MembershipKick
		}
		return event.MembershipLeave
	case mevent.MembershipBan:
		return event.MembershipBan
	}
	return event.MembershipUnknown
}

// MembershipReason is the reason of an m.room.member event, at most maxReasonLength bytes.
func (p *Parsed) MembershipReason() string {
	reason := p.Event.Content.AsMember().Reason
	if len(reason) > maxReasonLength {
		reason = reason[:maxReasonLength]
	}
	return reason
}

// MaxReceipts bounds the (event, user) pairs of one m.receipt event that are read.
const MaxReceipts = 256

// Receipt is a read receipt: User has read up to Event.
type Receipt struct {
	Event id.EventID
	User  id.UserID
	At    time.Time
}

// ReadReceipts returns the read receipts (m.read; m.read.private is never shared) of an m.receipt
// event: of its first MaxReceipts (event, user) pairs, those that name a valid event ID.
func ReadReceipts(evt *mevent.Event) ([]Receipt, error) {
	if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, mevent.ErrContentAlreadyParsed) {
		return nil, fmt.Errorf("%w: receipt content: %v", ErrMalformed, err)
	}
	rc, ok := evt.Content.Parsed.(*mevent.ReceiptEventContent)
	if !ok {
		return nil, nil
	}
	var out []Receipt
	n := 0
	for evID, types := range *rc {
		for user, r := range types[mevent.ReceiptTypeRead] {
			if n++; n > MaxReceipts {
				return out, nil
			}
			if CheckID("receipt event", string(evID), '$') == nil {
				out = append(out, Receipt{Event: evID, User: user, At: r.Timestamp})
			}
		}
	}
	return out, nil
}
