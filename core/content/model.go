// Package content implements the MIMI content format
// (draft-ietf-mimi-content-08) and MIMI message status reports
// (draft-mahy-mimi-message-status-01).
//
// A [Message] is the decoded form of one mimiContent document. [Decode]
// accepts only what content-08 §6 and §9.1 allow (deterministic CBOR, depth
// and size limits, UTF-8, key rules, ...) and reports violations as
// *[ValidationError]. [Message.Encode] writes RFC 8949 §4.2.1 deterministic
// CBOR, so a decoded message re-encodes to the bytes it came from.
// [ComputeID] derives message IDs by the -08 algorithm or, for peers still on
// the -07 construction, the -07 one ([IDVersion]).
//
// [Builder] makes the messages the bridges send (text, markdown, replies,
// reactions, edits, deletes, attachments); [Inspect] prints a document for
// administrators. The gfm sub-package converts between GFM-MIMI markdown,
// plain text and the HTML subset Matrix uses.
package content

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strconv"
)

// MediaType is the media type of a mimiContent document.
const MediaType = "application/mimi-content"

// Well-known content types of SingleParts.
const (
	// TypePlain is plain UTF-8 text.
	TypePlain = "text/plain;charset=utf-8"
	// TypeGFMMIMI is GitHub Flavored Markdown restricted as content-08 §7
	// describes (no raw HTML, no autolink extension).
	TypeGFMMIMI = "text/markdown;variant=GFM-MIMI"
	// TypeHTML is UTF-8 HTML.
	TypeHTML = "text/html;charset=utf-8"
)

// Limits of this implementation and of content-08 §9.1.
const (
	// MaxContentSize is the largest mimiContent document Decode accepts.
	// Large media travel as ExternalParts, so a megabyte is generous.
	MaxContentSize = 1 << 20
	// MaxParts is the most NestedParts a body may have (content-08 §9.1).
	MaxParts = 1024
	// MaxPartDepth is the deepest NestedParts may nest; the body is level 1
	// (content-08 §6 and §9.1).
	MaxPartDepth = 4
	// MaxTopicIDSize is the longest topicId accepted (content-08 §9.1).
	MaxTopicIDSize = 4096
	// SaltSize is the length of the per-message salt (content-08 §4.1).
	SaltSize = 16
)

// Salt is the per-message random salt.
type Salt [SaltSize]byte

// MessageID identifies one version of a message: a hash-algorithm octet
// (0x01 for SHA-256) followed by 31 octets of the hash (content-08 §3.3).
type MessageID [32]byte

// String returns the ID as lowercase hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Equal compares two IDs in constant time.
func (id MessageID) Equal(other MessageID) bool {
	return subtle.ConstantTimeCompare(id[:], other[:]) == 1
}

// ParseMessageID parses 64 hex digits.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("parse message ID: %w", err)
	}
	if len(b) != len(id) {
		return id, fmt.Errorf("parse message ID: %d octets, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// Expiration is the top-level expires field: either an absolute time in
// seconds since the Unix epoch, or (Relative) the seconds a message stays
// visible after it is read.
type Expiration struct {
	Relative bool
	Time     uint32
}

// Message is one mimiContent document (content-08 §4.1).
type Message struct {
	// Salt is the random salt; it feeds the message ID.
	Salt Salt
	// Replaces is the ID of the first version of the message this one edits,
	// deletes or unreacts; nil when there is none.
	Replaces *MessageID
	// TopicID groups messages into a topic or thread; empty means none.
	TopicID []byte
	// Expires is nil for messages that do not expire.
	Expires *Expiration
	// InReplyTo is the ID of the version this message replies or reacts to.
	InReplyTo *MessageID
	// Extensions holds the mimiExtensions map, including the sender and
	// room URIs.
	Extensions Extensions
	// Body is the nestedPart.
	Body NestedPart
}

// Disposition is a rendering hint of a NestedPart (content-08 §4.4,
// "MIMI Content Disposition" registry).
type Disposition uint8

// Dispositions of the content-08 registry. Values 9..255 are unknown and
// receivers treat them as DispRender (content-08 §9.1).
const (
	DispUnspecified Disposition = 0
	DispRender      Disposition = 1
	DispReaction    Disposition = 2
	DispProfile     Disposition = 3
	DispInline      Disposition = 4
	DispIcon        Disposition = 5
	DispAttachment  Disposition = 6
	DispSession     Disposition = 7
	DispPreview     Disposition = 8
)

var dispositionNames = [...]string{"unspecified", "render", "reaction", "profile", "inline", "icon", "attachment", "session", "preview"}

// String names the disposition.
func (d Disposition) String() string {
	if int(d) < len(dispositionNames) {
		return dispositionNames[d]
	}
	return "unknown(" + strconv.Itoa(int(d)) + ")"
}

// Effective returns the disposition a receiver acts on: unknown values count
// as DispRender (content-08 §9.1).
func (d Disposition) Effective() Disposition {
	if int(d) < len(dispositionNames) {
		return d
	}
	return DispRender
}

// Cardinality says which kind of NestedPart follows the common prefix.
type Cardinality uint8

// Cardinalities (content-08 §4.4).
const (
	CardNull     Cardinality = 0
	CardSingle   Cardinality = 1
	CardExternal Cardinality = 2
	CardMulti    Cardinality = 3
)

// String names the cardinality.
func (c Cardinality) String() string {
	switch c {
	case CardNull:
		return "null"
	case CardSingle:
		return "single"
	case CardExternal:
		return "external"
	case CardMulti:
		return "multi"
	}
	return "unknown(" + strconv.Itoa(int(c)) + ")"
}

// PartSemantics says how the parts of a MultiPart relate.
type PartSemantics uint8

// Part semantics (content-08 §4.4).
const (
	// ChooseOne: alternatives, the receiver renders exactly one
	// (like multipart/alternative).
	ChooseOne PartSemantics = 0
	// SingleUnit: all parts form one unit; if one cannot be handled none is
	// (like multipart/related).
	SingleUnit PartSemantics = 1
	// ProcessAll: independent parts, each handled if possible
	// (like multipart/mixed).
	ProcessAll PartSemantics = 2
)

// String names the semantics.
func (s PartSemantics) String() string {
	switch s {
	case ChooseOne:
		return "chooseOne"
	case SingleUnit:
		return "singleUnit"
	case ProcessAll:
		return "processAll"
	}
	return "unknown(" + strconv.Itoa(int(s)) + ")"
}

// NestedPart is a body or one part of a MultiPart.
type NestedPart struct {
	Disposition Disposition
	// Language is empty or a comma-separated list of RFC 5646 tags.
	Language string
	// Body is one of NullPart, SinglePart, ExternalPart or MultiPart.
	Body PartBody
}

// PartBody is the cardinality-specific rest of a NestedPart. It is
// implemented by NullPart, SinglePart, ExternalPart and MultiPart only.
type PartBody interface {
	Cardinality() Cardinality
	isPartBody()
}

// NullPart is an empty body, used for deletes and unreacts.
type NullPart struct{}

// SinglePart is inline content.
type SinglePart struct {
	// ContentType is a media type with parameters, e.g. TypePlain.
	ContentType string
	// Content is the raw content; text is UTF-8.
	Content []byte
}

// AEAD algorithm numbers of the IANA "AEAD Algorithms" registry used in
// ExternalPart.EncAlg.
const (
	AEADNone             uint16 = 0
	AEADAES128GCM        uint16 = 1
	AEADAES256GCM        uint16 = 2
	AEADChaCha20Poly1305 uint16 = 29
)

// Named Information hash algorithm numbers (RFC 6920 registry), used in
// ExternalPart.HashAlg and as the first octet of a message ID.
const (
	HashAlgNone   uint8 = 0
	HashAlgSHA256 uint8 = 1
	HashAlgSHA384 uint8 = 7
	HashAlgSHA512 uint8 = 8
)

// ExternalPart is content stored elsewhere, usually encrypted (content-08
// §4.5).
type ExternalPart struct {
	ContentType string
	// URL is where the content is downloaded from.
	URL string
	// Expires is when the URL stops working, seconds since the epoch; 0 is
	// never.
	Expires uint32
	// Size is the size in octets of the content at URL (this package's
	// reading: of the ciphertext); 0 is unknown.
	Size uint64
	// EncAlg is an AEAD algorithm number; AEADNone means not encrypted, and
	// then Key, Nonce and AAD are empty.
	EncAlg uint16
	Key    []byte
	Nonce  []byte
	AAD    []byte
	// HashAlg is a Named Information hash algorithm number (HashAlgNone
	// for none); ContentHash is the hash of the content at URL, i.e. of the
	// ciphertext when encrypted.
	HashAlg     uint8
	ContentHash []byte
	// Description is optional text, "" when absent.
	Description string
	// Filename is a suggested file name, "" when absent.
	Filename string
}

// MultiPart holds two or more parts.
type MultiPart struct {
	Semantics PartSemantics
	Parts     []NestedPart
}

// Cardinality implements PartBody.
func (NullPart) Cardinality() Cardinality { return CardNull }

// Cardinality implements PartBody.
func (SinglePart) Cardinality() Cardinality { return CardSingle }

// Cardinality implements PartBody.
func (ExternalPart) Cardinality() Cardinality { return CardExternal }

// Cardinality implements PartBody.
func (MultiPart) Cardinality() Cardinality { return CardMulti }

func (NullPart) isPartBody()     {}
func (SinglePart) isPartBody()   {}
func (ExternalPart) isPartBody() {}
func (MultiPart) isPartBody()    {}

var (
	_ PartBody = NullPart{}
	_ PartBody = SinglePart{}
	_ PartBody = ExternalPart{}
	_ PartBody = MultiPart{}
)

// aeadParams gives key and nonce sizes of the AEAD algorithms we know.
func aeadParams(alg uint16) (keySize, nonceSize int, ok bool) {
	switch alg {
	case AEADAES128GCM:
		return 16, 12, true
	case AEADAES256GCM, AEADChaCha20Poly1305:
		return 32, 12, true
	}
	return 0, 0, false
}

// hashSize gives the digest size of the Named Information hash algorithms we
// know (RFC 6920 registry).
func hashSize(alg uint8) (int, bool) {
	switch alg {
	case 1: // sha-256
		return 32, true
	case 2: // sha-256-128
		return 16, true
	case 3: // sha-256-120
		return 15, true
	case 4: // sha-256-96
		return 12, true
	case 5: // sha-256-64
		return 8, true
	case 6: // sha-256-32
		return 4, true
	case 7: // sha-384
		return 48, true
	case 8: // sha-512
		return 64, true
	case 9: // sha3-224
		return 28, true
	case 10: // sha3-256
		return 32, true
	case 11: // sha3-384
		return 48, true
	case 12: // sha3-512
		return 64, true
	}
	return 0, false
}

// hashAlgName names a Named Information hash algorithm.
func hashAlgName(alg uint8) string {
	names := map[uint8]string{0: "none", 1: "sha-256", 2: "sha-256-128", 3: "sha-256-120", 4: "sha-256-96", 5: "sha-256-64",
		6: "sha-256-32", 7: "sha-384", 8: "sha-512", 9: "sha3-224", 10: "sha3-256", 11: "sha3-384", 12: "sha3-512"}
	if n, ok := names[alg]; ok {
		return n
	}
	return "unknown(" + strconv.Itoa(int(alg)) + ")"
}

// aeadName names an AEAD algorithm.
func aeadName(alg uint16) string {
	switch alg {
	case AEADNone:
		return "none"
	case AEADAES128GCM:
		return "AEAD_AES_128_GCM"
	case AEADAES256GCM:
		return "AEAD_AES_256_GCM"
	case AEADChaCha20Poly1305:
		return "AEAD_CHACHA20_POLY1305"
	}
	return "unknown(" + strconv.Itoa(int(alg)) + ")"
}
