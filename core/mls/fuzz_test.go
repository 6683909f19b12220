package mls

// Fuzz targets for every decoder of the package. Each target checks two properties on arbitrary
// input: decoding never panics, and input that decodes re-encodes to exactly the same bytes (so
// there is one encoding per value and nothing is silently dropped).
//
// Targets that cover several decoders pick one with the first input byte (modulo the number of
// decoders); the seed corpus covers every decoder with the structures of testdata/messages.json.
//
//	go test ./core/mls -run '^$' -fuzz '^FuzzMLSMessage$' -fuzztime 10m -parallel 1

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// fuzzDecoder decodes b and returns a function that re-encodes the decoded value.
type fuzzDecoder struct {
	name   string
	decode func(b []byte) (reencode func() ([]byte, error), err error)
}

func decodeWith[T any, PT interface {
	*T
	tlspl.Unmarshaler
	tlspl.Marshaler
}](name string) fuzzDecoder {
	return fuzzDecoder{name: name, decode: func(b []byte) (func() ([]byte, error), error) {
		v := PT(new(T))
		if err := decode(name, b, v); err != nil {
			return nil, err
		}
		return func() ([]byte, error) { return tlspl.Marshal(v) }, nil
	}}
}

func decodePMC(ct ContentType) fuzzDecoder {
	return fuzzDecoder{name: "PrivateMessageContent/" + ct.String(), decode: func(b []byte) (func() ([]byte, error), error) {
		c, err := decodePrivateMessageContent(b, ct)
		if err != nil {
			return nil, err
		}
		return c.Encode, nil
	}}
}

var (
	// joinDecoders: the structures a joiner decodes.
	joinDecoders = []fuzzDecoder{
		decodeWith[Welcome]("Welcome"),
		decodeWith[groupSecrets]("GroupSecrets"),
		decodeWith[GroupInfo]("GroupInfo"),
		decodeWith[KeyPackage]("KeyPackage"),
		{name: "RatchetTree", decode: func(b []byte) (func() ([]byte, error), error) {
			t, err := DecodeRatchetTree(b)
			if err != nil {
				return nil, err
			}
			return t.Encode, nil
		}},
		decodeWith[LeafNode]("LeafNode"),
	}
	// handshakeDecoders: the structures inside handshake and application messages.
	handshakeDecoders = []fuzzDecoder{
		decodeWith[Proposal]("Proposal"),
		decodeWith[Commit]("Commit"),
		decodePMC(ContentTypeApplication),
		decodePMC(ContentTypeProposal),
		decodePMC(ContentTypeCommit),
		decodeWith[authenticatedContent]("AuthenticatedContent"),
		decodeWith[UpdatePath]("UpdatePath"),
		decodeWith[SenderData]("SenderData"),
	}
	// contextDecoders: the decoders of groupcontext.go and psk.go.
	contextDecoders = []fuzzDecoder{
		decodeWith[GroupContext]("GroupContext"),
		decodeWith[Extensions]("Extensions"),
		decodeWith[PreSharedKeyID]("PreSharedKeyID"),
	}
)

// checkRoundTrip is the property every target checks.
func checkRoundTrip(t *testing.T, d fuzzDecoder, in []byte) {
	reencode, err := d.decode(in)
	if err != nil {
		return
	}
	out, err := reencode()
	if err != nil {
		t.Fatalf("%s: decoded input does not re-encode: %v\ninput %x", d.name, err, in)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("%s: re-encoding differs\n in %x\nout %x", d.name, in, out)
	}
}

// fuzzSelect runs the decoder selected by the first byte on the rest.
func fuzzSelect(t *testing.T, decoders []fuzzDecoder, data []byte) {
	if len(data) == 0 {
		return
	}
	checkRoundTrip(t, decoders[int(data[0])%len(decoders)], data[1:])
}

// seedIndex returns the selector byte of the decoder named name.
func seedIndex(t testing.TB, decoders []fuzzDecoder, name string) byte {
	for i, d := range decoders {
		if d.name == name {
			return byte(i)
		}
	}
	t.Fatalf("no decoder %s", name)
	return 0
}

// fuzzSeeds are structures taken from testdata/messages.json, keyed by decoder name.
func fuzzSeeds(t testing.TB) map[string][][]byte {
	raw, err := os.ReadFile("testdata/messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]string
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][][]byte{}
	add := func(name string, b []byte) { seeds[name] = append(seeds[name], b) }
	enc := func(m tlspl.Marshaler) []byte {
		b, err := tlspl.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	proposalTypes := map[string]ProposalType{
		"add_proposal": ProposalTypeAdd, "update_proposal": ProposalTypeUpdate, "remove_proposal": ProposalTypeRemove,
		"pre_shared_key_proposal": ProposalTypePSK, "re_init_proposal": ProposalTypeReInit,
		"external_init_proposal": ProposalTypeExternalInit, "group_context_extensions_proposal": ProposalTypeGroupContextExtensions,
	}
	const maxCases = 12 // the first cases already cover every structure; more only slow the fuzzer's start
	for i, c := range cases {
		if i == maxCases {
			break
		}
		h := func(field string) []byte {
			b, err := hex.DecodeString(c[field])
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		for _, f := range []string{"mls_welcome", "mls_group_info", "mls_key_package", "public_message_application",
			"public_message_proposal", "public_message_commit", "private_message"} {
			msg := h(f)
			add("MLSMessage", msg)
			m, err := DecodeMLSMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			switch m.WireFormat {
			case WireFormatWelcome:
				add("Welcome", msg[4:])
			case WireFormatGroupInfo:
				add("GroupInfo", msg[4:])
				add("GroupContext", enc(&m.GroupInfo.GroupContext))
				add("Extensions", enc(m.GroupInfo.Extensions))
			case WireFormatKeyPackage:
				add("KeyPackage", msg[4:])
				add("LeafNode", enc(&m.KeyPackage.LeafNode))
			case WireFormatPrivateMessage:
				add("SenderData", m.PrivateMessage.Ciphertext[:min(12, len(m.PrivateMessage.Ciphertext))])
			case WireFormatPublicMessage:
				pm := m.PublicMessage
				ac := &authenticatedContent{WireFormat: WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth}
				add("AuthenticatedContent", enc(ac))
				pmc := &privateMessageContent{ContentType: pm.Content.ContentType, ApplicationData: pm.Content.ApplicationData,
					Proposal: pm.Content.Proposal, Commit: pm.Content.Commit, Auth: pm.Auth, Padding: 3}
				add("PrivateMessageContent/"+pm.Content.ContentType.String(), enc(pmc))
				if pm.Content.Commit != nil && pm.Content.Commit.Path != nil {
					add("UpdatePath", enc(pm.Content.Commit.Path))
				}
			}
		}
		add("RatchetTree", h("ratchet_tree"))
		add("GroupSecrets", h("group_secrets"))
		add("Commit", h("commit"))
		add("LeafNode", h("update_proposal"))
		for field, pt := range proposalTypes {
			var w tlspl.Writer
			w.Uint16(uint16(pt))
			w.Raw(h(field))
			b, _ := w.Bytes()
			add("Proposal", b)
		}
		if gs, err := decodeGroupSecrets(h("group_secrets")); err == nil {
			for i := range gs.PSKs {
				add("PreSharedKeyID", enc(&gs.PSKs[i]))
			}
		}
		if p, err := DecodeProposal(append([]byte{0, byte(ProposalTypePSK)}, h("pre_shared_key_proposal")...)); err == nil {
			add("PreSharedKeyID", enc(p.PSK))
		}
	}
	return seeds
}

// addSeeds adds the seeds of every decoder in decoders, prefixed with its selector byte.
func addSeeds(f *testing.F, decoders []fuzzDecoder) {
	seeds := fuzzSeeds(f)
	for _, d := range decoders {
		if len(seeds[d.name]) == 0 {
			f.Fatalf("no seeds for %s", d.name)
		}
		sel := seedIndex(f, decoders, d.name)
		for _, s := range seeds[d.name] {
			f.Add(append([]byte{sel}, s...))
		}
	}
}

// FuzzMLSMessage drives DecodeMLSMessage, and with it the PublicMessage, PrivateMessage, Welcome,
// GroupInfo and KeyPackage decoders behind the wire-format switch.
func FuzzMLSMessage(f *testing.F) {
	for _, s := range fuzzSeeds(f)["MLSMessage"] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRoundTrip(t, fuzzDecoder{name: "MLSMessage", decode: func(b []byte) (func() ([]byte, error), error) {
			m, err := DecodeMLSMessage(b)
			if err != nil {
				return nil, err
			}
			return m.Encode, nil
		}}, data)
	})
}

// FuzzJoinStructs drives Welcome, GroupSecrets, GroupInfo, KeyPackage, RatchetTree and LeafNode.
func FuzzJoinStructs(f *testing.F) {
	addSeeds(f, joinDecoders)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSelect(t, joinDecoders, data) })
}

// FuzzHandshakeStructs drives Proposal, Commit, PrivateMessageContent (each content type),
// AuthenticatedContent, UpdatePath and SenderData.
func FuzzHandshakeStructs(f *testing.F) {
	addSeeds(f, handshakeDecoders)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSelect(t, handshakeDecoders, data) })
}

// FuzzContextStructs drives the decoders of groupcontext.go and psk.go: GroupContext, Extensions and
// PreSharedKeyID.
func FuzzContextStructs(f *testing.F) {
	addSeeds(f, contextDecoders)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzSelect(t, contextDecoders, data) })
}

// FuzzInspect drives Inspect on arbitrary input (raw or hex): it must never panic, and whatever
// decodes as an MLSMessage must be printed without error. Inspect also tries the bare KeyPackage,
// GroupInfo, Welcome and RatchetTree decoders.
func FuzzInspect(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, name := range []string{"MLSMessage", "KeyPackage", "GroupInfo", "Welcome", "RatchetTree"} {
		for _, s := range seeds[name] {
			f.Add(s)
		}
	}
	f.Add([]byte(hex.EncodeToString(seeds["MLSMessage"][0])))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Inspect(io.Discard, data)
		if _, derr := DecodeMLSMessage(data); derr == nil && err != nil {
			t.Fatalf("Inspect failed on a decodable MLSMessage: %v", err)
		}
	})
}
