// Package tlspl encodes and decodes the TLS presentation language (RFC 8446 §3) as profiled by MLS
// (RFC 9420 §2.1.2): fixed-width big-endian integers and variable-length vectors whose length is an
// MLS variable-size integer ("varint").
//
// Both MLS (core/mls) and the MIMI protocol (core/protocol) use it. The API is deliberately small:
// a Writer that appends, and a Reader that consumes and remembers the first error (sticky errors),
// so struct codecs read like the struct definitions in the RFC:
//
//	r := tlspl.NewReader(b)
//	v := r.Uint16()
//	body := r.Opaque()
//	if err := r.Finish(); err != nil { ... }
//
// Decoding is strict: varints must use the minimal encoding, the reserved 8-byte form (prefix 0b11)
// is rejected, vector lengths may not exceed the remaining input, and Finish reports trailing bytes.
package tlspl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxVarint is the largest value an MLS varint can carry (2^30 - 1).
const MaxVarint = 1<<30 - 1

// Errors reported by the decoder. They are wrapped with the offset at which they occurred; test with
// errors.Is.
var (
	// ErrShort means the input ended before the value being read.
	ErrShort = errors.New("tlspl: unexpected end of input")
	// ErrVarintNotMinimal means a varint used more bytes than its value needs.
	ErrVarintNotMinimal = errors.New("tlspl: varint not minimally encoded")
	// ErrVarintReserved means a varint used the reserved 8-byte prefix 0b11.
	ErrVarintReserved = errors.New("tlspl: varint uses the reserved 8-byte form")
	// ErrTrailing means bytes remained after the complete value.
	ErrTrailing = errors.New("tlspl: trailing bytes after value")
	// ErrTooLarge means a length or value exceeds what can be encoded or what the caller allows.
	ErrTooLarge = errors.New("tlspl: value too large")
	// ErrInvalid means a decoded value is not allowed (for example an optional marker other than 0 or 1).
	ErrInvalid = errors.New("tlspl: invalid value")
)

// Writer appends TLS presentation language encodings to a buffer. The zero value is ready to use.
// Errors (a vector longer than MaxVarint) are sticky and reported by Bytes.
type Writer struct {
	buf []byte
	err error
}

// NewWriter returns a Writer whose buffer has the given initial capacity.
func NewWriter(capacity int) *Writer { return &Writer{buf: make([]byte, 0, capacity)} }

// Uint8 appends v.
func (w *Writer) Uint8(v uint8) { w.buf = append(w.buf, v) }

// Uint16 appends v big-endian.
func (w *Writer) Uint16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }

// Uint32 appends v big-endian.
func (w *Writer) Uint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// Uint64 appends v big-endian.
func (w *Writer) Uint64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// Bool appends a boolean as one byte (0 or 1).
func (w *Writer) Bool(v bool) {
	if v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

// Varint appends v in the minimal MLS varint encoding. Values above MaxVarint set the sticky error.
func (w *Writer) Varint(v uint64) {
	switch {
	case v < 1<<6:
		w.buf = append(w.buf, byte(v))
	case v < 1<<14:
		w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(v)|0x4000)
	case v <= MaxVarint:
		w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(v)|0x80000000)
	default:
		w.fail(fmt.Errorf("%w: varint %d exceeds %d", ErrTooLarge, v, MaxVarint))
	}
}

// Raw appends b without a length prefix (for fixed-size fields such as opaque[32]).
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

// Opaque appends b as a variable-length vector: a varint length followed by the bytes.
func (w *Writer) Opaque(b []byte) {
	w.Varint(uint64(len(b)))
	w.buf = append(w.buf, b...)
}

// Vector appends a variable-length vector whose body is whatever f writes, prefixed by its varint
// length. Use it for vectors of structs: w.Vector(func(w *tlspl.Writer) { for ... { x.MarshalTLS(w) } }).
func (w *Writer) Vector(f func(w *Writer)) {
	// Reserve the largest prefix, write the body, then move it into place if the prefix is shorter.
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0)
	f(w)
	n := len(w.buf) - start - 4
	var prefix [4]byte
	var p []byte
	switch {
	case n < 1<<6:
		prefix[0] = byte(n)
		p = prefix[:1]
	case n < 1<<14:
		binary.BigEndian.PutUint16(prefix[:], uint16(n)|0x4000)
		p = prefix[:2]
	case n <= MaxVarint:
		binary.BigEndian.PutUint32(prefix[:], uint32(n)|0x80000000)
		p = prefix[:4]
	default:
		w.fail(fmt.Errorf("%w: vector of %d bytes exceeds %d", ErrTooLarge, n, MaxVarint))
		return
	}
	if len(p) < 4 {
		copy(w.buf[start+len(p):], w.buf[start+4:])
		w.buf = w.buf[:len(w.buf)-(4-len(p))]
	}
	copy(w.buf[start:], p)
}

// Optional appends the MLS optional<T> encoding: 0 when absent, or 1 followed by what f writes.
func (w *Writer) Optional(present bool, f func(w *Writer)) {
	if !present {
		w.buf = append(w.buf, 0)
		return
	}
	w.buf = append(w.buf, 1)
	f(w)
}

// SetError records err as the sticky error if none is recorded yet. Struct codecs use it to report
// values they cannot encode.
func (w *Writer) SetError(err error) { w.fail(err) }

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// Bytes returns the encoding, or the first error recorded while writing.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// Reader consumes TLS presentation language encodings. The first error is sticky: after it, every
// read returns a zero value and Err reports the error, so a struct decoder can read all fields and
// check once.
type Reader struct {
	buf []byte
	off int // offset within the outermost input, for error messages
	err error
}

// NewReader returns a Reader over b. The Reader does not copy b: byte slices it returns alias b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err returns the first error encountered, if any.
func (r *Reader) Err() error { return r.err }

// SetError records err (wrapped with the current offset) as the sticky error if none is recorded
// yet. Struct decoders use it to report semantic errors such as an unknown enum value.
func (r *Reader) SetError(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("at offset %d: %w", r.off, err)
	}
}

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) }

// Empty reports whether all input has been consumed (or an error occurred).
func (r *Reader) Empty() bool { return r.err != nil || len(r.buf) == 0 }

// Finish returns the sticky error, or ErrTrailing if unread bytes remain.
func (r *Reader) Finish() error {
	if r.err != nil {
		return r.err
	}
	if len(r.buf) != 0 {
		return fmt.Errorf("at offset %d: %w (%d bytes)", r.off, ErrTrailing, len(r.buf))
	}
	return nil
}

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf) {
		r.SetError(fmt.Errorf("%w: need %d bytes, have %d", ErrShort, n, len(r.buf)))
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	r.off += n
	return b
}

// Uint8 reads one byte.
func (r *Reader) Uint8() uint8 {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// Uint16 reads a big-endian uint16.
func (r *Reader) Uint16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// Uint32 reads a big-endian uint32.
func (r *Reader) Uint32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// Uint64 reads a big-endian uint64.
func (r *Reader) Uint64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Bool reads a one-byte boolean; values other than 0 and 1 are an error.
func (r *Reader) Bool() bool {
	v := r.Uint8()
	if v > 1 {
		r.SetError(fmt.Errorf("%w: boolean %d", ErrInvalid, v))
		return false
	}
	return v == 1
}

// Varint reads an MLS varint, rejecting non-minimal encodings and the reserved 8-byte form.
func (r *Reader) Varint() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.buf) == 0 {
		r.SetError(fmt.Errorf("%w: varint", ErrShort))
		return 0
	}
	switch r.buf[0] >> 6 {
	case 0:
		return uint64(r.take(1)[0])
	case 1:
		b := r.take(2)
		if b == nil {
			return 0
		}
		v := uint64(binary.BigEndian.Uint16(b) & 0x3fff)
		if v < 1<<6 {
			r.SetError(fmt.Errorf("%w: %d in 2 bytes", ErrVarintNotMinimal, v))
			return 0
		}
		return v
	case 2:
		b := r.take(4)
		if b == nil {
			return 0
		}
		v := uint64(binary.BigEndian.Uint32(b) & 0x3fffffff)
		if v < 1<<14 {
			r.SetError(fmt.Errorf("%w: %d in 4 bytes", ErrVarintNotMinimal, v))
			return 0
		}
		return v
	default:
		r.SetError(ErrVarintReserved)
		return 0
	}
}

// Raw reads exactly n bytes (a fixed-size field). The result aliases the input.
func (r *Reader) Raw(n int) []byte { return r.take(n) }

// Opaque reads a variable-length vector of bytes. The result aliases the input; it is non-nil (possibly
// empty) on success.
func (r *Reader) Opaque() []byte {
	n := r.Varint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.buf)) {
		r.SetError(fmt.Errorf("%w: vector of %d bytes, %d remain", ErrShort, n, len(r.buf)))
		return nil
	}
	return r.take(int(n))
}

// OpaqueCopy is Opaque but returns a copy that does not alias the input.
func (r *Reader) OpaqueCopy() []byte {
	b := r.Opaque()
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// Vector reads a variable-length vector and returns a Reader over its body. When done with the body,
// call r.Join(sub) so that errors and unread bytes in the body become r's sticky error. For vectors of
// elements, ForEach is simpler.
func (r *Reader) Vector() *Reader {
	off := r.off
	b := r.Opaque()
	if r.err != nil {
		return &Reader{err: r.err}
	}
	return &Reader{buf: b, off: off}
}

// Join makes sub's error, or unread bytes left in sub, r's sticky error. sub is a Reader returned
// by r.Vector.
func (r *Reader) Join(sub *Reader) {
	if r.err != nil {
		return
	}
	if err := sub.Finish(); err != nil {
		r.err = err
	}
}

// ForEach reads a variable-length vector and calls f for each element until the body is consumed,
// stopping at the first error. f must consume exactly one element from the sub-reader it is given.
// Errors inside the body become r's sticky error.
func (r *Reader) ForEach(f func(r *Reader)) {
	sub := r.Vector()
	for sub.err == nil && len(sub.buf) > 0 {
		before := len(sub.buf)
		f(sub)
		if sub.err == nil && len(sub.buf) == before {
			sub.SetError(fmt.Errorf("%w: vector element consumed no bytes", ErrInvalid))
		}
	}
	if sub.err != nil && r.err == nil {
		r.err = sub.err
	}
}

// Optional reads the MLS optional<T> marker and, when it is 1, calls f to read the value. It reports
// whether the value was present.
func (r *Reader) Optional(f func(r *Reader)) bool {
	switch r.Uint8() {
	case 0:
		return false
	case 1:
		if r.err != nil {
			return false
		}
		f(r)
		return r.err == nil
	default:
		r.SetError(fmt.Errorf("%w: optional marker", ErrInvalid))
		return false
	}
}

// Marshaler is implemented by types with a TLS presentation language encoding.
type Marshaler interface {
	MarshalTLS(w *Writer)
}

// Unmarshaler is implemented by types that decode themselves from a Reader, reporting problems via
// the Reader's sticky error.
type Unmarshaler interface {
	UnmarshalTLS(r *Reader)
}

// Marshal encodes m.
func Marshal(m Marshaler) ([]byte, error) {
	var w Writer
	m.MarshalTLS(&w)
	return w.Bytes()
}

// Unmarshal decodes b into u and requires that all of b is consumed.
func Unmarshal(b []byte, u Unmarshaler) error {
	r := NewReader(b)
	u.UnmarshalTLS(r)
	return r.Finish()
}
