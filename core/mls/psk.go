package mls

// Pre-shared keys (RFC 9420 §8.4): PreSharedKeyID and the psk_secret computation.

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// PSKType is the type of a pre-shared key.
type PSKType uint8

// PSK types of RFC 9420 §8.4.
const (
	PSKTypeExternal   PSKType = 1
	PSKTypeResumption PSKType = 2
)

// ResumptionPSKUsage says why a resumption PSK is used.
type ResumptionPSKUsage uint8

// Resumption PSK usages of RFC 9420 §8.4.
const (
	ResumptionPSKUsageApplication ResumptionPSKUsage = 1
	ResumptionPSKUsageReinit      ResumptionPSKUsage = 2
	ResumptionPSKUsageBranch      ResumptionPSKUsage = 3
)

// PreSharedKeyID identifies a PSK (RFC 9420 §8.4). For PSKTypeExternal only PSKID is used; for
// PSKTypeResumption Usage, PSKGroupID and PSKEpoch are.
type PreSharedKeyID struct {
	PSKType    PSKType
	PSKID      []byte // external
	Usage      ResumptionPSKUsage
	PSKGroupID []byte
	PSKEpoch   uint64
	PSKNonce   []byte
}

// MarshalTLS implements tlspl.Marshaler. An unknown PSKType sets the writer's error.
func (p *PreSharedKeyID) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(p.PSKType))
	switch p.PSKType {
	case PSKTypeExternal:
		w.Opaque(p.PSKID)
	case PSKTypeResumption:
		w.Uint8(uint8(p.Usage))
		w.Opaque(p.PSKGroupID)
		w.Uint64(p.PSKEpoch)
	default:
		w.SetError(fmt.Errorf("%w: PSK type %d", tlspl.ErrInvalid, p.PSKType))
		return
	}
	w.Opaque(p.PSKNonce)
}

// UnmarshalTLS implements tlspl.Unmarshaler. Unknown PSK types and resumption usages are errors.
func (p *PreSharedKeyID) UnmarshalTLS(r *tlspl.Reader) {
	p.PSKType = PSKType(r.Uint8())
	switch p.PSKType {
	case PSKTypeExternal:
		p.PSKID = r.OpaqueCopy()
	case PSKTypeResumption:
		p.Usage = ResumptionPSKUsage(r.Uint8())
		if r.Err() == nil && (p.Usage < ResumptionPSKUsageApplication || p.Usage > ResumptionPSKUsageBranch) {
			r.SetError(fmt.Errorf("%w: resumption PSK usage %d", tlspl.ErrInvalid, p.Usage))
			return
		}
		p.PSKGroupID = r.OpaqueCopy()
		p.PSKEpoch = r.Uint64()
	default:
		if r.Err() == nil {
			r.SetError(fmt.Errorf("%w: PSK type %d", tlspl.ErrInvalid, p.PSKType))
		}
		return
	}
	p.PSKNonce = r.OpaqueCopy()
}

var (
	_ tlspl.Marshaler   = (*PreSharedKeyID)(nil)
	_ tlspl.Unmarshaler = (*PreSharedKeyID)(nil)
)

// pskInput pairs a PSK's identifier with its secret value.
type pskInput struct {
	id  PreSharedKeyID
	psk []byte
}

// maxPSKs bounds the number of PSKs one commit may inject (PSKLabel counts them in a uint16).
const maxPSKs = 0xffff

// pskSecret computes psk_secret from the PSKs in the order they appear in the commit (RFC 9420 §8.4):
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel{id, i, n}, Nh)
//	psk_secret_[i+1]  = KDF.Extract(psk_input_[i], psk_secret_[i]),   psk_secret_[0] = 0
//
// With no PSKs the result is the all-zero psk_secret.
func (s *suite) pskSecret(psks []pskInput) ([]byte, error) {
	if len(psks) > maxPSKs {
		return nil, fmt.Errorf("mls: %d PSKs, at most %d", len(psks), maxPSKs)
	}
	secret := make([]byte, s.nh)
	for i, p := range psks {
		var w tlspl.Writer
		p.id.MarshalTLS(&w)
		w.Uint16(uint16(i))
		w.Uint16(uint16(len(psks)))
		label, err := w.Bytes()
		if err != nil {
			return nil, fmt.Errorf("mls: PSKLabel %d: %w", i, err)
		}
		extracted := s.extract(nil, p.psk)
		input := s.expandWithLabel(extracted, "derived psk", label, s.nh)
		next := s.extract(input, secret)
		zero(extracted)
		zero(input)
		zero(secret)
		secret = next
	}
	return secret, nil
}
