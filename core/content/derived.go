package content

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// DerivedValues are the values a receiver knows about a message without
// reading them from its content (content-08 §4.6, MessageDerivedValues). They
// are a descriptive model; the CBOR form exists for the draft's example and
// for logs.
type DerivedValues struct {
	MessageID MessageID
	// HubAccepted is the hub's acceptance timestamp (millisecond
	// precision); it orders messages.
	HubAccepted time.Time
	// HubAcceptedExtended holds the raw RFC 9581 extended time (tag 1001)
	// when the timestamp came in that form; HubAccepted is then zero.
	HubAcceptedExtended []byte
	MLSGroupID          []byte
	SenderLeafIndex     uint32
	SenderClientURL     string
	SenderUserURL       string
	RoomURL             string
}

// DecodeDerived parses a MessageDerivedValues array.
func DecodeDerived(data []byte) (*DerivedValues, error) {
	if len(data) > MaxContentSize {
		return nil, verr("MessageDerivedValues", -1, ErrTooLarge, "%d octets exceeds the limit", len(data))
	}
	r := reader{data: data}
	var d DerivedValues
	var err error
	if _, err = r.arrayHead("MessageDerivedValues", 7); err != nil {
		return nil, err
	}
	if d.MessageID, err = readMessageID(&r, "messageId"); err != nil {
		return nil, err
	}
	if r.off < len(data) && data[r.off]>>5 == majorTag {
		start := r.off
		h, _ := r.readHead("hubAcceptedTimestamp")
		if h.arg != 1001 {
			return nil, verr("hubAcceptedTimestamp", start, ErrSchema, "expected uint or tag 1001, got tag %d", h.arg)
		}
		r.off = start
		raw, err := r.anyItem("hubAcceptedTimestamp", 1)
		if err != nil {
			return nil, err
		}
		d.HubAcceptedExtended = clone(raw)
	} else {
		ms, err := r.uintItem("hubAcceptedTimestamp", 1<<63-1, "int64 milliseconds")
		if err != nil {
			return nil, err
		}
		d.HubAccepted = time.UnixMilli(int64(ms)).UTC()
	}
	if d.MLSGroupID, err = r.bytesItem("mlsGroupId"); err != nil {
		return nil, err
	}
	li, err := r.uintItem("senderLeafIndex", 1<<32-1, "uint .size 4")
	if err != nil {
		return nil, err
	}
	d.SenderLeafIndex = uint32(li)
	for _, f := range []struct {
		name string
		dst  *string
	}{{"senderClientUrl", &d.SenderClientURL}, {"senderUserUrl", &d.SenderUserURL}, {"roomUrl", &d.RoomURL}} {
		if *f.dst, err = r.textItem(f.name); err != nil {
			return nil, err
		}
	}
	if r.off != len(data) {
		return nil, verr("MessageDerivedValues", r.off, ErrMalformed, "trailing bytes")
	}
	return &d, nil
}

// Encode writes the derived values as deterministic CBOR.
func (d *DerivedValues) Encode() ([]byte, error) {
	var ts any
	if d.HubAcceptedExtended != nil {
		ts = cbor.RawMessage(d.HubAcceptedExtended)
	} else {
		if d.HubAccepted.UnixMilli() < 0 {
			return nil, verr("hubAcceptedTimestamp", -1, ErrSchema, "timestamp before 1970")
		}
		ts = uint64(d.HubAccepted.UnixMilli())
	}
	for _, s := range []string{d.SenderClientURL, d.SenderUserURL, d.RoomURL} {
		if err := checkText("MessageDerivedValues", s); err != nil {
			return nil, err
		}
	}
	out, err := encMode.Marshal([]any{d.MessageID[:], ts, nonNil(d.MLSGroupID), d.SenderLeafIndex, d.SenderClientURL, d.SenderUserURL, d.RoomURL})
	if err != nil {
		return nil, fmt.Errorf("encode derived values: %w", err)
	}
	return out, nil
}

// IndexedPart is a NestedPart with its implied part index: zero-based,
// depth-first, the body being part 0 (content-08 §4.4).
type IndexedPart struct {
	Index int
	// Depth is 1 for the body.
	Depth int
	Part  *NestedPart
}

// Parts lists every part of the body in implied-index order.
func (m *Message) Parts() []IndexedPart {
	var out []IndexedPart
	var walk func(p *NestedPart, depth int)
	walk = func(p *NestedPart, depth int) {
		out = append(out, IndexedPart{Index: len(out), Depth: depth, Part: p})
		if mp, ok := p.Body.(MultiPart); ok {
			for i := range mp.Parts {
				walk(&mp.Parts[i], depth+1)
			}
		}
	}
	walk(&m.Body, 1)
	return out
}

// CIDRef returns the reference a container part (HTML, markdown, ...) uses
// to point at the part with the given implied index:
// "cid:<index>@local.invalid" (content-08 §4.4, RFC 2392).
func CIDRef(index int) string { return "cid:" + strconv.Itoa(index) + "@local.invalid" }

var cidPattern = regexp.MustCompile(`cid:([0-9]{1,4})@local\.invalid`)

// ParseCIDRef parses a cid: reference made by CIDRef.
func ParseCIDRef(ref string) (int, bool) {
	m := cidPattern.FindStringSubmatch(ref)
	if m == nil || m[0] != ref {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// ResolveCID returns the part a cid: reference points at. Only SingleParts
// and ExternalParts may be referenced (content-08 §4.4).
func (m *Message) ResolveCID(ref string) (*NestedPart, error) {
	idx, ok := ParseCIDRef(ref)
	if !ok {
		return nil, fmt.Errorf("resolve %q: not a cid:<index>@local.invalid reference", ref)
	}
	parts := m.Parts()
	if idx >= len(parts) {
		return nil, fmt.Errorf("resolve %q: message has only %d parts", ref, len(parts))
	}
	p := parts[idx].Part
	switch p.Body.(type) {
	case SinglePart, ExternalPart:
		return p, nil
	}
	return nil, fmt.Errorf("resolve %q: part %d is a %s part; only single and external parts can be referenced", ref, idx, p.Body.Cardinality())
}

// Chooser picks one alternative of a chooseOne MultiPart, returning its
// position in mp.Parts.
type Chooser func(mp MultiPart) int

// PreferTypes returns a Chooser that takes the first part whose content type
// (without parameters) matches one of the given media types, in order of
// preference, and otherwise the first part.
func PreferTypes(types ...string) Chooser {
	return func(mp MultiPart) int {
		for _, t := range types {
			for i, p := range mp.Parts {
				if ct := partContentType(p); ct != "" && strings.EqualFold(mediaTypeOnly(ct), mediaTypeOnly(t)) {
					return i
				}
			}
		}
		return 0
	}
}

func partContentType(p NestedPart) string {
	switch b := p.Body.(type) {
	case SinglePart:
		return b.ContentType
	case ExternalPart:
		return b.ContentType
	}
	return ""
}

func mediaTypeOnly(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// Renderable returns the leaf parts a receiver handles, in order, following
// content-08 §4.4: resolve chooseOne alternatives from the root with choose
// (nil picks the first), then take the remaining parts depth-first, skipping
// any part that an earlier handled part references with a cid: URL.
func (m *Message) Renderable(choose Chooser) []IndexedPart {
	if choose == nil {
		choose = func(MultiPart) int { return 0 }
	}
	all := m.Parts()
	byPtr := make(map[*NestedPart]int, len(all))
	for _, ip := range all {
		byPtr[ip.Part] = ip.Index
	}
	var leaves []IndexedPart
	var walk func(p *NestedPart, depth int)
	walk = func(p *NestedPart, depth int) {
		mp, ok := p.Body.(MultiPart)
		if !ok {
			leaves = append(leaves, IndexedPart{Index: byPtr[p], Depth: depth, Part: p})
			return
		}
		if mp.Semantics == ChooseOne {
			i := choose(mp)
			if i < 0 || i >= len(mp.Parts) {
				i = 0
			}
			walk(&mp.Parts[i], depth+1)
			return
		}
		for i := range mp.Parts {
			walk(&mp.Parts[i], depth+1)
		}
	}
	walk(&m.Body, 1)
	referenced := map[int]bool{}
	out := leaves[:0:0]
	for _, lp := range leaves {
		if referenced[lp.Index] {
			continue
		}
		out = append(out, lp)
		if sp, ok := lp.Part.Body.(SinglePart); ok {
			for _, mm := range cidPattern.FindAllSubmatch(sp.Content, -1) {
				if n, err := strconv.Atoi(string(mm[1])); err == nil {
					referenced[n] = true
				}
			}
		}
	}
	return out
}
