package mls

// The MLS extensions MIMI depends on (draft-ietf-mls-extensions-10, suggested code points; see
// docs/mls.md "Groups and the member API"): the app_data_dictionary GroupContext extension with
// AppDataUpdate proposals, SelfRemove, external senders, content_media_types with
// ApplicationFraming, and Safe AAD.

import (
	"fmt"
	"slices"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Proposal types of draft-ietf-mls-extensions-10.
const (
	// ProposalTypeAppDataUpdate changes one component of the app_data_dictionary extension.
	ProposalTypeAppDataUpdate ProposalType = 0x0008
	// ProposalTypeSelfRemove removes its sender (committed by another member).
	ProposalTypeSelfRemove ProposalType = 0x000a
)

// ComponentID identifies an application component (mls-extensions-10 §4.6).
type ComponentID uint16

// Component IDs used here.
const (
	// ComponentSafeAAD is the Safe AAD component (in authenticated_data).
	ComponentSafeAAD ComponentID = 0x0002
	// ComponentContentMediaTypes is the content_media_types component.
	ComponentContentMediaTypes ComponentID = 0x0003
	// ComponentLastResortKeyPackage marks a last-resort KeyPackage.
	ComponentLastResortKeyPackage ComponentID = ComponentID(componentLastResort)
)

// maxComponents bounds dictionaries and Safe AAD lists.
const maxComponents = 1024

// ComponentData is one entry of an AppDataDictionary.
type ComponentData struct {
	ID   ComponentID
	Data []byte
}

// AppDataDictionary is the app_data_dictionary extension: component data sorted by ID, one entry
// per ID.
type AppDataDictionary []ComponentData

// Get returns the data of component id.
func (d AppDataDictionary) Get(id ComponentID) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(d, id, func(c ComponentData, id ComponentID) int { return int(c.ID) - int(id) })
	if !ok {
		return nil, false
	}
	return d[i].Data, true
}

// Set returns a copy of d with component id set to data (kept sorted).
func (d AppDataDictionary) Set(id ComponentID, data []byte) AppDataDictionary {
	out := slices.Clone(d)
	i, ok := slices.BinarySearchFunc(out, id, func(c ComponentData, id ComponentID) int { return int(c.ID) - int(id) })
	if ok {
		out[i].Data = data
		return out
	}
	return slices.Insert(out, i, ComponentData{ID: id, Data: data})
}

// Delete returns a copy of d without component id.
func (d AppDataDictionary) Delete(id ComponentID) AppDataDictionary {
	return slices.DeleteFunc(slices.Clone(d), func(c ComponentData) bool { return c.ID == id })
}

// Extension encodes d as the app_data_dictionary extension.
func (d AppDataDictionary) Extension() (Extension, error) {
	var w tlspl.Writer
	writeComponents(&w, d)
	b, err := w.Bytes()
	return Extension{Type: ExtensionAppDataDictionary, Data: b}, err
}

// ParseAppDataDictionary decodes an app_data_dictionary extension body, requiring IDs in strictly
// increasing order.
func ParseAppDataDictionary(b []byte) (AppDataDictionary, error) {
	r := tlspl.NewReader(b)
	d := readComponents(r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: app_data_dictionary: %w", ErrMalformed, err)
	}
	return AppDataDictionary(d), nil
}

// AppData returns the group's app_data_dictionary (empty when the extension is absent).
func (g *publicState) AppData() (AppDataDictionary, error) {
	b, ok := g.ctx.Extensions.Find(ExtensionAppDataDictionary)
	if !ok {
		return nil, nil
	}
	return ParseAppDataDictionary(b)
}

func writeComponents(w *tlspl.Writer, cs []ComponentData) {
	w.Vector(func(w *tlspl.Writer) {
		for _, c := range cs {
			w.Uint16(uint16(c.ID))
			w.Opaque(c.Data)
		}
	})
}

func readComponents(r *tlspl.Reader) []ComponentData {
	var out []ComponentData
	r.ForEach(func(r *tlspl.Reader) {
		c := ComponentData{ID: ComponentID(r.Uint16()), Data: r.OpaqueCopy()}
		if n := len(out); n > 0 && out[n-1].ID >= c.ID {
			r.SetError(fmt.Errorf("component IDs not strictly increasing (0x%04x after 0x%04x)", uint16(c.ID), uint16(out[n-1].ID)))
			return
		}
		if len(out) >= maxComponents {
			r.SetError(fmt.Errorf("more than %d components", maxComponents))
			return
		}
		out = append(out, c)
	})
	return out
}

// AppDataOperation is the operation of an AppDataUpdate.
type AppDataOperation uint8

// AppDataUpdate operations.
const (
	AppDataOpUpdate AppDataOperation = 1
	AppDataOpRemove AppDataOperation = 2
)

// AppDataUpdate is the body of an AppDataUpdate proposal.
type AppDataUpdate struct {
	Component ComponentID
	Op        AppDataOperation
	Update    []byte // op update only
}

// MarshalTLS implements tlspl.Marshaler.
func (u *AppDataUpdate) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(u.Component))
	w.Uint8(uint8(u.Op))
	switch u.Op {
	case AppDataOpUpdate:
		w.Opaque(u.Update)
	case AppDataOpRemove:
	default:
		w.SetError(fmt.Errorf("%w: AppDataUpdate operation %d", ErrUnknownEnum, u.Op))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (u *AppDataUpdate) UnmarshalTLS(r *tlspl.Reader) {
	u.Component = ComponentID(r.Uint16())
	u.Op = AppDataOperation(r.Uint8())
	switch u.Op {
	case AppDataOpUpdate:
		u.Update = r.OpaqueCopy()
	case AppDataOpRemove:
	default:
		r.SetError(fmt.Errorf("%w: AppDataUpdate operation %d", ErrUnknownEnum, u.Op))
	}
}

// AppDataUpdater computes a component's new value from the AppDataUpdate payloads of one commit
// (in commit order). The semantics of an update are the component's (a participant list applies
// a delta, room metadata replaces the value); returning an error rejects the commit.
type AppDataUpdater interface {
	ApplyAppData(id ComponentID, current []byte, present bool, updates [][]byte) ([]byte, error)
}

// ReplaceAppData is the AppDataUpdater used when none is given: the last update replaces the value.
type ReplaceAppData struct{}

// ApplyAppData implements AppDataUpdater.
func (ReplaceAppData) ApplyAppData(_ ComponentID, _ []byte, _ bool, updates [][]byte) ([]byte, error) {
	return updates[len(updates)-1], nil
}

var _ AppDataUpdater = ReplaceAppData{}

// applyAppDataUpdates folds a commit's AppDataUpdate proposals into the extensions.
func applyAppDataUpdates(exts Extensions, list []appliedProposal, up AppDataUpdater) (Extensions, bool, error) {
	var updates []*AppDataUpdate
	for _, ap := range list {
		if ap.proposal.Type == ProposalTypeAppDataUpdate {
			updates = append(updates, ap.proposal.AppDataUpdate)
		}
	}
	if len(updates) == 0 {
		return exts, false, nil
	}
	if up == nil {
		up = ReplaceAppData{}
	}
	var dict AppDataDictionary
	if b, ok := exts.Find(ExtensionAppDataDictionary); ok {
		var err error
		if dict, err = ParseAppDataDictionary(b); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	}
	var order []ComponentID
	byID := map[ComponentID][]*AppDataUpdate{}
	for _, u := range updates {
		if _, seen := byID[u.Component]; !seen {
			order = append(order, u.Component)
		}
		byID[u.Component] = append(byID[u.Component], u)
	}
	for _, id := range order {
		us := byID[id]
		if us[0].Op == AppDataOpRemove {
			if len(us) > 1 {
				return nil, false, fmt.Errorf("%w: component 0x%04x removed and updated in one commit", ErrInvalidProposal, uint16(id))
			}
			if _, ok := dict.Get(id); !ok {
				return nil, false, fmt.Errorf("%w: removing absent component 0x%04x", ErrInvalidProposal, uint16(id))
			}
			dict = dict.Delete(id)
			continue
		}
		payloads := make([][]byte, 0, len(us))
		for _, u := range us {
			if u.Op != AppDataOpUpdate {
				return nil, false, fmt.Errorf("%w: component 0x%04x removed and updated in one commit", ErrInvalidProposal, uint16(id))
			}
			payloads = append(payloads, u.Update)
		}
		cur, ok := dict.Get(id)
		v, err := up.ApplyAppData(id, cur, ok, payloads)
		if err != nil {
			return nil, false, fmt.Errorf("%w: component 0x%04x: %w", ErrInvalidProposal, uint16(id), err)
		}
		dict = dict.Set(id, v)
	}
	ext, err := dict.Extension()
	if err != nil {
		return nil, false, err
	}
	out := slices.DeleteFunc(slices.Clone(exts), func(e Extension) bool { return e.Type == ExtensionAppDataDictionary })
	return append(out, ext), true, nil
}

// ExternalSender is one entry of the external_senders extension (RFC 9420 §12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// ExternalSendersExtension encodes the external_senders GroupContext extension.
func ExternalSendersExtension(senders []ExternalSender) (Extension, error) {
	var w tlspl.Writer
	w.Vector(func(w *tlspl.Writer) {
		for i := range senders {
			w.Opaque(senders[i].SignatureKey)
			senders[i].Credential.MarshalTLS(w)
		}
	})
	b, err := w.Bytes()
	return Extension{Type: ExtensionExternalSenders, Data: b}, err
}

// ParseExternalSenders decodes an external_senders extension body.
func ParseExternalSenders(b []byte) ([]ExternalSender, error) {
	r := tlspl.NewReader(b)
	var out []ExternalSender
	r.ForEach(func(r *tlspl.Reader) {
		var s ExternalSender
		s.SignatureKey = r.OpaqueCopy()
		s.Credential.UnmarshalTLS(r)
		out = append(out, s)
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: external_senders: %w", ErrMalformed, err)
	}
	return out, nil
}

// ExternalProposal signs a proposal as external sender senderIndex of the group's
// external_senders extension (a MIMI hub, for example), for the group's epoch. External senders may
// propose Add, Remove, PreSharedKey, ReInit, GroupContextExtensions and AppDataUpdate.
func ExternalProposal(groupID []byte, epoch uint64, senderIndex uint32, signer *Signer, p *Proposal) (*MLSMessage, error) {
	switch p.Type {
	case ProposalTypeAdd, ProposalTypeRemove, ProposalTypePSK, ProposalTypeReInit, ProposalTypeGroupContextExtensions, ProposalTypeAppDataUpdate:
	default:
		return nil, fmt.Errorf("%w: %s proposal from an external sender", ErrNotAllowed, p.Type)
	}
	s, err := signer.CipherSuite.impl()
	if err != nil {
		return nil, err
	}
	sk, err := s.parseSigningKey(signer.Private)
	if err != nil {
		return nil, err
	}
	fc := &FramedContent{GroupID: groupID, Epoch: epoch, Sender: Sender{Type: SenderTypeExternal, Index: senderIndex},
		ContentType: ContentTypeProposal, Proposal: p}
	ac, err := signContent(s, WireFormatPublicMessage, fc, nil, sk)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage,
		PublicMessage: &PublicMessage{Content: ac.Content, Auth: ac.Auth}}, nil
}

// ProposeSelfRemove sends a SelfRemove proposal: another member commits it, removing this member.
func (g *Group) ProposeSelfRemove() (*MLSMessage, error) {
	m, _, err := g.propose(&Proposal{Type: ProposalTypeSelfRemove})
	return m, err
}

// ProposeAppDataUpdate sends an AppDataUpdate proposal.
func (g *Group) ProposeAppDataUpdate(u AppDataUpdate) (*MLSMessage, error) {
	p := &Proposal{Type: ProposalTypeAppDataUpdate, AppDataUpdate: &u}
	if err := g.checkStandaloneProposal(p, Sender{Type: SenderTypeMember, Index: uint32(g.priv.leaf())}); err != nil {
		return nil, err
	}
	m, _, err := g.propose(p)
	return m, err
}

// MediaType is a media type with parameters (mls-extensions-10 content advertisement).
type MediaType struct {
	Type       string
	Parameters []MediaTypeParameter
}

// MediaTypeParameter is one parameter of a MediaType.
type MediaTypeParameter struct{ Name, Value string }

func (m *MediaType) marshal(w *tlspl.Writer) {
	w.Opaque([]byte(m.Type))
	w.Vector(func(w *tlspl.Writer) {
		for _, p := range m.Parameters {
			w.Opaque([]byte(p.Name))
			w.Opaque([]byte(p.Value))
		}
	})
}

func (m *MediaType) unmarshal(r *tlspl.Reader) {
	m.Type = string(r.Opaque())
	r.ForEach(func(r *tlspl.Reader) {
		m.Parameters = append(m.Parameters, MediaTypeParameter{Name: string(r.Opaque()), Value: string(r.Opaque())})
	})
}

// EncodeContentMediaTypes encodes a content_media_types component body (MediaTypeList).
func EncodeContentMediaTypes(types []MediaType) ([]byte, error) {
	var w tlspl.Writer
	w.Vector(func(w *tlspl.Writer) {
		for i := range types {
			types[i].marshal(w)
		}
	})
	return w.Bytes()
}

// DecodeContentMediaTypes decodes a content_media_types component body.
func DecodeContentMediaTypes(b []byte) ([]MediaType, error) {
	r := tlspl.NewReader(b)
	var out []MediaType
	r.ForEach(func(r *tlspl.Reader) {
		var m MediaType
		m.unmarshal(r)
		out = append(out, m)
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: content_media_types: %w", ErrMalformed, err)
	}
	return out, nil
}

// ApplicationFraming is the framed application_data of a group whose GroupContext carries
// content_media_types: the media type (empty: the group's first type) and the content.
type ApplicationFraming struct {
	MediaType MediaType
	Content   []byte
}

// Encode returns the TLS encoding.
func (a *ApplicationFraming) Encode() ([]byte, error) {
	var w tlspl.Writer
	a.MediaType.marshal(&w)
	w.Opaque(a.Content)
	return w.Bytes()
}

// DecodeApplicationFraming decodes framed application data.
func DecodeApplicationFraming(b []byte) (*ApplicationFraming, error) {
	r := tlspl.NewReader(b)
	a := &ApplicationFraming{}
	a.MediaType.unmarshal(r)
	a.Content = r.OpaqueCopy()
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: ApplicationFraming: %w", ErrMalformed, err)
	}
	return a, nil
}

// SafeAADItem is one item of Safe AAD (mls-extensions-10): component-keyed data in a message's
// authenticated_data.
type SafeAADItem = ComponentData

// EncodeSafeAAD encodes Safe AAD items (sorted by component, unique) as authenticated_data.
func EncodeSafeAAD(items []SafeAADItem) ([]byte, error) {
	sorted := slices.Clone(items)
	slices.SortFunc(sorted, func(a, b SafeAADItem) int { return int(a.ID) - int(b.ID) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].ID == sorted[i-1].ID {
			return nil, fmt.Errorf("%w: Safe AAD component 0x%04x twice", ErrMalformed, uint16(sorted[i].ID))
		}
	}
	var w tlspl.Writer
	writeComponents(&w, sorted)
	return w.Bytes()
}

// DecodeSafeAAD decodes authenticated_data as Safe AAD.
func DecodeSafeAAD(b []byte) ([]SafeAADItem, error) {
	r := tlspl.NewReader(b)
	items := readComponents(r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: Safe AAD: %w", ErrMalformed, err)
	}
	return items, nil
}
