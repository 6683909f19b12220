package content

import (
	"strconv"
)

// Decode parses one mimiContent document. It accepts only deterministic CBOR
// (RFC 8949 §4.2.1) that matches the content-08 CDDL and the restrictions of
// content-08 §6 and the time-independent checks of §9.1; anything else is a
// *ValidationError naming the field and the rule. Time-dependent checks
// (expiry, sender timestamp) are in Message.CheckTimes.
//
// A document Decode accepts re-encodes with Message.Encode to the same
// bytes, but message IDs should still be computed over data as received
// (ComputeID).
func Decode(data []byte) (*Message, error) {
	if len(data) > MaxContentSize {
		return nil, verr("mimiContent", -1, ErrTooLarge, "document of %d octets exceeds the limit of %d", len(data), MaxContentSize)
	}
	d := decoder{r: reader{data: data}}
	m, err := d.message()
	if err != nil {
		return nil, err
	}
	if d.r.off != len(data) {
		return nil, verr("mimiContent", d.r.off, ErrMalformed, "%d trailing bytes after the document", len(data)-d.r.off)
	}
	return m, nil
}

type decoder struct {
	r     reader
	parts int
}

func (d *decoder) message() (*Message, error) {
	r := &d.r
	if _, err := r.arrayHead("mimiContent", 7); err != nil {
		return nil, err
	}
	m := &Message{}
	off := r.off
	salt, err := r.bytesItem("salt")
	if err != nil {
		return nil, err
	}
	if len(salt) != SaltSize {
		return nil, verr("salt", off, ErrSchema, "salt must be exactly %d octets, got %d (content-08 §4.1)", SaltSize, len(salt))
	}
	copy(m.Salt[:], salt)

	if m.Replaces, err = d.optionalID("replaces"); err != nil {
		return nil, err
	}

	off = r.off
	if m.TopicID, err = r.bytesItem("topicId"); err != nil {
		return nil, err
	}
	if len(m.TopicID) > MaxTopicIDSize {
		return nil, verr("topicId", off, ErrTooLarge, "topicId longer than %d octets (content-08 §9.1)", MaxTopicIDSize)
	}

	if !r.peekNull() {
		if _, err := r.arrayHead("expires", 2); err != nil {
			return nil, err
		}
		rel, err := r.boolItem("expires.relative")
		if err != nil {
			return nil, err
		}
		t, err := r.uintItem("expires.time", 1<<32-1, "uint .size 4")
		if err != nil {
			return nil, err
		}
		m.Expires = &Expiration{Relative: rel, Time: uint32(t)}
	}

	if m.InReplyTo, err = d.optionalID("inReplyTo"); err != nil {
		return nil, err
	}
	if err := d.extensions(&m.Extensions); err != nil {
		return nil, err
	}
	if m.Body, err = d.part("nestedPart", 1); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *decoder) optionalID(field string) (*MessageID, error) {
	if d.r.peekNull() {
		return nil, nil
	}
	id, err := readMessageID(&d.r, field)
	if err != nil {
		return nil, err
	}
	return &id, nil
}

func (d *decoder) extensions(e *Extensions) error {
	r := &d.r
	h, err := r.readHead("mimiExtensions")
	if err != nil {
		return err
	}
	if h.major != majorMap {
		return verr("mimiExtensions", h.off, ErrSchema, "expected map, got %s", typeName(h))
	}
	if h.arg > uint64(r.remaining())/2 {
		return verr("mimiExtensions", h.off, ErrMalformed, "map of %d pairs exceeds the remaining input", h.arg)
	}
	var prev []byte
	e.entries = make([]extEntry, 0, min(h.arg, 8))
	for i := uint64(0); i < h.arg; i++ {
		keyOff := r.off
		k, err := d.extensionKey()
		if err != nil {
			return err
		}
		encKey := r.data[keyOff:r.off]
		field := "mimiExtensions[" + k.String() + "]"
		if err := checkKeyOrder(field, keyOff, prev, encKey); err != nil {
			return err
		}
		prev = encKey
		valOff := r.off
		v, err := r.anyItem(field, 2)
		if err != nil {
			return err
		}
		if err := validateKnownExtension(k, v, field, valOff); err != nil {
			return err
		}
		e.entries = append(e.entries, extEntry{key: k, encKey: clone(encKey), value: clone(v)})
	}
	return nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// extensionKey reads a top-level extension key: int within ±(2^53-1) except
// 0, or tstr of 1..255 octets.
func (d *decoder) extensionKey() (ExtensionKey, error) {
	r := &d.r
	const field = "mimiExtensions key"
	h, err := r.readHead(field)
	if err != nil {
		return ExtensionKey{}, err
	}
	switch h.major {
	case majorUint:
		if h.arg == 0 {
			return ExtensionKey{}, verr(field, h.off, ErrExtensionKey, "key 0 is reserved (content-08 §8)")
		}
		if h.arg > maxSafeInt {
			return ExtensionKey{}, verr(field, h.off, ErrExtensionKey, "integer key %d outside ±(2^53-1) (content-08 §6)", h.arg)
		}
		return IntKey(int64(h.arg)), nil
	case majorNeg:
		if h.arg > maxSafeInt-1 {
			return ExtensionKey{}, verr(field, h.off, ErrExtensionKey, "integer key -1-%d outside ±(2^53-1) (content-08 §6)", h.arg)
		}
		return IntKey(-1 - int64(h.arg)), nil
	case majorText:
		b, err := r.stringBody(field, h)
		if err != nil {
			return ExtensionKey{}, err
		}
		if len(b) < 1 || len(b) > 255 {
			return ExtensionKey{}, verr(field, h.off, ErrExtensionKey, "text key of %d octets, must be 1..255 (content-08 §4.3)", len(b))
		}
		return TextKey(string(b)), nil
	}
	return ExtensionKey{}, verr(field, h.off, ErrExtensionKey, "keys must be int or tstr, got %s (content-08 §4.3)", typeName(h))
}

// part decodes a NestedPart at the given depth (the body is depth 1).
func (d *decoder) part(field string, depth int) (NestedPart, error) {
	r := &d.r
	var p NestedPart
	start := r.off
	if depth > MaxPartDepth {
		return p, verr(field, start, ErrTooDeep, "NestedParts nested more than %d levels deep (content-08 §6, §9.1)", MaxPartDepth)
	}
	d.parts++
	if d.parts > MaxParts {
		return p, verr(field, start, ErrTooLarge, "more than %d parts (content-08 §9.1)", MaxParts)
	}
	n, err := r.arrayHead(field, -1)
	if err != nil {
		return p, err
	}
	if n < 3 {
		return p, verr(field, start, ErrSchema, "NestedPart needs at least 3 items, has %d", n)
	}
	disp, err := r.uintItem(field+".disposition", 255, "the disposition range 0..255")
	if err != nil {
		return p, err
	}
	p.Disposition = Disposition(disp)
	if p.Language, err = r.textItem(field + ".language"); err != nil {
		return p, err
	}
	cardOff := r.off
	card, err := r.uintItem(field+".cardinality", 255, "any cardinality")
	if err != nil {
		return p, err
	}
	if card > uint64(CardMulti) {
		return p, verr(field+".cardinality", cardOff, ErrUnknownValue, "unknown cardinality %d (content-08 §9.1)", card)
	}
	if w := [...]int{3, 5, 15, 5}[card]; n != w {
		return p, verr(field, start, ErrSchema, "a %s part has %d items, this one %d", Cardinality(card), w, n)
	}
	switch Cardinality(card) {
	case CardNull:
		p.Body = NullPart{}
	case CardSingle:
		var s SinglePart
		if s.ContentType, err = r.textItem(field + ".contentType"); err != nil {
			return p, err
		}
		if s.Content, err = r.bytesItem(field + ".content"); err != nil {
			return p, err
		}
		p.Body = s
	case CardExternal:
		if p.Body, err = d.external(field); err != nil {
			return p, err
		}
	case CardMulti:
		semOff := r.off
		sem, err := r.uintItem(field+".partSemantics", 255, "any partSemantics")
		if err != nil {
			return p, err
		}
		if sem > uint64(ProcessAll) {
			return p, verr(field+".partSemantics", semOff, ErrUnknownValue, "unknown partSemantics %d (content-08 §9.1)", sem)
		}
		partsOff := r.off
		np, err := r.arrayHead(field+".parts", -1)
		if err != nil {
			return p, err
		}
		if np < 2 {
			return p, verr(field+".parts", partsOff, ErrSchema, "a MultiPart needs at least 2 parts, has %d", np)
		}
		mp := MultiPart{Semantics: PartSemantics(sem), Parts: make([]NestedPart, 0, min(np, 16))}
		for i := 0; i < np; i++ {
			sub, err := d.part(field+".parts["+strconv.Itoa(i)+"]", depth+1)
			if err != nil {
				return p, err
			}
			mp.Parts = append(mp.Parts, sub)
		}
		p.Body = mp
	}
	return p, nil
}

func (d *decoder) external(field string) (ExternalPart, error) {
	r := &d.r
	var x ExternalPart
	var err error
	if x.ContentType, err = r.textItem(field + ".contentType"); err != nil {
		return x, err
	}
	if x.URL, err = r.textItem(field + ".url"); err != nil {
		return x, err
	}
	exp, err := r.uintItem(field+".expires", 1<<32-1, "uint .size 4")
	if err != nil {
		return x, err
	}
	x.Expires = uint32(exp)
	if x.Size, err = r.uintItem(field+".size", 1<<64-1, "uint .size 8"); err != nil {
		return x, err
	}
	encOff := r.off
	enc, err := r.uintItem(field+".encAlg", 1<<16-1, "uint .size 2")
	if err != nil {
		return x, err
	}
	x.EncAlg = uint16(enc)
	keyOff := r.off
	if x.Key, err = r.bytesItem(field + ".key"); err != nil {
		return x, err
	}
	nonceOff := r.off
	if x.Nonce, err = r.bytesItem(field + ".nonce"); err != nil {
		return x, err
	}
	aadOff := r.off
	if x.AAD, err = r.bytesItem(field + ".aad"); err != nil {
		return x, err
	}
	hashOff := r.off
	ha, err := r.uintItem(field+".hashAlg", 255, "uint .size 1")
	if err != nil {
		return x, err
	}
	x.HashAlg = uint8(ha)
	chOff := r.off
	if x.ContentHash, err = r.bytesItem(field + ".contentHash"); err != nil {
		return x, err
	}
	if x.Description, err = r.textItem(field + ".description"); err != nil {
		return x, err
	}
	if x.Filename, err = r.textItem(field + ".filename"); err != nil {
		return x, err
	}
	if err := checkExternal(field, &x, [5]int{encOff, keyOff, nonceOff, aadOff, hashOff}, chOff); err != nil {
		return x, err
	}
	return x, nil
}

// checkExternal enforces the consistency rules of content-08 §4.5: no key
// material without encryption, key and nonce sizes of known AEADs, and a
// hash of the size its algorithm gives. offs are the offsets of encAlg, key,
// nonce, aad and hashAlg; -1 when encoding.
func checkExternal(field string, x *ExternalPart, offs [5]int, chOff int) error {
	if x.EncAlg == AEADNone {
		switch {
		case len(x.Key) != 0:
			return verr(field+".key", offs[1], ErrSchema, "key must be empty when encAlg is 0 (content-08 §4.5)")
		case len(x.Nonce) != 0:
			return verr(field+".nonce", offs[2], ErrSchema, "nonce must be empty when encAlg is 0 (content-08 §4.5)")
		case len(x.AAD) != 0:
			return verr(field+".aad", offs[3], ErrSchema, "aad must be empty when encAlg is 0 (content-08 §4.5)")
		}
	} else if ks, ns, ok := aeadParams(x.EncAlg); ok {
		if len(x.Key) != ks {
			return verr(field+".key", offs[1], ErrSchema, "%s needs a %d-octet key, got %d", aeadName(x.EncAlg), ks, len(x.Key))
		}
		if len(x.Nonce) != ns {
			return verr(field+".nonce", offs[2], ErrSchema, "%s needs a %d-octet nonce, got %d", aeadName(x.EncAlg), ns, len(x.Nonce))
		}
	}
	if x.HashAlg == HashAlgNone {
		if len(x.ContentHash) != 0 {
			return verr(field+".contentHash", chOff, ErrSchema, "contentHash must be empty when hashAlg is 0")
		}
	} else if hs, ok := hashSize(x.HashAlg); ok && len(x.ContentHash) != hs {
		return verr(field+".contentHash", chOff, ErrSchema, "%s gives %d octets, contentHash has %d", hashAlgName(x.HashAlg), hs, len(x.ContentHash))
	}
	return nil
}
