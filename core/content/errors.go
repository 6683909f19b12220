package content

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every decoding failure is a *ValidationError that wraps
// exactly one of these, so callers can branch with errors.Is and still show
// the precise field and rule to an operator.
var (
	// ErrMalformed: the input is not well-formed CBOR (truncated, reserved
	// additional-information values, a stray break, trailing bytes).
	ErrMalformed = errors.New("malformed CBOR")
	// ErrNonDeterministic: well-formed CBOR that is not in the RFC 8949
	// §4.2.1 deterministic form content-08 §6 requires (non-shortest
	// integer, length, tag or float; indefinite length; unsorted map keys).
	ErrNonDeterministic = errors.New("not deterministically encoded")
	// ErrDuplicateKey: a map holds the same key twice.
	ErrDuplicateKey = errors.New("duplicate map key")
	// ErrSchema: an item has the wrong CBOR type, array length or value range
	// for its position in the content-08 CDDL.
	ErrSchema = errors.New("schema violation")
	// ErrInvalidUTF8: a text string is not valid UTF-8 (content-08 §6).
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrTooDeep: NestedParts deeper than 4 levels, or an extension value
	// nesting tags, maps or arrays beyond 4 levels (content-08 §6, §9.1).
	ErrTooDeep = errors.New("nesting too deep")
	// ErrTooLarge: an input, a field or a part count exceeds a limit
	// (content-08 §9.1, or this package's size limits).
	ErrTooLarge = errors.New("too large")
	// ErrExtensionKey: an extension map key breaks the key rules
	// (content-08 §6: int within ±(2^53-1) or tstr of 1..255 octets; key 0
	// is reserved; nested maps allow int, tstr and bstr keys only).
	ErrExtensionKey = errors.New("invalid extension key")
	// ErrNaN: a NaN other than the half-precision quiet NaN 0xf97e00.
	ErrNaN = errors.New("non-canonical NaN")
	// ErrUnknownValue: an enumerated value with no defined meaning where the
	// draft says to discard (unknown cardinality or partSemantics, unknown
	// hash algorithm in a message ID).
	ErrUnknownValue = errors.New("unknown value")
	// ErrStale: a time-dependent check of content-08 §9.1 failed (expiry or
	// sender timestamp too far in the past or the future).
	ErrStale = errors.New("timestamp out of range")
	// ErrNoURI: a message ID cannot be computed because the sender or room
	// URI is unknown.
	ErrNoURI = errors.New("sender or room URI missing")
	// ErrIntegrity: an attachment failed its hash check or its AEAD
	// authentication.
	ErrIntegrity = errors.New("integrity check failed")
)

// ValidationError describes why a content document (or a status report, or
// a value handed to an encoder) was rejected: which field, which rule.
type ValidationError struct {
	// Field is a path into the document, e.g. "nestedPart.parts[1].content"
	// or "mimiExtensions[3]".
	Field string
	// Rule says which rule was broken, citing the draft section where one
	// applies.
	Rule string
	// Offset is the byte offset of the offending item, or -1 when the error
	// is not tied to a position (e.g. when encoding).
	Offset int
	// Err is one of the sentinel errors of this package.
	Err error
}

// Error implements error.
func (e *ValidationError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("mimi content: %s: %s: %v (at byte %d)", e.Field, e.Rule, e.Err, e.Offset)
	}
	return fmt.Sprintf("mimi content: %s: %s: %v", e.Field, e.Rule, e.Err)
}

// Unwrap returns the sentinel error.
func (e *ValidationError) Unwrap() error { return e.Err }

func verr(field string, off int, sentinel error, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Rule: fmt.Sprintf(format, args...), Offset: off, Err: sentinel}
}
