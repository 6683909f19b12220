package content

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/content/gfm"
)

// Builder makes the messages one sender sends into one room. Every message
// gets a fresh 16-octet salt (content-08 §9.2) and extensions 1 and 2, so its
// ID can always be computed. The zero Rand and Now are fine for production;
// tests inject them.
//
//	b := &content.Builder{SenderURI: "mimi://klinik-a.example/u/alice", RoomURI: room}
//	msg, err := b.Markdown("**Befund** liegt vor", content.InReplyTo(prev))
//	data, id, err := msg.EncodeWithID(content.DefaultIDVersion)
type Builder struct {
	// SenderURI is the sender's MIMI user URI (extension 1).
	SenderURI string
	// RoomURI is the MIMI room URI (extension 2).
	RoomURI string
	// Rand supplies salts and attachment keys; nil means crypto/rand.
	Rand io.Reader
	// Now, if set, stamps each message with the sender timestamp
	// (extension 3); nil leaves it out.
	Now func() time.Time
}

// Option changes a message while it is built.
type Option func(*Message) error

// InReplyTo makes the message a reply to the given version of a message.
func InReplyTo(id MessageID) Option {
	return func(m *Message) error { m.InReplyTo = &id; return nil }
}

// Topic puts the message into a topic or thread.
func Topic(topicID []byte) Option {
	return func(m *Message) error {
		if len(topicID) > MaxTopicIDSize {
			return verr("topicId", -1, ErrTooLarge, "topicId longer than %d octets", MaxTopicIDSize)
		}
		m.TopicID = append([]byte(nil), topicID...)
		return nil
	}
}

// ExpiresAt sets an absolute expiry (whole seconds, UTC).
func ExpiresAt(t time.Time) Option {
	return func(m *Message) error {
		s := t.Unix()
		if s <= 0 || s > 1<<32-1 {
			return verr("expires", -1, ErrSchema, "expiry %s outside the 32-bit seconds range", t.UTC().Format(time.RFC3339))
		}
		m.Expires = &Expiration{Time: uint32(s)}
		return nil
	}
}

// ExpiresAfterRead makes the message disappear d after the recipient reads
// it (relative expiry, whole seconds).
func ExpiresAfterRead(d time.Duration) Option {
	return func(m *Message) error {
		s := int64(d / time.Second)
		if s <= 0 || s > 1<<32-1 {
			return verr("expires", -1, ErrSchema, "relative expiry %v outside 1s..2^32-1s", d)
		}
		m.Expires = &Expiration{Relative: true, Time: uint32(s)}
		return nil
	}
}

// WithExternalID records the native message ID (extension 4), e.g. the
// Matrix event ID with the homeserver's domain as scope.
func WithExternalID(x ExternalID) Option {
	return func(m *Message) error { return m.Extensions.SetExternalMessageID(x) }
}

// WithSubject sets a subject (extension 5).
func WithSubject(s string) Option {
	return func(m *Message) error { return m.Extensions.SetSubject(s) }
}

// WithLanguage sets the language of the body part (RFC 5646 tags, comma
// separated).
func WithLanguage(lang string) Option {
	return func(m *Message) error { m.Body.Language = lang; return nil }
}

func (b *Builder) rand() io.Reader {
	if b.Rand != nil {
		return b.Rand
	}
	return rand.Reader
}

// New builds a message with the given body: fresh salt, sender and room
// URIs, sender timestamp when Now is set, then the options. The result is
// checked to encode.
func (b *Builder) New(body NestedPart, opts ...Option) (*Message, error) {
	if b.SenderURI == "" || b.RoomURI == "" {
		return nil, fmt.Errorf("build message: %w", ErrNoURI)
	}
	m := &Message{Body: body}
	if _, err := io.ReadFull(b.rand(), m.Salt[:]); err != nil {
		return nil, fmt.Errorf("build message: salt: %w", err)
	}
	if err := m.Extensions.SetSenderURI(b.SenderURI); err != nil {
		return nil, err
	}
	if err := m.Extensions.SetRoomURI(b.RoomURI); err != nil {
		return nil, err
	}
	if b.Now != nil {
		if err := m.Extensions.SetSenderTimestamp(b.Now()); err != nil {
			return nil, err
		}
	}
	for _, o := range opts {
		if err := o(m); err != nil {
			return nil, fmt.Errorf("build message: %w", err)
		}
	}
	if _, err := m.Encode(); err != nil {
		return nil, fmt.Errorf("build message: %w", err)
	}
	return m, nil
}

// PlainText is a SinglePart of UTF-8 plain text to render.
func PlainText(s string) NestedPart {
	return NestedPart{Disposition: DispRender, Body: SinglePart{ContentType: TypePlain, Content: []byte(s)}}
}

// Markdown is a SinglePart of GFM-MIMI. Raw HTML in md is neutralised as
// GFM-MIMI requires ('<' of any HTML tag becomes "&lt;").
func Markdown(md string) NestedPart {
	return NestedPart{Disposition: DispRender, Body: SinglePart{ContentType: TypeGFMMIMI, Content: []byte(gfm.Sanitize(md))}}
}

// HTML is a SinglePart of HTML, cleaned with the Matrix-subset sanitiser.
func HTML(h string) NestedPart {
	return NestedPart{Disposition: DispRender, Body: SinglePart{ContentType: TypeHTML, Content: []byte(gfm.SanitizeHTML(h))}}
}

// Multipart groups two or more parts with the given semantics.
func Multipart(sem PartSemantics, parts ...NestedPart) NestedPart {
	return NestedPart{Disposition: DispRender, Body: MultiPart{Semantics: sem, Parts: parts}}
}

// Text builds a plain-text message.
func (b *Builder) Text(s string, opts ...Option) (*Message, error) {
	return b.New(PlainText(s), opts...)
}

// Markdown builds a GFM-MIMI message.
func (b *Builder) Markdown(md string, opts ...Option) (*Message, error) {
	return b.New(Markdown(md), opts...)
}

// MarkdownWithHTML builds a chooseOne of GFM-MIMI (preferred) and HTML, for
// rich text that markdown cannot carry exactly (e.g. a Matrix
// formatted_body).
func (b *Builder) MarkdownWithHTML(md, html string, opts ...Option) (*Message, error) {
	return b.New(Multipart(ChooseOne, Markdown(md), HTML(html)), opts...)
}

// Reaction builds a reaction to the given version of a message: a plain
// text part with disposition reaction holding the emoji (content-08 §5.3).
func (b *Builder) Reaction(target MessageID, emoji string, opts ...Option) (*Message, error) {
	if emoji == "" {
		return nil, verr("nestedPart.content", -1, ErrSchema, "empty reaction")
	}
	p := PlainText(emoji)
	p.Disposition = DispReaction
	return b.New(p, append([]Option{InReplyTo(target)}, opts...)...)
}

// Unreact withdraws a reaction: it replaces the reaction message with a
// NullPart of disposition reaction, keeping inReplyTo at the reacted-to
// message (content-08 §5.7).
func (b *Builder) Unreact(reaction, target MessageID, opts ...Option) (*Message, error) {
	return b.New(NestedPart{Disposition: DispReaction, Body: NullPart{}},
		append([]Option{replaces(reaction), InReplyTo(target)}, opts...)...)
}

// Edit replaces the body of a message. first is the ID of the message's
// first version, whatever was edited since (content-08 §5.5).
func (b *Builder) Edit(first MessageID, body NestedPart, opts ...Option) (*Message, error) {
	return b.New(body, append([]Option{replaces(first)}, opts...)...)
}

// Delete retracts a message: replaces its first version with a NullPart
// (content-08 §5.6).
func (b *Builder) Delete(first MessageID, opts ...Option) (*Message, error) {
	return b.New(NestedPart{Disposition: DispRender, Body: NullPart{}}, append([]Option{replaces(first)}, opts...)...)
}

// Status builds a message carrying a status report (delivered, read, ...).
func (b *Builder) Status(rep StatusReport, opts ...Option) (*Message, error) {
	data, err := rep.Encode()
	if err != nil {
		return nil, err
	}
	return b.New(NestedPart{Disposition: DispUnspecified, Body: SinglePart{ContentType: StatusMediaType, Content: data}}, opts...)
}

// Attachment builds a message with one uploaded file (see
// EncryptAttachment). disp is usually DispAttachment, or DispInline for
// images shown in the timeline.
func (b *Builder) Attachment(x ExternalPart, disp Disposition, opts ...Option) (*Message, error) {
	if x.URL == "" {
		return nil, verr("nestedPart.url", -1, ErrSchema, "attachment has no URL; upload the ciphertext first")
	}
	return b.New(NestedPart{Disposition: disp, Body: x}, opts...)
}

func replaces(id MessageID) Option {
	return func(m *Message) error { m.Replaces = &id; return nil }
}

// IsDelete reports whether the message retracts the message it replaces.
func (m *Message) IsDelete() bool {
	_, null := m.Body.Body.(NullPart)
	return m.Replaces != nil && null && m.Body.Disposition != DispReaction
}

// IsUnreact reports whether the message withdraws a reaction.
func (m *Message) IsUnreact() bool {
	_, null := m.Body.Body.(NullPart)
	return m.Replaces != nil && null && m.Body.Disposition == DispReaction
}

// IsReaction reports whether the body is a reaction.
func (m *Message) IsReaction() bool {
	_, null := m.Body.Body.(NullPart)
	return m.Body.Disposition == DispReaction && !null
}

// IsEdit reports whether the message replaces another with new content.
func (m *Message) IsEdit() bool {
	_, null := m.Body.Body.(NullPart)
	return m.Replaces != nil && !null && m.Body.Disposition != DispReaction
}

// MentionedURIs returns the mimi: URIs linked from the message's markdown
// and HTML parts, without duplicates, in order. A link to a user with a
// client in the room is a mention (content-08 §5.4); the caller checks
// membership.
func (m *Message) MentionedURIs() []string {
	seen := map[string]bool{}
	var out []string
	for _, ip := range m.Parts() {
		sp, ok := ip.Part.Body.(SinglePart)
		if !ok {
			continue
		}
		var links []string
		switch strings.ToLower(mediaTypeOnly(sp.ContentType)) {
		case "text/markdown":
			links = gfm.Links(string(sp.Content))
		case "text/html":
			links = gfm.HTMLLinks(string(sp.Content))
		}
		for _, l := range links {
			if u, err := url.Parse(l); err == nil && u.Scheme == "mimi" && !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}
