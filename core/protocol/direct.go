package protocol

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// The structures of the endpoints two providers use directly, not through a hub (§5.7-5.9):
// consent, identifier queries, and abuse reports to a room's hub.

// Limits of these structures' fields (the drafts set none).
const (
	// MaxSearchValue bounds a QueryElement's value and name (bytes).
	MaxSearchValue = 256
	// MaxProfileField bounds a ProfileField's name and value (bytes).
	MaxProfileField = 1024
	// MaxAbuseNote bounds an AbuseReport's note (bytes).
	MaxAbuseNote = 4096
	// MaxAbusiveContent bounds one reported message's content (bytes).
	MaxAbusiveContent = 1 << 20
	// MaxAppData bounds one AppDataDictionary entry (bytes).
	MaxAppData = 4096
)

// writeAppData writes an AppDataDictionary: ComponentData component_data<V>.
func writeAppData(w *tlspl.Writer, d mls.AppDataDictionary) {
	w.Vector(func(w *tlspl.Writer) {
		for _, c := range d {
			w.Uint16(uint16(c.ID))
			w.Opaque(c.Data)
		}
	})
}

// readAppData reads an AppDataDictionary, bounded by MaxListLength entries of MaxAppData bytes.
func readAppData(r *tlspl.Reader) mls.AppDataDictionary {
	var d mls.AppDataDictionary
	forEachLimited(r, "app data components", func(r *tlspl.Reader) {
		c := mls.ComponentData{ID: mls.ComponentID(r.Uint16())}
		c.Data = readBounded(r, MaxAppData, "app data")
		d = append(d, c)
	})
	return d
}

// readBounded reads opaque<V> of at most limit bytes (a copy).
func readBounded(r *tlspl.Reader, limit int, what string) []byte {
	b := r.OpaqueCopy()
	if r.Err() == nil && len(b) > limit {
		r.SetError(fmt.Errorf("%w: %s of %d bytes (limit %d)", tlspl.ErrTooLarge, what, len(b), limit))
		return nil
	}
	return b
}

// ConsentOperation is what a ConsentEntry does (§5.7).
type ConsentOperation uint8

// Consent operations.
const (
	ConsentCancel  ConsentOperation = 0
	ConsentRequest ConsentOperation = 1
	ConsentGrant   ConsentOperation = 2
	ConsentRevoke  ConsentOperation = 3
)

// String names the operation.
func (o ConsentOperation) String() string {
	switch o {
	case ConsentCancel:
		return "cancel"
	case ConsentRequest:
		return "request"
	case ConsentGrant:
		return "grant"
	case ConsentRevoke:
		return "revoke"
	}
	return fmt.Sprintf("ConsentOperation(%d)", uint8(o))
}

// ConsentEntry is the body of requestConsent (request, cancel) and updateConsent (grant,
// revoke): the operation, the scope (requester, target, optional room) and, for a grant, the
// target's KeyPackages (possibly none).
type ConsentEntry struct {
	Operation ConsentOperation
	Requester IdentifierURI
	Target    IdentifierURI
	// Room is the optional room of the scope ("" when absent).
	Room IdentifierURI
	// KeyPackages are sent with a grant only.
	KeyPackages []*mls.KeyPackage
	Extensions  mls.AppDataDictionary
}

// MarshalTLS implements tlspl.Marshaler.
func (c *ConsentEntry) MarshalTLS(w *tlspl.Writer) {
	if c.Operation > ConsentRevoke {
		w.SetError(fmt.Errorf("%w: consent operation %d", ErrMalformed, c.Operation))
	}
	w.Uint8(uint8(c.Operation))
	c.Requester.MarshalTLS(w)
	c.Target.MarshalTLS(w)
	w.Optional(c.Room != "", func(w *tlspl.Writer) { c.Room.MarshalTLS(w) })
	if c.Operation == ConsentGrant {
		w.Vector(func(w *tlspl.Writer) {
			for _, kp := range c.KeyPackages {
				if kp == nil {
					w.SetError(fmt.Errorf("%w: nil KeyPackage", ErrMalformed))
					return
				}
				kp.MarshalTLS(w)
			}
		})
	} else if len(c.KeyPackages) > 0 {
		w.SetError(fmt.Errorf("%w: KeyPackages with a consent %s", ErrMalformed, c.Operation))
	}
	writeAppData(w, c.Extensions)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (c *ConsentEntry) UnmarshalTLS(r *tlspl.Reader) {
	*c = ConsentEntry{Operation: ConsentOperation(r.Uint8())}
	if r.Err() == nil && c.Operation > ConsentRevoke {
		r.SetError(fmt.Errorf("%w: consent operation %d", ErrMalformed, c.Operation))
		return
	}
	c.Requester.UnmarshalTLS(r)
	c.Target.UnmarshalTLS(r)
	r.Optional(func(r *tlspl.Reader) {
		c.Room.UnmarshalTLS(r)
		if r.Err() == nil && c.Room == "" {
			r.SetError(fmt.Errorf("%w: a present room is empty", ErrMalformed))
		}
	})
	if c.Operation == ConsentGrant {
		forEachLimited(r, "KeyPackages", func(r *tlspl.Reader) {
			kp := new(mls.KeyPackage)
			kp.UnmarshalTLS(r)
			c.KeyPackages = append(c.KeyPackages, kp)
		})
	}
	c.Extensions = readAppData(r)
}

// Encode returns the wire form.
func (c *ConsentEntry) Encode() ([]byte, error) { return encode("ConsentEntry", c) }

// DecodeConsentEntry decodes a requestConsent or updateConsent body.
func DecodeConsentEntry(b []byte) (*ConsentEntry, error) {
	c := new(ConsentEntry)
	if err := decode("ConsentEntry", b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// SearchIdentifierType is the kind of value a QueryElement searches (§5.8).
type SearchIdentifierType uint8

// Search identifier types.
const (
	SearchHandle       SearchIdentifierType = 1
	SearchNick         SearchIdentifierType = 2
	SearchEmail        SearchIdentifierType = 3
	SearchPhone        SearchIdentifierType = 4
	SearchPartialName  SearchIdentifierType = 5
	SearchWholeProfile SearchIdentifierType = 6
	SearchOIDCStdClaim SearchIdentifierType = 7
	SearchVCardField   SearchIdentifierType = 8
)

var searchTypeNames = map[SearchIdentifierType]string{SearchHandle: "handle", SearchNick: "nick", SearchEmail: "email",
	SearchPhone: "phone", SearchPartialName: "partialName", SearchWholeProfile: "wholeProfile",
	SearchOIDCStdClaim: "oidcStdClaim", SearchVCardField: "vcardField"}

// String names the type as the draft does.
func (t SearchIdentifierType) String() string {
	if s, ok := searchTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("SearchIdentifierType(%d)", uint8(t))
}

// ParseSearchType returns the type the draft names s ("handle", "email", ...).
func ParseSearchType(s string) (SearchIdentifierType, bool) {
	for t, n := range searchTypeNames {
		if n == s {
			return t, true
		}
	}
	return 0, false
}

// QueryElement is one condition of an identifier query: a type, for oidcStdClaim and vcardField
// the claim or property name, and the value searched (UTF-8).
type QueryElement struct {
	Type SearchIdentifierType
	// Name is the claimName (oidcStdClaim) or propertyName (vcardField); empty otherwise.
	Name  string
	Value string
}

// hasName reports whether the element carries a claim or property name. Reading R30: the
// select has cases for oidcStdClaim and vcardField only; every other value, reserved(0) and
// values the draft does not define included, carries none, so such an element still decodes and
// the receiver answers unsupportedField instead of failing the request.
func (t SearchIdentifierType) hasName() bool { return t == SearchOIDCStdClaim || t == SearchVCardField }

// MarshalTLS implements tlspl.Marshaler.
func (q *QueryElement) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(q.Type))
	if q.Type.hasName() {
		writeString(w, q.Name)
	} else if q.Name != "" {
		w.SetError(fmt.Errorf("%w: a name with search type %s", ErrMalformed, q.Type))
	}
	writeString(w, q.Value)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (q *QueryElement) UnmarshalTLS(r *tlspl.Reader) {
	*q = QueryElement{Type: SearchIdentifierType(r.Uint8())}
	if q.Type.hasName() {
		q.Name = readString(r, MaxSearchValue)
	}
	q.Value = readString(r, MaxSearchValue)
}

// IdentifierRequest is the body of identifierQuery: conditions that must all match.
type IdentifierRequest struct {
	Elements   []QueryElement
	Extensions mls.AppDataDictionary
}

// MarshalTLS implements tlspl.Marshaler.
func (q *IdentifierRequest) MarshalTLS(w *tlspl.Writer) {
	w.Vector(func(w *tlspl.Writer) {
		for i := range q.Elements {
			q.Elements[i].MarshalTLS(w)
		}
	})
	writeAppData(w, q.Extensions)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (q *IdentifierRequest) UnmarshalTLS(r *tlspl.Reader) {
	*q = IdentifierRequest{}
	forEachLimited(r, "query elements", func(r *tlspl.Reader) {
		var e QueryElement
		e.UnmarshalTLS(r)
		q.Elements = append(q.Elements, e)
	})
	q.Extensions = readAppData(r)
}

// Encode returns the wire form.
func (q *IdentifierRequest) Encode() ([]byte, error) { return encode("IdentifierRequest", q) }

// DecodeIdentifierRequest decodes an identifierQuery body.
func DecodeIdentifierRequest(b []byte) (*IdentifierRequest, error) {
	q := new(IdentifierRequest)
	if err := decode("IdentifierRequest", b, q); err != nil {
		return nil, err
	}
	return q, nil
}

// IdentifierQueryCode is the outcome of an identifier query.
type IdentifierQueryCode uint8

// Identifier query codes.
const (
	IdentifierSuccess          IdentifierQueryCode = 0
	IdentifierNotFound         IdentifierQueryCode = 1
	IdentifierAmbiguous        IdentifierQueryCode = 2
	IdentifierForbidden        IdentifierQueryCode = 3
	IdentifierUnsupportedField IdentifierQueryCode = 4
)

// String names the code as the draft does.
func (c IdentifierQueryCode) String() string {
	switch c {
	case IdentifierSuccess:
		return "success"
	case IdentifierNotFound:
		return "notFound"
	case IdentifierAmbiguous:
		return "ambiguous"
	case IdentifierForbidden:
		return "forbidden"
	case IdentifierUnsupportedField:
		return "unsupportedField"
	}
	return fmt.Sprintf("IdentifierQueryCode(%d)", uint8(c))
}

// FieldSource says which naming a ProfileField's name follows: oidcStdClaim(7) or
// vcardField(8).
type FieldSource uint8

// Field sources.
const (
	FieldOIDCStdClaim FieldSource = 7
	FieldVCardField   FieldSource = 8
)

// ProfileField is one published field of a found user.
type ProfileField struct {
	Source FieldSource
	Name   string
	Value  []byte
}

// UserProfile is a found user: her stable URI and the fields published about her.
type UserProfile struct {
	StableURI IdentifierURI
	Fields    []ProfileField
}

// IdentifierResponse answers an identifier query.
type IdentifierResponse struct {
	Code       IdentifierQueryCode
	URIs       []IdentifierURI
	Profiles   []UserProfile
	Extensions mls.AppDataDictionary
}

// MarshalTLS implements tlspl.Marshaler.
func (q *IdentifierResponse) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(q.Code))
	w.Vector(func(w *tlspl.Writer) {
		for _, u := range q.URIs {
			u.MarshalTLS(w)
		}
	})
	w.Vector(func(w *tlspl.Writer) {
		for _, p := range q.Profiles {
			p.StableURI.MarshalTLS(w)
			w.Vector(func(w *tlspl.Writer) {
				for _, f := range p.Fields {
					w.Uint8(uint8(f.Source))
					writeString(w, f.Name)
					w.Opaque(f.Value)
				}
			})
		}
	})
	writeAppData(w, q.Extensions)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (q *IdentifierResponse) UnmarshalTLS(r *tlspl.Reader) {
	*q = IdentifierResponse{Code: IdentifierQueryCode(r.Uint8())}
	forEachLimited(r, "URIs", func(r *tlspl.Reader) {
		var u IdentifierURI
		u.UnmarshalTLS(r)
		q.URIs = append(q.URIs, u)
	})
	forEachLimited(r, "profiles", func(r *tlspl.Reader) {
		var p UserProfile
		p.StableURI.UnmarshalTLS(r)
		forEachLimited(r, "profile fields", func(r *tlspl.Reader) {
			f := ProfileField{Source: FieldSource(r.Uint8())}
			f.Name = readString(r, MaxProfileField)
			f.Value = readBounded(r, MaxProfileField, "profile field")
			p.Fields = append(p.Fields, f)
		})
		q.Profiles = append(q.Profiles, p)
	})
	q.Extensions = readAppData(r)
}

// Encode returns the wire form.
func (q *IdentifierResponse) Encode() ([]byte, error) { return encode("IdentifierResponse", q) }

// DecodeIdentifierResponse decodes an identifierQuery answer.
func DecodeIdentifierResponse(b []byte) (*IdentifierResponse, error) {
	q := new(IdentifierResponse)
	if err := decode("IdentifierResponse", b, q); err != nil {
		return nil, err
	}
	return q, nil
}

// AbusiveMessage is one reported message: its decrypted MIMI content, the hub's frank and the
// time the hub accepted it.
type AbusiveMessage struct {
	Content           []byte
	Frank             Frank
	AcceptedTimestamp uint64
}

// AbuseReport is the body of reportAbuse (§5.9). Reading R31: AbuseType is a uint8 enum (the
// draft defines only reserved(0) and no width).
type AbuseReport struct {
	Reporter IdentifierURI
	Accused  IdentifierURI
	Reason   uint8
	Note     string
	Messages []AbusiveMessage
	// Extensions is abuse_extensions.
	Extensions mls.AppDataDictionary
}

// MarshalTLS implements tlspl.Marshaler.
func (a *AbuseReport) MarshalTLS(w *tlspl.Writer) {
	a.Reporter.MarshalTLS(w)
	a.Accused.MarshalTLS(w)
	w.Uint8(a.Reason)
	writeString(w, a.Note)
	w.Vector(func(w *tlspl.Writer) {
		for i := range a.Messages {
			m := &a.Messages[i]
			w.Opaque(m.Content)
			m.Frank.MarshalTLS(w)
			w.Uint64(m.AcceptedTimestamp)
		}
	})
	writeAppData(w, a.Extensions)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (a *AbuseReport) UnmarshalTLS(r *tlspl.Reader) {
	*a = AbuseReport{}
	a.Reporter.UnmarshalTLS(r)
	a.Accused.UnmarshalTLS(r)
	a.Reason = r.Uint8()
	a.Note = readString(r, MaxAbuseNote)
	forEachLimited(r, "reported messages", func(r *tlspl.Reader) {
		var m AbusiveMessage
		m.Content = readBounded(r, MaxAbusiveContent, "reported message")
		m.Frank.UnmarshalTLS(r)
		m.AcceptedTimestamp = r.Uint64()
		a.Messages = append(a.Messages, m)
	})
	a.Extensions = readAppData(r)
}

// Encode returns the wire form.
func (a *AbuseReport) Encode() ([]byte, error) { return encode("AbuseReport", a) }

// DecodeAbuseReport decodes a reportAbuse body.
func DecodeAbuseReport(b []byte) (*AbuseReport, error) {
	a := new(AbuseReport)
	if err := decode("AbuseReport", b, a); err != nil {
		return nil, err
	}
	return a, nil
}
