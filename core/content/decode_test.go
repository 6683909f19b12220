package content

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

const (
	hdr      = "87" + "50" + "000102030405060708090a0b0c0d0e0f" // array(7), salt
	noRefs   = "f6" + "40" + "f6" + "f6"                        // replaces, topicId, expires, inReplyTo
	extOK    = "a2" + "01" + "6a" + "6d696d693a2f2f612f75" + "02" + "6a" + "6d696d693a2f2f612f72"
	bodyOK   = "85" + "01" + "60" + "01" + "78" + "18" + "746578742f706c61696e3b636861727365743d7574662d38" + "42" + "6869"
	id32     = "5820" + "01" + "11111111111111111111111111111111111111111111111111111111111111"
	nullBody = "83" + "01" + "60" + "00"
)

// doc assembles a document from hex pieces.
func doc(t testing.TB, pieces ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(pieces, ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// enc encodes a value deterministically for building test documents.
func enc(t testing.TB, v any) string {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func withExt(t testing.TB, kvHex string, pairs int) []byte {
	// extension map with sender, room and extra pairs appended (caller keeps
	// the order valid or invalid on purpose)
	return doc(t, hdr, noRefs, hex.EncodeToString([]byte{0xa0 + byte(2+pairs)}), extOK[2:], kvHex, bodyOK)
}

func single(ct string, content []byte) []any { return []any{1, "", 1, ct, content} }

func multi(sem int, parts ...any) []any { return []any{1, "", 3, sem, parts} }

func nest(depth int) any {
	p := any(single(TypePlain, []byte("x")))
	for i := 1; i < depth; i++ {
		p = multi(2, p, single(TypePlain, []byte("y")))
	}
	return p
}

func external(mod func(v []any)) string {
	v := []any{6, "", 2, "image/png", "https://x/y", 0, 10, 1, make([]byte, 16), make([]byte, 12), []byte{}, 1, make([]byte, 32), "", "f.png"}
	if mod != nil {
		mod(v)
	}
	b, _ := encMode.Marshal(v)
	return hex.EncodeToString(b)
}

func TestDecodeRejects(t *testing.T) {
	manyParts := func(n int) any {
		ps := make([]any, n)
		for i := range ps {
			ps[i] = single(TypePlain, []byte{})
		}
		return multi(2, ps...)
	}
	big := bytes.Repeat([]byte{0}, MaxContentSize+1)
	cases := []struct {
		name  string
		data  []byte
		want  error
		field string
	}{
		// Well-formedness.
		{"empty input", nil, ErrMalformed, "mimiContent"},
		{"truncated", readVector(t, "original")[:60], ErrMalformed, ""},
		{"trailing byte", append(readVector(t, "original"), 0), ErrMalformed, "mimiContent"},
		{"reserved additional info", doc(t, hdr, noRefs, "a1", "01", "1c"), ErrMalformed, "mimiExtensions[1]"},
		{"stray break", doc(t, hdr, noRefs, "a1", "01", "ff"), ErrMalformed, "mimiExtensions[1]"},
		{"simple value in two bytes", withExt(t, "03"+"f810", 1), ErrMalformed, "mimiExtensions[3]"},
		{"input over size limit", big, ErrTooLarge, "mimiContent"},

		// Deterministic encoding (content-08 §6, RFC 8949 §4.2.1).
		{"non-shortest integer", doc(t, hdr, noRefs, extOK, "85"+"1801"+"60"+"01"+bodyOK[6:]), ErrNonDeterministic, "nestedPart.disposition"},
		{"non-shortest length", doc(t, "87"+"5810"+hdr[4:], noRefs, extOK, bodyOK), ErrNonDeterministic, "salt"},
		{"non-shortest array length", doc(t, "9807"+hdr[2:], noRefs, extOK, bodyOK), ErrNonDeterministic, "mimiContent"},
		{"indefinite-length array", doc(t, "9f"+hdr[2:], noRefs, extOK, bodyOK, "ff"), ErrNonDeterministic, "mimiContent"},
		{"indefinite-length byte string", doc(t, hdr, "f6", "5f40ff", "f6f6", extOK, bodyOK), ErrNonDeterministic, "topicId"},
		{"indefinite-length map", doc(t, hdr, noRefs, "bf"+extOK[2:]+"ff", bodyOK), ErrNonDeterministic, "mimiExtensions"},
		{"map keys unsorted", doc(t, hdr, noRefs, "a2"+extOK[26:]+extOK[2:26], bodyOK), ErrNonDeterministic, "mimiExtensions[1]"},
		{"length-first (RFC 7049) key order", withExt(t, "20"+"00"+"1818"+"00", 2), ErrNonDeterministic, "mimiExtensions[24]"},
		{"duplicate key", withExt(t, "1863"+"00"+"1863"+"01", 2), ErrDuplicateKey, "mimiExtensions[99]"},
		{"non-shortest float", withExt(t, "03"+"fa3f800000", 1), ErrNonDeterministic, "mimiExtensions[3]"},
		{"double that fits single", withExt(t, "03"+"fb3ff8000000000000", 1), ErrNonDeterministic, "mimiExtensions[3]"},
		{"bignum that fits an integer", withExt(t, "1863"+"c24101", 1), ErrNonDeterministic, "mimiExtensions[99]"},
		{"tag 1 wrapping text", withExt(t, "1863"+"c16161", 1), ErrSchema, "mimiExtensions[99]"},
		{"tag 0 wrapping int", withExt(t, "1863"+"c001", 1), ErrSchema, "mimiExtensions[99]"},

		// NaN rule.
		{"half NaN with payload", withExt(t, "03"+"f97e01", 1), ErrNaN, "mimiExtensions[3]"},
		{"single-precision NaN", withExt(t, "03"+"fa7fc00000", 1), ErrNaN, "mimiExtensions[3]"},
		{"double-precision NaN", withExt(t, "03"+"fb7ff8000000000000", 1), ErrNaN, "mimiExtensions[3]"},

		// UTF-8.
		{"invalid UTF-8 language", doc(t, hdr, noRefs, extOK, "85"+"01"+"61ff"+bodyOK[6:]), ErrInvalidUTF8, "nestedPart.language"},
		{"invalid UTF-8 extension value", withExt(t, "64"+"6b6579"+"62c328", 1)[:0], nil, ""}, // placeholder replaced below
		{"invalid UTF-8 text key", withExt(t, "62c328"+"00", 1), ErrInvalidUTF8, "mimiExtensions key"},
		{"invalid UTF-8 sender URI", doc(t, hdr, noRefs, "a1"+"01"+"62c328", bodyOK), ErrInvalidUTF8, "mimiExtensions[1]"},

		// Top-level fields.
		{"not an array", doc(t, "a0"), ErrSchema, "mimiContent"},
		{"six fields", doc(t, "86"+hdr[2:], noRefs, extOK), ErrSchema, "mimiContent"},
		{"salt of 15 octets", doc(t, "87"+"4f"+hdr[4:34], noRefs, extOK, bodyOK), ErrSchema, "salt"},
		{"salt of 17 octets", doc(t, "87"+"51"+hdr[4:]+"00", noRefs, extOK, bodyOK), ErrSchema, "salt"},
		{"salt as text", doc(t, "87"+"70"+hdr[4:], noRefs, extOK, bodyOK), ErrSchema, "salt"},
		{"replaces of 31 octets", doc(t, hdr, "581f"+strings.Repeat("01", 31), "40f6f6", extOK, bodyOK), ErrSchema, "replaces"},
		{"replaces with unknown hash algorithm", doc(t, hdr, "5820"+strings.Repeat("ee", 32), "40f6f6", extOK, bodyOK), ErrUnknownValue, "replaces"},
		{"inReplyTo as text", doc(t, hdr, "f640f6", "61"+"61", extOK, bodyOK), ErrSchema, "inReplyTo"},
		{"topicId too long", doc(t, hdr, "f6", "591001"+strings.Repeat("00", 4097), "f6f6", extOK, bodyOK), ErrTooLarge, "topicId"},
		{"topicId as text", doc(t, hdr, "f6", "60", "f6f6", extOK, bodyOK), ErrSchema, "topicId"},
		{"expires with one item", doc(t, hdr, "f640", "81f4", "f6", extOK, bodyOK), ErrSchema, "expires"},
		{"expires relative not bool", doc(t, hdr, "f640", "820000", "f6", extOK, bodyOK), ErrSchema, "expires.relative"},
		{"expires time over 32 bits", doc(t, hdr, "f640", "82f41b0000000100000000", "f6", extOK, bodyOK), ErrSchema, "expires.time"},

		// Extensions map and keys.
		{"extensions as array", doc(t, hdr, noRefs, "80", bodyOK), ErrSchema, "mimiExtensions"},
		{"extension key 0 reserved", withExt(t, "00"+"00", 1)[:0], nil, ""}, // placeholder replaced below
		{"integer key above 2^53-1", withExt(t, "1b0020000000000000"+"00", 1), ErrExtensionKey, "mimiExtensions key"},
		{"integer key below -(2^53-1)", withExt(t, "3b001ffffffffffffe"+"00", 1)[:0], nil, ""}, // placeholder
		{"empty text key", withExt(t, "60"+"00", 1), ErrExtensionKey, "mimiExtensions key"},
		{"text key of 256 octets", withExt(t, "790100"+strings.Repeat("61", 256)+"00", 1), ErrExtensionKey, "mimiExtensions key"},
		{"byte string key", withExt(t, "4161"+"00", 1), ErrExtensionKey, "mimiExtensions key"},
		{"nested map with array key", withExt(t, "03"+"a1"+"80"+"00", 1), ErrExtensionKey, "mimiExtensions[3]"},
		{"nested integer key out of range", withExt(t, "1863"+"a1"+"1b0020000000000000"+"00", 1), ErrExtensionKey, "mimiExtensions[99]"},
		{"sender URI not text", doc(t, hdr, noRefs, "a1"+"01"+"01", bodyOK), ErrSchema, "mimiExtensions[1]"},
		{"room URI not text", doc(t, hdr, noRefs, "a1"+"02"+"40", bodyOK), ErrSchema, "mimiExtensions[2]"},
		{"extension value nested 5 levels (arrays)", withExt(t, "1863"+"81818181"+"00", 1), ErrTooDeep, "mimiExtensions[99]"},
		{"extension value nested 5 levels (tags and maps)", withExt(t, "1863"+"d820"+"a101"+"d820"+"8100", 1), ErrTooDeep, "mimiExtensions[99]"},
		{"senderTimestamp not a map", withExt(t, "03"+"01", 1), ErrSchema, "mimiExtensions[3]"},
		{"senderTimestamp ms out of range", withExt(t, "03"+"a2"+"01"+"01"+"22"+"1903e8", 1), ErrSchema, "mimiExtensions[3]"},
		{"externalMessageId scope 0", withExt(t, "04"+"82"+"4101"+"00", 1), ErrSchema, "mimiExtensions[4]"},
		{"subject empty", withExt(t, "05"+"60", 1), ErrSchema, "mimiExtensions[5]"},
		{"lastSeen mixes ID kinds", withExt(t, "190100"+"82"+id32+"82"+"4101"+"01", 1), ErrSchema, "mimiExtensions[256]"},

		// Parts (content-08 §4.4, §6, §9.1).
		{"disposition over 255", doc(t, hdr, noRefs, extOK, "85"+"190100"+bodyOK[4:]), ErrSchema, "nestedPart.disposition"},
		{"unknown cardinality", doc(t, hdr, noRefs, extOK, "83"+"01"+"60"+"04"), ErrUnknownValue, "nestedPart.cardinality"},
		{"single part with 4 items", doc(t, hdr, noRefs, extOK, "84"+"01"+"60"+"01"+"60"), ErrSchema, "nestedPart"},
		{"null part with 4 items", doc(t, hdr, noRefs, extOK, "84"+"01"+"60"+"00"+"60"), ErrSchema, "nestedPart"},
		{"part with 2 items", doc(t, hdr, noRefs, extOK, "82"+"01"+"60"), ErrSchema, "nestedPart"},
		{"content as text", doc(t, hdr, noRefs, extOK, "85"+"01"+"60"+"01"+"60"+"60"), ErrSchema, "nestedPart.content"},
		{"unknown partSemantics", doc(t, hdr, noRefs, extOK, enc(t, multi(3, single("a", nil), single("b", nil)))), ErrUnknownValue, "nestedPart.partSemantics"},
		{"multipart with one part", doc(t, hdr, noRefs, extOK, "85"+"01"+"60"+"03"+"02"+"81"+nullBody), ErrSchema, "nestedPart.parts"},
		{"parts nested 5 deep", doc(t, hdr, noRefs, extOK, enc(t, nest(5))), ErrTooDeep, "nestedPart.parts[0].parts[0].parts[0].parts[0]"},
		{"more than 1024 parts", doc(t, hdr, noRefs, extOK, enc(t, manyParts(1024))), ErrTooLarge, "nestedPart.parts[1023]"},
		{"external: key without encryption", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[7] = 0; v[9] = []byte{}; v[10] = []byte{} })), ErrSchema, "nestedPart.key"},
		{"external: AES-128-GCM key of 15 octets", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[8] = make([]byte, 15) })), ErrSchema, "nestedPart.key"},
		{"external: AES-128-GCM nonce of 16 octets", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[9] = make([]byte, 16) })), ErrSchema, "nestedPart.nonce"},
		{"external: sha-256 hash of 31 octets", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[12] = make([]byte, 31) })), ErrSchema, "nestedPart.contentHash"},
		{"external: hash without algorithm", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[11] = 0 })), ErrSchema, "nestedPart.contentHash"},
		{"external: encAlg over 16 bits", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[7] = 65536 })), ErrSchema, "nestedPart.encAlg"},
		{"external: hashAlg over 8 bits", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[11] = 256 })), ErrSchema, "nestedPart.hashAlg"},
		{"external: expires over 32 bits", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[5] = uint64(1) << 32 })), ErrSchema, "nestedPart.expires"},
		{"external: url as bytes", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[4] = []byte("x") })), ErrSchema, "nestedPart.url"},
	}
	// Cases whose bytes are easier to write out in full.
	fix := map[string][]byte{
		"invalid UTF-8 extension value": withExt(t, "03"+"62c328", 1),
		"extension key 0 reserved":      doc(t, hdr, noRefs, "a3"+"00"+"00"+extOK[2:], bodyOK),
		"integer key below -(2^53-1)":   doc(t, hdr, noRefs, "a3"+extOK[2:]+"3b001fffffffffffff"+"00", bodyOK),
	}
	fixWant := map[string]struct {
		err   error
		field string
	}{
		"invalid UTF-8 extension value": {ErrInvalidUTF8, "mimiExtensions[3]"},
		"extension key 0 reserved":      {ErrExtensionKey, "mimiExtensions key"},
		"integer key below -(2^53-1)":   {ErrExtensionKey, "mimiExtensions key"},
	}
	for _, tc := range cases {
		if b, ok := fix[tc.name]; ok {
			tc.data, tc.want, tc.field = b, fixWant[tc.name].err, fixWant[tc.name].field
		}
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.data)
			if err == nil {
				t.Fatalf("accepted %x", tc.data)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			if tc.field != "" && ve.Field != tc.field {
				t.Errorf("field %q, want %q (error: %v)", ve.Field, tc.field, err)
			}
			if ve.Rule == "" {
				t.Error("empty rule")
			}
		})
	}
}

// TestDecodeAcceptsEdges checks the limits from the accepting side, so the
// rejections above are not met by accident.
func TestDecodeAcceptsEdges(t *testing.T) {
	manyParts := func(n int) any {
		ps := make([]any, n)
		for i := range ps {
			ps[i] = single(TypePlain, []byte{})
		}
		return multi(2, ps...)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"parts nested 4 deep", doc(t, hdr, noRefs, extOK, enc(t, nest(4)))},
		{"exactly 1024 parts", doc(t, hdr, noRefs, extOK, enc(t, manyParts(1023)))},
		{"topicId of 4096 octets", doc(t, hdr, "f6", "591000"+strings.Repeat("00", 4096), "f6f6", extOK, bodyOK)},
		{"extension value nested 4 levels", withExt(t, "1863"+"818181"+"00", 1)},
		{"three tags", withExt(t, "1863"+"d820d820d82060", 1)},
		{"canonical NaN", withExt(t, "03"+"f97e00", 1)[:0]},
		{"half-precision float", withExt(t, "1863"+"f93c00", 1)},
		{"single that needs single", withExt(t, "1863"+"fa47c35000", 1)},
		{"infinity as half", withExt(t, "1863"+"f97c00", 1)},
		{"bignum over 64 bits", withExt(t, "1863"+"c249010000000000000000", 1)},
		{"unknown disposition", doc(t, hdr, noRefs, extOK, "85"+"09"+bodyOK[4:])},
		{"disposition 255", doc(t, hdr, noRefs, extOK, "85"+"18ff"+bodyOK[4:])},
		{"extension value of 5000 octets (-08 removed the limit)", withExt(t, "1863"+"591388"+strings.Repeat("00", 5000), 1)},
		{"text and negative keys", doc(t, hdr, noRefs, "a4"+extOK[2:]+"20"+"00"+"6178"+"00", bodyOK)},
		{"no extensions", doc(t, hdr, noRefs, "a0", bodyOK)},
		{"unknown language and content type", doc(t, hdr, noRefs, extOK, enc(t, []any{1, "xx-unknown", 1, "application/x-what", []byte{1}}))},
		{"senderTimestamp with ns", withExt(t, "03"+"a2"+"01"+"1a62036674"+"28"+"1a3b9ac9ff", 1)},
		{"externalMessageId with URI scope", withExt(t, "04"+"82"+"4101"+"d820"+"6178", 1)},
		{"lastSeen of IDs", withExt(t, "190100"+"82"+id32+id32, 1)},
		{"external part, unencrypted", doc(t, hdr, noRefs, extOK, external(func(v []any) {
			v[7], v[8], v[9], v[11], v[12] = 0, []byte{}, []byte{}, 0, []byte{}
		}))},
		{"external part, unknown AEAD", doc(t, hdr, noRefs, extOK, external(func(v []any) { v[7] = 4711; v[8] = []byte{1} }))},
	}
	cases[5].data = withExt(t, "1863"+"f97e00", 1)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.data)
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			re, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(re, tc.data) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", re, tc.data)
			}
		})
	}
}

func TestCheckTimes(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	abs := func(d time.Duration) *Expiration { return &Expiration{Time: uint32(now.Add(d).Unix())} }
	cases := []struct {
		name    string
		expires *Expiration
		ts      time.Time
		bad     bool
	}{
		{"no expiry", nil, time.Time{}, false},
		{"absolute in an hour", abs(time.Hour), time.Time{}, false},
		{"absolute a month ago", abs(-30 * day), time.Time{}, false},
		{"absolute over a year ago", abs(-366 * day), time.Time{}, true},
		{"absolute over a year ahead", abs(366 * day), time.Time{}, true},
		{"relative one day", &Expiration{Relative: true, Time: 86400}, time.Time{}, false},
		{"relative over a year", &Expiration{Relative: true, Time: 366 * 86400}, time.Time{}, true},
		{"sender timestamp now", nil, now, false},
		{"sender timestamp a minute ahead", nil, now.Add(time.Minute), false},
		{"sender timestamp an hour ahead", nil, now.Add(time.Hour), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &Message{Expires: tc.expires, Body: NestedPart{Body: NullPart{}}}
			if !tc.ts.IsZero() {
				if err := m.Extensions.SetSenderTimestamp(tc.ts); err != nil {
					t.Fatal(err)
				}
			}
			err := m.CheckTimes(now)
			if tc.bad != (err != nil) {
				t.Fatalf("CheckTimes = %v, want error %v", err, tc.bad)
			}
			if err != nil && !errors.Is(err, ErrStale) {
				t.Fatalf("error %v is not ErrStale", err)
			}
		})
	}
	// The draft's expiring example is years old: Decode takes it, CheckTimes
	// refuses it today and accepted it when it was sent.
	m, err := Decode(readVector(t, "expiring"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckTimes(now); !errors.Is(err, ErrStale) {
		t.Errorf("expiring example today: %v, want ErrStale", err)
	}
	if err := m.CheckTimes(time.UnixMilli(1644389403227)); err != nil {
		t.Errorf("expiring example at its hub time: %v", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	ok := NestedPart{Disposition: DispRender, Body: SinglePart{ContentType: TypePlain, Content: []byte("x")}}
	cases := []struct {
		name string
		m    Message
		want error
	}{
		{"nil body", Message{}, ErrSchema},
		{"multipart with one part", Message{Body: NestedPart{Body: MultiPart{Semantics: ProcessAll, Parts: []NestedPart{ok}}}}, ErrSchema},
		{"unknown semantics", Message{Body: NestedPart{Body: MultiPart{Semantics: 7, Parts: []NestedPart{ok, ok}}}}, ErrUnknownValue},
		{"invalid UTF-8 content type", Message{Body: NestedPart{Body: SinglePart{ContentType: "\xff"}}}, ErrInvalidUTF8},
		{"topic too long", Message{TopicID: make([]byte, 4097), Body: ok}, ErrTooLarge},
		{"unencrypted external with key", Message{Body: NestedPart{Body: ExternalPart{Key: []byte{1}}}}, ErrSchema},
	}
	deep := ok
	for i := 0; i < 4; i++ {
		deep = NestedPart{Body: MultiPart{Semantics: ProcessAll, Parts: []NestedPart{deep, ok}}}
	}
	cases = append(cases, struct {
		name string
		m    Message
		want error
	}{"five levels", Message{Body: deep}, ErrTooDeep})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.m.Encode(); !errors.Is(err, tc.want) {
				t.Fatalf("Encode error %v, want %v", err, tc.want)
			}
		})
	}
	var e Extensions
	for _, k := range []ExtensionKey{IntKey(0), TextKey(""), TextKey(strings.Repeat("k", 256)), IntKey(1 << 53)} {
		if err := e.SetRaw(k, []byte{0}); !errors.Is(err, ErrExtensionKey) {
			t.Errorf("SetRaw(%s) = %v, want ErrExtensionKey", k, err)
		}
	}
	if err := e.SetRaw(IntKey(9), []byte{0x81, 0x81, 0x81, 0x81, 0}); !errors.Is(err, ErrTooDeep) {
		t.Errorf("SetRaw deep value = %v", err)
	}
	if err := e.SetSubject(""); !errors.Is(err, ErrSchema) {
		t.Errorf("SetSubject(\"\") = %v", err)
	}
	if err := e.SetRaw(KeySenderURI, []byte{0x01}); !errors.Is(err, ErrSchema) {
		t.Errorf("SetRaw(sender, 1) = %v", err)
	}
}

// TestExtensionsTyped round-trips the typed extension accessors.
func TestExtensionsTyped(t *testing.T) {
	var e Extensions
	ts := time.Date(2026, 11, 26, 10, 0, 0, 123e6, time.UTC)
	steps := []error{
		e.SetRoomURI("mimi://a.example/r/x"),
		e.SetSenderURI("mimi://a.example/u/alice"),
		e.SetSenderTimestamp(ts),
		e.SetExternalMessageID(ExternalID{ID: []byte("$ev:hs"), Domain: "klinik-a.example"}),
		e.SetSubject("Befund"),
		e.SetLastSeen(LastSeen{IDs: []MessageID{{1, 2}}}),
		e.SetRaw(TextKey("x-vendor"), []byte{0xa1, 0x41, 0x61, 0x01}),
		e.SetRaw(IntKey(-7), []byte{0xf5}),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	m := &Message{Extensions: e, Body: NestedPart{Body: NullPart{}}}
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	x := &got.Extensions
	if x.SenderURI() != "mimi://a.example/u/alice" || x.RoomURI() != "mimi://a.example/r/x" {
		t.Errorf("URIs %q %q", x.SenderURI(), x.RoomURI())
	}
	if gt, ok := x.SenderTimestamp(); !ok || !gt.Equal(ts) {
		t.Errorf("timestamp %v %v", gt, ok)
	}
	if id, ok := x.ExternalMessageID(); !ok || string(id.ID) != "$ev:hs" || id.Domain != "klinik-a.example" {
		t.Errorf("external ID %+v", id)
	}
	if s, ok := x.Subject(); !ok || s != "Befund" {
		t.Errorf("subject %q", s)
	}
	if ls, ok := x.LastSeen(); !ok || len(ls.IDs) != 1 || ls.IDs[0] != (MessageID{1, 2}) {
		t.Errorf("lastSeen %+v", ls)
	}
	keys := x.Keys()
	wantOrder := []string{"1", "2", "3", "4", "5", "256", "-7", `"x-vendor"`}
	if len(keys) != len(wantOrder) {
		t.Fatalf("keys %v", keys)
	}
	for i, k := range keys {
		if k.String() != wantOrder[i] {
			t.Errorf("key %d = %s, want %s (bytewise order of encodings)", i, k, wantOrder[i])
		}
	}
	x.Delete(KeySubject)
	if _, ok := x.Subject(); ok {
		t.Error("Delete did not remove the subject")
	}
	// The sender timestamp with ms is {1: s, -3: ms}.
	raw, _ := x.Raw(KeySenderTimestamp)
	var decoded map[int64]uint64
	if err := cbor.Unmarshal(raw, &decoded); err != nil || decoded[1] != uint64(ts.Unix()) || decoded[-3] != 123 {
		t.Errorf("sender timestamp encoding %x (%v)", raw, err)
	}
}
