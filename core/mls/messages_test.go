package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

func init() { vectorLayouts["messages.json"] = testMessagesVectors }

// messageCodecs maps each messages.json field to a decoder that returns a re-encodable value; every
// field must decode with nothing left over and re-encode byte-exactly.
var messageCodecs = map[string]func(b []byte) (func() ([]byte, error), error){
	"mls_welcome":                       mlsMessageOf(WireFormatWelcome),
	"mls_group_info":                    mlsMessageOf(WireFormatGroupInfo),
	"mls_key_package":                   mlsMessageOf(WireFormatKeyPackage),
	"public_message_application":        publicMessageOf(ContentTypeApplication),
	"public_message_proposal":           publicMessageOf(ContentTypeProposal),
	"public_message_commit":             publicMessageOf(ContentTypeCommit),
	"private_message":                   mlsMessageOf(WireFormatPrivateMessage),
	"ratchet_tree":                      bare(func(b []byte) (func() ([]byte, error), error) { t, err := DecodeRatchetTree(b); return t.Encode, err }),
	"group_secrets":                     bare(func(b []byte) (func() ([]byte, error), error) { g, err := decodeGroupSecrets(b); return g.Encode, err }),
	"add_proposal":                      proposalBody(ProposalTypeAdd),
	"update_proposal":                   proposalBody(ProposalTypeUpdate),
	"remove_proposal":                   proposalBody(ProposalTypeRemove),
	"pre_shared_key_proposal":           proposalBody(ProposalTypePSK),
	"re_init_proposal":                  proposalBody(ProposalTypeReInit),
	"external_init_proposal":            proposalBody(ProposalTypeExternalInit),
	"group_context_extensions_proposal": proposalBody(ProposalTypeGroupContextExtensions),
	"commit":                            bare(func(b []byte) (func() ([]byte, error), error) { c, err := DecodeCommit(b); return c.Encode, err }),
}

func bare(f func(b []byte) (func() ([]byte, error), error)) func(b []byte) (func() ([]byte, error), error) {
	return f
}

func mlsMessageOf(wf WireFormat) func(b []byte) (func() ([]byte, error), error) {
	return func(b []byte) (func() ([]byte, error), error) {
		m, err := DecodeMLSMessage(b)
		if err != nil {
			return nil, err
		}
		if m.WireFormat != wf {
			return nil, fmt.Errorf("wire format %s, want %s", m.WireFormat, wf)
		}
		return m.Encode, nil
	}
}

func publicMessageOf(ct ContentType) func(b []byte) (func() ([]byte, error), error) {
	return func(b []byte) (func() ([]byte, error), error) {
		m, err := DecodeMLSMessage(b)
		if err != nil {
			return nil, err
		}
		if m.WireFormat != WireFormatPublicMessage || m.PublicMessage.Content.ContentType != ct {
			return nil, fmt.Errorf("got %s, want a public %s message", m.WireFormat, ct)
		}
		return m.Encode, nil
	}
}

// proposalBody decodes the bare proposal structs (Add, Update, ...) of messages.json.
func proposalBody(pt ProposalType) func(b []byte) (func() ([]byte, error), error) {
	return func(b []byte) (func() ([]byte, error), error) {
		r := tlspl.NewReader(b)
		var p Proposal
		p.UnmarshalBody(r, pt)
		if err := r.Finish(); err != nil {
			return nil, err
		}
		return func() ([]byte, error) {
			var w tlspl.Writer
			p.MarshalBody(&w)
			return w.Bytes()
		}, nil
	}
}

func testMessagesVectors(t *testing.T, raw []byte) {
	var cases []map[string]string
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no vectors")
	}
	checked := map[string]int{}
	for i, c := range cases {
		for field, hx := range c {
			codec, ok := messageCodecs[field]
			if !ok {
				t.Fatalf("case %d: unknown field %q", i, field)
			}
			in, err := hex.DecodeString(hx)
			if err != nil {
				t.Fatalf("case %d %s: %v", i, field, err)
			}
			enc, err := codec(in)
			if err != nil {
				t.Errorf("case %d %s: decode: %v", i, field, err)
				continue
			}
			out, err := enc()
			if err != nil {
				t.Errorf("case %d %s: encode: %v", i, field, err)
				continue
			}
			if !bytes.Equal(out, in) {
				t.Errorf("case %d %s: re-encoding differs\n got %x\nwant %x", i, field, out, in)
				continue
			}
			checked[field]++
		}
	}
	for field := range messageCodecs {
		if checked[field] != len(cases) {
			t.Errorf("%s: %d of %d cases round-tripped", field, checked[field], len(cases))
		}
	}
	t.Logf("messages.json: %d cases x %d structs round-tripped byte-exactly", len(cases), len(messageCodecs))
}
