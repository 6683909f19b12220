package content

import (
	"bytes"
	"encoding/binary"
	"math"
	"unicode/utf8"

	"github.com/x448/float16"
)

// CBOR major types.
const (
	majorUint   = 0
	majorNeg    = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
	majorSimple = 7
)

const (
	simpleFalse = 20
	simpleTrue  = 21
	simpleNull  = 22
)

// maxSafeInt is 2^53-1, the largest integer a double holds exactly
// (content-08 §6 restricts integer map keys to ±maxSafeInt).
const maxSafeInt = 1<<53 - 1

// maxExtensionLevel is the deepest level an extension value may reach; the
// extensions map itself is level 1 (content-08 §6).
const maxExtensionLevel = 4

// reader is a strict CBOR reader: it accepts only well-formed items in the
// deterministic encoding of RFC 8949 §4.2.1 and reports every violation with
// the field it was reading. Decoding is done by hand on top of it because a
// generic decoder cannot say which field broke which rule, and because it
// does not check shortest forms or key order.
type reader struct {
	data []byte
	off  int
}

// head is one decoded item head.
type head struct {
	major byte
	ai    byte
	arg   uint64 // value, length, tag number, simple value or float bits
	off   int    // offset of the initial byte
}

func (r *reader) remaining() int { return len(r.data) - r.off }

// readHead reads one item head and checks it is well-formed and shortest.
func (r *reader) readHead(field string) (head, error) {
	start := r.off
	if r.off >= len(r.data) {
		return head{}, verr(field, start, ErrMalformed, "unexpected end of input")
	}
	ib := r.data[r.off]
	r.off++
	h := head{major: ib >> 5, ai: ib & 0x1f, off: start}
	switch {
	case h.ai < 24:
		h.arg = uint64(h.ai)
	case h.ai <= 27:
		n := 1 << (h.ai - 24)
		if r.remaining() < n {
			return head{}, verr(field, start, ErrMalformed, "unexpected end of input in item head")
		}
		b := r.data[r.off : r.off+n]
		r.off += n
		switch n {
		case 1:
			h.arg = uint64(b[0])
		case 2:
			h.arg = uint64(binary.BigEndian.Uint16(b))
		case 4:
			h.arg = uint64(binary.BigEndian.Uint32(b))
		case 8:
			h.arg = binary.BigEndian.Uint64(b)
		}
		if h.major == majorSimple {
			if err := checkFloatOrSimple(field, h); err != nil {
				return head{}, err
			}
			break
		}
		var min uint64
		switch n {
		case 1:
			min = 24
		case 2:
			min = 1 << 8
		case 4:
			min = 1 << 16
		case 8:
			min = 1 << 32
		}
		if h.arg < min {
			return head{}, verr(field, start, ErrNonDeterministic, "integer, length or tag not in shortest form (RFC 8949 §4.2.1)")
		}
	case h.ai == 31:
		switch h.major {
		case majorBytes, majorText, majorArray, majorMap:
			return head{}, verr(field, start, ErrNonDeterministic, "indefinite-length item (RFC 8949 §4.2.1 forbids them)")
		case majorSimple:
			return head{}, verr(field, start, ErrMalformed, "break code outside an indefinite-length item")
		default:
			return head{}, verr(field, start, ErrMalformed, "additional information 31 is invalid for major type %d", h.major)
		}
	default:
		return head{}, verr(field, start, ErrMalformed, "reserved additional information %d", h.ai)
	}
	return h, nil
}

// checkFloatOrSimple applies the simple-value and float rules: simple values
// in the one-byte extension must be >= 32; floats must be in the shortest form
// that keeps their value (RFC 8949 §4.2.1 with §4.2.2 preferred
// serialization); the only NaN allowed is 0xf97e00 (content-08 §6).
func checkFloatOrSimple(field string, h head) error {
	switch h.ai {
	case 24:
		if h.arg < 32 {
			return verr(field, h.off, ErrMalformed, "simple value %d encoded in two bytes", h.arg)
		}
	case 25:
		bits := uint16(h.arg)
		if f := float16.Frombits(bits); f.IsNaN() && bits != 0x7e00 {
			return verr(field, h.off, ErrNaN, "only the half-precision quiet NaN 0xf97e00 is allowed (content-08 §6)")
		}
	case 26:
		f := math.Float32frombits(uint32(h.arg))
		if f != f {
			return verr(field, h.off, ErrNaN, "only the half-precision quiet NaN 0xf97e00 is allowed (content-08 §6)")
		}
		if math.Float32bits(float16.Fromfloat32(f).Float32()) == math.Float32bits(f) {
			return verr(field, h.off, ErrNonDeterministic, "single-precision float that fits in half precision (RFC 8949 §4.2.1)")
		}
	case 27:
		f := math.Float64frombits(h.arg)
		if f != f {
			return verr(field, h.off, ErrNaN, "only the half-precision quiet NaN 0xf97e00 is allowed (content-08 §6)")
		}
		if math.Float64bits(float64(float32(f))) == math.Float64bits(f) {
			return verr(field, h.off, ErrNonDeterministic, "double-precision float that fits in single precision (RFC 8949 §4.2.1)")
		}
	}
	return nil
}

func typeName(h head) string {
	switch h.major {
	case majorUint:
		return "unsigned integer"
	case majorNeg:
		return "negative integer"
	case majorBytes:
		return "byte string"
	case majorText:
		return "text string"
	case majorArray:
		return "array"
	case majorMap:
		return "map"
	case majorTag:
		return "tag"
	}
	switch {
	case h.ai == simpleFalse || h.ai == simpleTrue:
		return "bool"
	case h.ai == simpleNull:
		return "null"
	case h.ai >= 25 && h.ai <= 27:
		return "float"
	}
	return "simple value"
}

// peekNull reports whether the next item is null, consuming it if so.
func (r *reader) peekNull() bool {
	if r.off < len(r.data) && r.data[r.off] == 0xf6 {
		r.off++
		return true
	}
	return false
}

// arrayHead reads an array head; want >= 0 requires that exact length.
func (r *reader) arrayHead(field string, want int) (int, error) {
	h, err := r.readHead(field)
	if err != nil {
		return 0, err
	}
	if h.major != majorArray {
		return 0, verr(field, h.off, ErrSchema, "expected array, got %s", typeName(h))
	}
	if h.arg > uint64(r.remaining()) {
		return 0, verr(field, h.off, ErrMalformed, "array of %d items exceeds the remaining input", h.arg)
	}
	if want >= 0 && h.arg != uint64(want) {
		return 0, verr(field, h.off, ErrSchema, "array must have %d items, has %d", want, h.arg)
	}
	return int(h.arg), nil
}

func (r *reader) stringBody(field string, h head) ([]byte, error) {
	if h.arg > uint64(r.remaining()) {
		return nil, verr(field, h.off, ErrMalformed, "string of %d bytes exceeds the remaining input", h.arg)
	}
	b := r.data[r.off : r.off+int(h.arg)]
	r.off += int(h.arg)
	if h.major == majorText && !utf8.Valid(b) {
		return nil, verr(field, h.off, ErrInvalidUTF8, "text strings must be valid UTF-8 (content-08 §6)")
	}
	return b, nil
}

// bytesItem reads a byte string and returns a copy.
func (r *reader) bytesItem(field string) ([]byte, error) {
	h, err := r.readHead(field)
	if err != nil {
		return nil, err
	}
	if h.major != majorBytes {
		return nil, verr(field, h.off, ErrSchema, "expected byte string, got %s", typeName(h))
	}
	b, err := r.stringBody(field, h)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

// textItem reads a UTF-8 text string.
func (r *reader) textItem(field string) (string, error) {
	h, err := r.readHead(field)
	if err != nil {
		return "", err
	}
	if h.major != majorText {
		return "", verr(field, h.off, ErrSchema, "expected text string, got %s", typeName(h))
	}
	b, err := r.stringBody(field, h)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// uintItem reads an unsigned integer no larger than max.
func (r *reader) uintItem(field string, max uint64, what string) (uint64, error) {
	h, err := r.readHead(field)
	if err != nil {
		return 0, err
	}
	if h.major != majorUint {
		return 0, verr(field, h.off, ErrSchema, "expected unsigned integer, got %s", typeName(h))
	}
	if h.arg > max {
		return 0, verr(field, h.off, ErrSchema, "%d exceeds %s", h.arg, what)
	}
	return h.arg, nil
}

func (r *reader) boolItem(field string) (bool, error) {
	h, err := r.readHead(field)
	if err != nil {
		return false, err
	}
	if h.major != majorSimple || (h.ai != simpleFalse && h.ai != simpleTrue) {
		return false, verr(field, h.off, ErrSchema, "expected bool, got %s", typeName(h))
	}
	return h.ai == simpleTrue, nil
}

// anyItem validates one arbitrary item (an extension value or part of one)
// and returns its raw encoding. level is the nesting level the item occupies
// if it is a container (tag, array or map).
func (r *reader) anyItem(field string, level int) ([]byte, error) {
	start := r.off
	if err := r.skipAny(field, level); err != nil {
		return nil, err
	}
	return r.data[start:r.off], nil
}

func (r *reader) skipAny(field string, level int) error {
	h, err := r.readHead(field)
	if err != nil {
		return err
	}
	switch h.major {
	case majorUint, majorNeg, majorSimple:
		return nil
	case majorBytes, majorText:
		_, err := r.stringBody(field, h)
		return err
	}
	if level > maxExtensionLevel {
		return verr(field, h.off, ErrTooDeep, "extension values may not nest tags, maps or arrays beyond %d levels (content-08 §6)", maxExtensionLevel)
	}
	switch h.major {
	case majorArray:
		if h.arg > uint64(r.remaining()) {
			return verr(field, h.off, ErrMalformed, "array of %d items exceeds the remaining input", h.arg)
		}
		for i := uint64(0); i < h.arg; i++ {
			if err := r.skipAny(field, level+1); err != nil {
				return err
			}
		}
		return nil
	case majorMap:
		if h.arg > uint64(r.remaining())/2 {
			return verr(field, h.off, ErrMalformed, "map of %d pairs exceeds the remaining input", h.arg)
		}
		var prev []byte
		for i := uint64(0); i < h.arg; i++ {
			key, err := r.nestedKey(field)
			if err != nil {
				return err
			}
			if err := checkKeyOrder(field, r.off-len(key), prev, key); err != nil {
				return err
			}
			prev = key
			if err := r.skipAny(field, level+1); err != nil {
				return err
			}
		}
		return nil
	default: // tag
		switch h.arg {
		case 2, 3: // bignums: only when they do not fit in an integer
			kh, err := r.readHead(field)
			if err != nil {
				return err
			}
			if kh.major != majorBytes {
				return verr(field, kh.off, ErrSchema, "bignum tag %d must wrap a byte string", h.arg)
			}
			b, err := r.stringBody(field, kh)
			if err != nil {
				return err
			}
			if len(b) <= 8 || b[0] == 0 {
				return verr(field, h.off, ErrNonDeterministic, "bignum with leading zero bytes or that fits in an integer (RFC 8949 §4.2.2)")
			}
			return nil
		case 0, 1: // date/time: RFC 8949 §3.4.1 and §3.4.2 fix the content type
			if r.off < len(r.data) {
				m := r.data[r.off] >> 5
				ib := r.data[r.off]
				if (h.arg == 0 && m != majorText) || (h.arg == 1 && m != majorUint && m != majorNeg && (ib < 0xf9 || ib > 0xfb)) {
					return verr(field, h.off, ErrSchema, "tag %d content has the wrong type (RFC 8949 §3.4)", h.arg)
				}
			}
		}
		return r.skipAny(field, level+1)
	}
}

// nestedKey reads a key of a map nested inside an extension value: int, tstr
// or bstr only, integers within ±(2^53-1).
func (r *reader) nestedKey(field string) ([]byte, error) {
	start := r.off
	h, err := r.readHead(field)
	if err != nil {
		return nil, err
	}
	switch h.major {
	case majorUint, majorNeg:
		if h.arg > maxSafeInt-uint64(h.major) {
			return nil, verr(field, h.off, ErrExtensionKey, "integer map key outside ±(2^53-1) (content-08 §6)")
		}
	case majorBytes, majorText:
		if _, err := r.stringBody(field, h); err != nil {
			return nil, err
		}
	default:
		return nil, verr(field, h.off, ErrExtensionKey, "map keys inside extensions must be int, tstr or bstr, got %s (content-08 §6)", typeName(h))
	}
	return r.data[start:r.off], nil
}

// checkKeyOrder enforces bytewise lexicographic order of encoded keys and
// uniqueness.
func checkKeyOrder(field string, off int, prev, key []byte) error {
	if prev == nil {
		return nil
	}
	switch c := bytes.Compare(prev, key); {
	case c == 0:
		return verr(field, off, ErrDuplicateKey, "map key appears twice")
	case c > 0:
		return verr(field, off, ErrNonDeterministic, "map keys not in bytewise lexicographic order of their encoding (RFC 8949 §4.2.1)")
	}
	return nil
}
