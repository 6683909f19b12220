package content

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// ExtensionKey is a key of the mimiExtensions map: an integer or a text
// string of 1..255 octets (content-08 §4.3, §6).
type ExtensionKey struct {
	num    int64
	text   string
	isText bool
}

// IntKey returns an integer extension key.
func IntKey(n int64) ExtensionKey { return ExtensionKey{num: n} }

// TextKey returns a text extension key.
func TextKey(s string) ExtensionKey { return ExtensionKey{text: s, isText: true} }

// Int returns the key's integer value, if it is an integer key.
func (k ExtensionKey) Int() (int64, bool) { return k.num, !k.isText }

// Text returns the key's text, if it is a text key.
func (k ExtensionKey) Text() (string, bool) { return k.text, k.isText }

// String formats the key as in CBOR diagnostic notation.
func (k ExtensionKey) String() string {
	if k.isText {
		return strconv.Quote(k.text)
	}
	return strconv.FormatInt(k.num, 10)
}

// Extension keys with a defined meaning. 1 and 2 are from content-08; 3, 4,
// 5 and 256 are the values suggested by draft-mimi-content-more-extensions-00
// and may change when IANA assigns them: they are defined here only.
var (
	KeySenderURI         = IntKey(1)
	KeyRoomURI           = IntKey(2)
	KeySenderTimestamp   = IntKey(3)
	KeyExternalMessageID = IntKey(4)
	KeySubject           = IntKey(5)
	KeyLastSeen          = IntKey(256)
)

// knownKeyName names the keys with a defined meaning.
func knownKeyName(k ExtensionKey) string {
	switch k {
	case KeySenderURI:
		return "senderUri"
	case KeyRoomURI:
		return "roomUri"
	case KeySenderTimestamp:
		return "senderTimestamp"
	case KeyExternalMessageID:
		return "externalMessageId"
	case KeySubject:
		return "subject"
	case KeyLastSeen:
		return "lastSeen"
	}
	return ""
}

// MaxSubjectSize is the longest subject (extension key 5) allowed.
const MaxSubjectSize = 4096

// Extensions is the mimiExtensions map. Values are kept as their CBOR
// encoding, so unknown extensions pass through byte for byte; the typed
// accessors cover the keys this package knows. The zero value is an empty
// map. Every way in (Decode, SetRaw, the typed setters) validates the key
// and value, so the map is always encodable.
type Extensions struct {
	entries []extEntry // sorted by encoded key
}

type extEntry struct {
	key    ExtensionKey
	encKey []byte
	value  []byte
}

// Len returns the number of entries.
func (e *Extensions) Len() int { return len(e.entries) }

// Keys returns the keys in encoding order.
func (e *Extensions) Keys() []ExtensionKey {
	keys := make([]ExtensionKey, len(e.entries))
	for i, en := range e.entries {
		keys[i] = en.key
	}
	return keys
}

// Raw returns the CBOR encoding of the value under k.
func (e *Extensions) Raw(k ExtensionKey) ([]byte, bool) {
	for _, en := range e.entries {
		if en.key == k {
			return en.value, true
		}
	}
	return nil, false
}

// Delete removes k.
func (e *Extensions) Delete(k ExtensionKey) {
	for i, en := range e.entries {
		if en.key == k {
			e.entries = append(e.entries[:i], e.entries[i+1:]...)
			return
		}
	}
}

// SetRaw stores the CBOR-encoded value raw under k after checking the key
// rules, the deterministic encoding and depth of raw, and, for known keys,
// the value's type.
func (e *Extensions) SetRaw(k ExtensionKey, raw []byte) error {
	encKey, err := encodeExtKey(k)
	if err != nil {
		return err
	}
	field := "mimiExtensions[" + k.String() + "]"
	r := reader{data: raw}
	v, err := r.anyItem(field, 2)
	if err != nil {
		return err
	}
	if r.off != len(raw) {
		return verr(field, r.off, ErrMalformed, "trailing bytes after the value")
	}
	if err := validateKnownExtension(k, v, field, 0); err != nil {
		return err
	}
	e.put(extEntry{key: k, encKey: encKey, value: bytes.Clone(v)})
	return nil
}

func (e *Extensions) put(en extEntry) {
	i := sort.Search(len(e.entries), func(i int) bool { return bytes.Compare(e.entries[i].encKey, en.encKey) >= 0 })
	if i < len(e.entries) && bytes.Equal(e.entries[i].encKey, en.encKey) {
		e.entries[i] = en
		return
	}
	e.entries = append(e.entries, extEntry{})
	copy(e.entries[i+1:], e.entries[i:])
	e.entries[i] = en
}

func (e *Extensions) setValue(k ExtensionKey, v any) error {
	raw, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode extension %s: %w", k, err)
	}
	return e.SetRaw(k, raw)
}

func encodeExtKey(k ExtensionKey) ([]byte, error) {
	field := "mimiExtensions key " + k.String()
	if k.isText {
		if len(k.text) < 1 || len(k.text) > 255 {
			return nil, verr(field, -1, ErrExtensionKey, "text keys must have 1..255 octets (content-08 §4.3)")
		}
		raw, err := encMode.Marshal(k.text)
		if err != nil {
			return nil, fmt.Errorf("encode extension key: %w", err)
		}
		r := reader{data: raw}
		if _, err := r.textItem(field); err != nil {
			return nil, err
		}
		return raw, nil
	}
	if k.num == 0 {
		return nil, verr(field, -1, ErrExtensionKey, "key 0 is reserved (content-08 §8)")
	}
	if k.num > maxSafeInt || k.num < -maxSafeInt {
		return nil, verr(field, -1, ErrExtensionKey, "integer keys must be within ±(2^53-1) (content-08 §6)")
	}
	raw, err := encMode.Marshal(k.num)
	if err != nil {
		return nil, fmt.Errorf("encode extension key: %w", err)
	}
	return raw, nil
}

// textValue returns the text under k, if present.
func (e *Extensions) textValue(k ExtensionKey) (string, bool) {
	raw, ok := e.Raw(k)
	if !ok {
		return "", false
	}
	r := reader{data: raw}
	s, err := r.textItem("")
	return s, err == nil
}

// SenderURI returns extension 1, the sender's MIMI user URI, or "".
func (e *Extensions) SenderURI() string { s, _ := e.textValue(KeySenderURI); return s }

// RoomURI returns extension 2, the MIMI room URI, or "".
func (e *Extensions) RoomURI() string { s, _ := e.textValue(KeyRoomURI); return s }

// SetSenderURI sets extension 1.
func (e *Extensions) SetSenderURI(uri string) error { return e.setValue(KeySenderURI, uri) }

// SetRoomURI sets extension 2.
func (e *Extensions) SetRoomURI(uri string) error { return e.setValue(KeyRoomURI, uri) }

// Subject returns extension 5, if present.
func (e *Extensions) Subject() (string, bool) { return e.textValue(KeySubject) }

// SetSubject sets extension 5 (1..4096 octets).
func (e *Extensions) SetSubject(s string) error { return e.setValue(KeySubject, s) }

// SenderTimestamp returns extension 3, the sender's clock when it sent the
// message, in UTC.
func (e *Extensions) SenderTimestamp() (time.Time, bool) {
	raw, ok := e.Raw(KeySenderTimestamp)
	if !ok {
		return time.Time{}, false
	}
	t, err := parseSenderTimestamp(raw, "")
	return t, err == nil
}

// SetSenderTimestamp sets extension 3 with millisecond precision (the
// fraction is omitted when it is zero).
func (e *Extensions) SetSenderTimestamp(t time.Time) error {
	if t.Unix() < 0 {
		return verr("mimiExtensions[3]", -1, ErrSchema, "sender timestamp before 1970")
	}
	m := map[int64]uint64{1: uint64(t.Unix())}
	if ms := uint64(t.Nanosecond() / 1e6); ms != 0 {
		m[-3] = ms
	}
	return e.setValue(KeySenderTimestamp, m)
}

// ExternalID is a message ID from another system (extension key 4): a native
// ID plus the scope it is unique in. Exactly one of PEN, Domain and URI is
// set.
type ExternalID struct {
	ID []byte
	// PEN is an IANA Private Enterprise Number (> 0).
	PEN uint64
	// Domain is a domain name.
	Domain string
	// URI is a URI (encoded with tag 32).
	URI string
}

func (x ExternalID) cborValue() (any, error) {
	var scope any
	n := 0
	if x.PEN != 0 {
		scope, n = x.PEN, n+1
	}
	if x.Domain != "" {
		scope, n = x.Domain, n+1
	}
	if x.URI != "" {
		scope, n = cbor.Tag{Number: 32, Content: x.URI}, n+1
	}
	if n != 1 {
		return nil, verr("externalMessageId", -1, ErrSchema, "exactly one of PEN, Domain and URI must be set")
	}
	id := x.ID
	if id == nil {
		id = []byte{}
	}
	return []any{id, scope}, nil
}

// String formats the ID for logs and the inspector.
func (x ExternalID) String() string {
	switch {
	case x.PEN != 0:
		return fmt.Sprintf("%x@PEN %d", x.ID, x.PEN)
	case x.Domain != "":
		return fmt.Sprintf("%x@%s", x.ID, x.Domain)
	default:
		return fmt.Sprintf("%x@<%s>", x.ID, x.URI)
	}
}

// ExternalMessageID returns extension 4.
func (e *Extensions) ExternalMessageID() (ExternalID, bool) {
	raw, ok := e.Raw(KeyExternalMessageID)
	if !ok {
		return ExternalID{}, false
	}
	r := reader{data: raw}
	x, err := readExternalID(&r, "")
	return x, err == nil
}

// SetExternalMessageID sets extension 4.
func (e *Extensions) SetExternalMessageID(x ExternalID) error {
	v, err := x.cborValue()
	if err != nil {
		return err
	}
	return e.setValue(KeyExternalMessageID, v)
}

// LastSeen is extension 256: the latest messages the sender had seen, either
// as MIMI message IDs or as external IDs, never both.
type LastSeen struct {
	IDs      []MessageID
	External []ExternalID
}

// LastSeen returns extension 256.
func (e *Extensions) LastSeen() (LastSeen, bool) {
	raw, ok := e.Raw(KeyLastSeen)
	if !ok {
		return LastSeen{}, false
	}
	ls, err := parseLastSeen(raw, "")
	return ls, err == nil
}

// SetLastSeen sets extension 256.
func (e *Extensions) SetLastSeen(ls LastSeen) error {
	if len(ls.IDs) > 0 && len(ls.External) > 0 {
		return verr("mimiExtensions[256]", -1, ErrSchema, "lastSeen never mixes message IDs and external IDs")
	}
	arr := make([]any, 0, len(ls.IDs)+len(ls.External))
	for _, id := range ls.IDs {
		arr = append(arr, id[:])
	}
	for _, x := range ls.External {
		v, err := x.cborValue()
		if err != nil {
			return err
		}
		arr = append(arr, v)
	}
	return e.setValue(KeyLastSeen, arr)
}

// validateKnownExtension checks the value types of the keys with a defined
// meaning. off is added to offsets to report them relative to the document.
func validateKnownExtension(k ExtensionKey, raw []byte, field string, off int) error {
	var err error
	switch k {
	case KeySenderURI, KeyRoomURI:
		r := reader{data: raw}
		_, err = r.textItem(field)
	case KeySubject:
		r := reader{data: raw}
		var s string
		if s, err = r.textItem(field); err == nil && (len(s) < 1 || len(s) > MaxSubjectSize) {
			err = verr(field, 0, ErrSchema, "subject must have 1..%d octets (more-extensions-00)", MaxSubjectSize)
		}
	case KeySenderTimestamp:
		_, err = parseSenderTimestamp(raw, field)
	case KeyExternalMessageID:
		r := reader{data: raw}
		_, err = readExternalID(&r, field)
	case KeyLastSeen:
		_, err = parseLastSeen(raw, field)
	}
	if ve, ok := err.(*ValidationError); ok && ve.Offset >= 0 {
		ve.Offset += off
	}
	return err
}

// parseSenderTimestamp parses {1: seconds, ? -3: ms // -6: µs // -9: ns}.
func parseSenderTimestamp(raw []byte, field string) (time.Time, error) {
	r := reader{data: raw}
	h, err := r.readHead(field)
	if err != nil {
		return time.Time{}, err
	}
	if h.major != majorMap || h.arg < 1 || h.arg > 2 {
		return time.Time{}, verr(field, h.off, ErrSchema, "senderTimestamp must be a map of seconds and at most one fraction (more-extensions-00)")
	}
	var secs, frac uint64
	var unit int64
	for i := uint64(0); i < h.arg; i++ {
		kh, err := r.readHead(field)
		if err != nil {
			return time.Time{}, err
		}
		key := int64(kh.arg)
		if kh.major == majorNeg {
			key = -1 - int64(kh.arg)
		} else if kh.major != majorUint {
			return time.Time{}, verr(field, kh.off, ErrSchema, "senderTimestamp keys are integers")
		}
		var max uint64
		switch {
		case i == 0 && key == 1:
			max = 1<<63 - 1
		case i == 1 && key == -3:
			max, unit = 999, 1e6
		case i == 1 && key == -6:
			max, unit = 999999, 1e3
		case i == 1 && key == -9:
			max, unit = 999999999, 1
		default:
			return time.Time{}, verr(field, kh.off, ErrSchema, "senderTimestamp key %d not allowed here (want 1, then one of -3, -6, -9)", key)
		}
		v, err := r.uintItem(field, max, "the range of its unit")
		if err != nil {
			return time.Time{}, err
		}
		if key == 1 {
			secs = v
		} else {
			frac = v
		}
	}
	if r.off != len(raw) {
		return time.Time{}, verr(field, r.off, ErrMalformed, "trailing bytes")
	}
	return time.Unix(int64(secs), int64(frac)*unit).UTC(), nil
}

// readExternalID reads [bstr, scope].
func readExternalID(r *reader, field string) (ExternalID, error) {
	var x ExternalID
	if _, err := r.arrayHead(field, 2); err != nil {
		return x, err
	}
	id, err := r.bytesItem(field)
	if err != nil {
		return x, err
	}
	x.ID = id
	h, err := r.readHead(field)
	if err != nil {
		return x, err
	}
	switch {
	case h.major == majorUint && h.arg > 0:
		x.PEN = h.arg
	case h.major == majorText:
		b, err := r.stringBody(field, h)
		if err != nil {
			return x, err
		}
		if len(b) == 0 {
			return x, verr(field, h.off, ErrSchema, "empty domain scope")
		}
		x.Domain = string(b)
	case h.major == majorTag && h.arg == 32:
		s, err := r.textItem(field)
		if err != nil {
			return x, err
		}
		if s == "" {
			return x, verr(field, h.off, ErrSchema, "empty URI scope")
		}
		x.URI = s
	default:
		return x, verr(field, h.off, ErrSchema, "scope must be a PEN (uint > 0), a domain (tstr) or a URI (tag 32), got %s", typeName(h))
	}
	return x, nil
}

func parseLastSeen(raw []byte, field string) (LastSeen, error) {
	var ls LastSeen
	r := reader{data: raw}
	n, err := r.arrayHead(field, -1)
	if err != nil {
		return ls, err
	}
	for i := 0; i < n; i++ {
		if r.off < len(raw) && raw[r.off]>>5 == majorArray {
			if len(ls.IDs) > 0 {
				return ls, verr(field, r.off, ErrSchema, "lastSeen mixes message IDs and external IDs")
			}
			x, err := readExternalID(&r, field)
			if err != nil {
				return ls, err
			}
			ls.External = append(ls.External, x)
			continue
		}
		if len(ls.External) > 0 {
			return ls, verr(field, r.off, ErrSchema, "lastSeen mixes message IDs and external IDs")
		}
		id, err := readMessageID(&r, field)
		if err != nil {
			return ls, err
		}
		ls.IDs = append(ls.IDs, id)
	}
	return ls, nil
}

// readMessageID reads a MessageId: 32 octets whose first names a known hash
// algorithm (content-08 §9.1).
func readMessageID(r *reader, field string) (MessageID, error) {
	var id MessageID
	off := r.off
	b, err := r.bytesItem(field)
	if err != nil {
		return id, err
	}
	if len(b) != len(id) {
		return id, verr(field, off, ErrSchema, "message IDs have 32 octets, got %d", len(b))
	}
	if _, ok := hashSize(b[0]); !ok {
		return id, verr(field, off, ErrUnknownValue, "message ID names unknown hash algorithm %d (content-08 §9.1)", b[0])
	}
	copy(id[:], b)
	return id, nil
}
