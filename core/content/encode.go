package content

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// encMode writes RFC 8949 §4.2.1 Core Deterministic CBOR: shortest
// integers, lengths and floats, definite lengths, map keys in bytewise order
// of their encoding (never the RFC 7049 length-first order).
var encMode = func() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	opts.Sort = cbor.SortBytewiseLexical
	em, err := opts.EncMode()
	if err != nil {
		panic("content: invalid CBOR encoding options: " + err.Error())
	}
	return em
}()

// Encode writes the message as deterministic CBOR. It refuses messages that
// Decode would reject (a nil body, a MultiPart with fewer than two parts,
// invalid UTF-8, too many parts, ...), with a *ValidationError.
func (m *Message) Encode() ([]byte, error) {
	v, err := m.cborValue()
	if err != nil {
		return nil, err
	}
	out, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode mimi content: %w", err)
	}
	if len(out) > MaxContentSize {
		return nil, verr("mimiContent", -1, ErrTooLarge, "document of %d octets exceeds the limit of %d", len(out), MaxContentSize)
	}
	return out, nil
}

func (m *Message) cborValue() ([]any, error) {
	topic := m.TopicID
	if topic == nil {
		topic = []byte{}
	}
	if len(topic) > MaxTopicIDSize {
		return nil, verr("topicId", -1, ErrTooLarge, "topicId longer than %d octets (content-08 §9.1)", MaxTopicIDSize)
	}
	var expires any
	if m.Expires != nil {
		expires = []any{m.Expires.Relative, m.Expires.Time}
	}
	ext := make(map[any]cbor.RawMessage, len(m.Extensions.entries))
	for _, en := range m.Extensions.entries {
		if en.key.isText {
			ext[en.key.text] = en.value
		} else {
			ext[en.key.num] = en.value
		}
	}
	parts := 0
	body, err := partValue("nestedPart", m.Body, 1, &parts)
	if err != nil {
		return nil, err
	}
	return []any{m.Salt[:], idValue(m.Replaces), topic, expires, idValue(m.InReplyTo), ext, body}, nil
}

func idValue(id *MessageID) any {
	if id == nil {
		return nil
	}
	return id[:]
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return verr(field, -1, ErrInvalidUTF8, "text strings must be valid UTF-8 (content-08 §6)")
	}
	return nil
}

func partValue(field string, p NestedPart, depth int, parts *int) ([]any, error) {
	if depth > MaxPartDepth {
		return nil, verr(field, -1, ErrTooDeep, "NestedParts nested more than %d levels deep (content-08 §6, §9.1)", MaxPartDepth)
	}
	*parts++
	if *parts > MaxParts {
		return nil, verr(field, -1, ErrTooLarge, "more than %d parts (content-08 §9.1)", MaxParts)
	}
	if err := checkText(field+".language", p.Language); err != nil {
		return nil, err
	}
	head := []any{uint8(p.Disposition), p.Language}
	switch b := p.Body.(type) {
	case NullPart:
		return append(head, CardNull), nil
	case SinglePart:
		if err := checkText(field+".contentType", b.ContentType); err != nil {
			return nil, err
		}
		return append(head, CardSingle, b.ContentType, nonNil(b.Content)), nil
	case ExternalPart:
		for _, f := range []struct{ name, s string }{{"contentType", b.ContentType}, {"url", b.URL}, {"description", b.Description}, {"filename", b.Filename}} {
			if err := checkText(field+"."+f.name, f.s); err != nil {
				return nil, err
			}
		}
		if err := checkExternal(field, &b, [5]int{-1, -1, -1, -1, -1}, -1); err != nil {
			return nil, err
		}
		return append(head, CardExternal, b.ContentType, b.URL, b.Expires, b.Size, b.EncAlg,
			nonNil(b.Key), nonNil(b.Nonce), nonNil(b.AAD), b.HashAlg, nonNil(b.ContentHash), b.Description, b.Filename), nil
	case MultiPart:
		if b.Semantics > ProcessAll {
			return nil, verr(field+".partSemantics", -1, ErrUnknownValue, "unknown partSemantics %d", b.Semantics)
		}
		if len(b.Parts) < 2 {
			return nil, verr(field+".parts", -1, ErrSchema, "a MultiPart needs at least 2 parts, has %d", len(b.Parts))
		}
		sub := make([]any, len(b.Parts))
		for i, c := range b.Parts {
			v, err := partValue(field+".parts["+strconv.Itoa(i)+"]", c, depth+1, parts)
			if err != nil {
				return nil, err
			}
			sub[i] = v
		}
		return append(head, CardMulti, b.Semantics, sub), nil
	case nil:
		return nil, verr(field, -1, ErrSchema, "NestedPart has no body")
	default:
		return nil, verr(field, -1, ErrSchema, "unsupported part body %T", b)
	}
}
