package content

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// IDVersion selects the message-ID construction. Nothing on the wire says
// which one a peer used, so the gateway configures it.
type IDVersion int

const (
	// IDDraft08 is the content-08 §3.3 construction:
	// SHA-256(u16(len(sender)) ‖ sender ‖ u16(len(room)) ‖ room ‖ message ‖ salt).
	IDDraft08 IDVersion = 8
	// IDDraft07 is the content-07 construction without the length prefixes:
	// SHA-256(sender ‖ room ‖ message ‖ salt). Deployed Rust
	// implementations (phnx-im and nexun mimi-content crates) still use it.
	IDDraft07 IDVersion = 7
)

// DefaultIDVersion is the construction used unless configured otherwise.
const DefaultIDVersion = IDDraft08

// String names the version.
func (v IDVersion) String() string {
	switch v {
	case IDDraft08:
		return "draft-08"
	case IDDraft07:
		return "draft-07"
	}
	return fmt.Sprintf("IDVersion(%d)", int(v))
}

// ComputeID computes the message ID of an encoded mimiContent document, as
// received or as produced by Message.Encode, for the given sender user URI
// and room URI. The salt is read from the document itself (its first field),
// which must therefore start with a 7-item array and a 16-octet salt.
func ComputeID(v IDVersion, encoded []byte, senderURI, roomURI string) (MessageID, error) {
	var id MessageID
	// 0x87 = array(7), 0x50 = bstr(16): the fixed deterministic prefix.
	if len(encoded) < 2+SaltSize || encoded[0] != 0x87 || encoded[1] != 0x50 {
		return id, verr("salt", 0, ErrSchema, "document does not start with a 7-item array and a 16-octet salt")
	}
	if senderURI == "" || roomURI == "" {
		return id, fmt.Errorf("compute message ID: %w", ErrNoURI)
	}
	salt := encoded[2 : 2+SaltSize]
	h := sha256.New()
	switch v {
	case IDDraft08:
		if len(senderURI) > 0xffff || len(roomURI) > 0xffff {
			return id, verr("mimiExtensions", -1, ErrTooLarge, "URI longer than 65535 octets cannot be hashed (content-08 §3.3)")
		}
		var l [2]byte
		binary.BigEndian.PutUint16(l[:], uint16(len(senderURI)))
		h.Write(l[:])
		h.Write([]byte(senderURI))
		binary.BigEndian.PutUint16(l[:], uint16(len(roomURI)))
		h.Write(l[:])
		h.Write([]byte(roomURI))
	case IDDraft07:
		h.Write([]byte(senderURI))
		h.Write([]byte(roomURI))
	default:
		return id, fmt.Errorf("compute message ID: unknown ID version %d", int(v))
	}
	h.Write(encoded)
	h.Write(salt)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	id[0] = HashAlgSHA256
	copy(id[1:], sum[:31])
	return id, nil
}

// EncodeWithID encodes the message and computes its ID from the sender and
// room URIs in extensions 1 and 2, as a sender does.
func (m *Message) EncodeWithID(v IDVersion) ([]byte, MessageID, error) {
	data, err := m.Encode()
	if err != nil {
		return nil, MessageID{}, err
	}
	id, err := ComputeID(v, data, m.Extensions.SenderURI(), m.Extensions.RoomURI())
	if err != nil {
		return nil, MessageID{}, err
	}
	return data, id, nil
}
