package room

import (
	"fmt"
	"net/url"
	"slices"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// RichDescription is one description of a room: content of a media type (empty:
// text/plain;charset=utf-8) in a language (empty: unspecified).
type RichDescription struct {
	MediaType string
	Language  string
	Content   []byte
}

// Metadata is RoomMetaData, the value of the room_metadata component (protocol-06 §7.5). An
// update replaces the whole value. Empty strings are absent values.
type Metadata struct {
	// RoomURI is room_uri (a mimi room URI, or empty).
	RoomURI event.RoomURI
	// Name is room_name.
	Name string
	// Descriptions are room_descriptions.
	Descriptions []RichDescription
	// Avatar is room_avatar, an https URI or empty.
	Avatar string
	// Subject is room_subject (our adapters' "topic", docs/interop.md P17).
	Subject string
	// Mood is room_mood.
	Mood string
}

// Encode returns the TLS-PL encoding of RoomMetaData.
func (m *Metadata) Encode() ([]byte, error) {
	var w tlspl.Writer
	w.Opaque([]byte(m.RoomURI))
	w.Opaque([]byte(m.Name))
	w.Vector(func(w *tlspl.Writer) {
		for _, d := range m.Descriptions {
			w.Opaque([]byte(d.MediaType))
			w.Opaque([]byte(d.Language))
			w.Opaque(d.Content)
		}
	})
	w.Opaque([]byte(m.Avatar))
	w.Opaque([]byte(m.Subject))
	w.Opaque([]byte(m.Mood))
	return w.Bytes()
}

func readText(r *tlspl.Reader, what string, limit int) string {
	b := r.Opaque()
	if r.Err() != nil {
		return ""
	}
	if len(b) > limit {
		r.SetError(fmt.Errorf("%s of %d bytes (limit %d)", what, len(b), limit))
		return ""
	}
	if !utf8.Valid(b) {
		r.SetError(fmt.Errorf("%s is not UTF-8", what))
		return ""
	}
	return string(b)
}

// DecodeMetadata decodes and validates RoomMetaData: UTF-8 text within the limits, a valid room
// URI (or none), an https avatar URI (or none).
func DecodeMetadata(b []byte) (*Metadata, error) {
	r := tlspl.NewReader(b)
	m := &Metadata{}
	m.RoomURI = event.RoomURI(readText(r, "room URI", MaxURI))
	m.Name = readText(r, "room name", MaxText)
	r.ForEach(func(r *tlspl.Reader) {
		if len(m.Descriptions) >= MaxDescriptions {
			r.SetError(fmt.Errorf("more than %d descriptions", MaxDescriptions))
			return
		}
		d := RichDescription{MediaType: readText(r, "media type", MaxToken), Language: readText(r, "language tag", MaxToken)}
		d.Content = slices.Clone(r.Opaque())
		if len(d.Content) > MaxDescription {
			r.SetError(fmt.Errorf("description of %d bytes", len(d.Content)))
		}
		m.Descriptions = append(m.Descriptions, d)
	})
	m.Avatar = readText(r, "avatar URI", MaxURI)
	m.Subject = readText(r, "room subject", MaxText)
	m.Mood = readText(r, "room mood", MaxText)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: room metadata: %w", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Validate checks the URIs: room_uri a mimi room URI in canonical form, room_avatar an absolute
// https URI (protocol-06 §7.5), each when present.
func (m *Metadata) Validate() error {
	if m.RoomURI != "" {
		u, err := event.ParseRoomURI(string(m.RoomURI))
		if err != nil || u != m.RoomURI {
			return fmt.Errorf("%w: room metadata: room URI %q: %v", ErrInvalid, m.RoomURI, err)
		}
	}
	if m.Avatar != "" {
		u, err := url.Parse(m.Avatar)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("%w: room metadata: avatar %q is not an https URI", ErrInvalid, m.Avatar)
		}
	}
	return nil
}

// Equal reports whether m and o are the same metadata.
func (m *Metadata) Equal(o *Metadata) bool {
	return m.RoomURI == o.RoomURI && m.Name == o.Name && m.Avatar == o.Avatar && m.Subject == o.Subject &&
		m.Mood == o.Mood && descriptionsEqual(m.Descriptions, o.Descriptions)
}

func descriptionsEqual(a, b []RichDescription) bool {
	return slices.EqualFunc(a, b, func(x, y RichDescription) bool {
		return x.MediaType == y.MediaType && x.Language == y.Language && string(x.Content) == string(y.Content)
	})
}
