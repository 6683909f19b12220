package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

type codec struct {
	name   string
	value  interface{ Encode() ([]byte, error) }
	decode func([]byte) (any, error)
}

func wrap[T any](f func([]byte) (T, error)) func([]byte) (any, error) {
	return func(b []byte) (any, error) { return f(b) }
}

func signedKeyMaterialRequest(t testing.TB, f *fixtures) *KeyMaterialRequest {
	t.Helper()
	req := &KeyMaterialRequest{
		Protocol:               ProtocolMLS10,
		RequestingUser:         "mimi://a.example/u/alice",
		TargetUser:             "mimi://b.example/u/bob",
		RoomID:                 "mimi://a.example/r/clubhouse",
		AcceptableCipherSuites: []mls.CipherSuite{f.suite, mls.MLS128DHKEMP256AES128GCMSHA256P256},
		RequiredCapabilities: RequiredCapabilities{
			ExtensionTypes:  []mls.ExtensionType{mls.ExtensionAppDataDictionary},
			ProposalTypes:   []mls.ProposalType{8},
			CredentialTypes: []mls.CredentialType{mls.CredentialTypeBasic},
		},
		RequesterSignatureKey: f.aliceSigner.Public,
		RequesterCredential:   f.aliceCred,
	}
	if err := req.Sign(f.aliceSigner.Private); err != nil {
		t.Fatal(err)
	}
	return req
}

func signedGroupInfoRequest(t testing.TB, f *fixtures, code []byte) (*GroupInfoRequest, []byte) {
	t.Helper()
	priv, pub, err := f.suite.GenerateHPKEKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	req := &GroupInfoRequest{
		CipherSuite: f.suite, RequestingSignatureKey: f.aliceSigner.Public, RequestingCredential: f.aliceCred,
		GroupInfoPublicKey: pub, JoiningCode: code,
	}
	if err := req.Sign(f.aliceSigner.Private); err != nil {
		t.Fatal(err)
	}
	return req, priv
}

func allCodecs(t testing.TB) []codec {
	f := getFixtures(t)
	frank := &Frank{FrankingSignatureCipherSuite: f.suite, FrankingIntegritySignature: []byte("signature")}
	copy(frank.ServerFrank[:], bytes.Repeat([]byte{0xab}, 32))
	welcomeMsg := &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: f.welcome}
	gir, _ := signedGroupInfoRequest(t, f, []byte("join-code"))
	hubSigner, err := mls.GenerateSigner(f.suite)
	if err != nil {
		t.Fatal(err)
	}
	hub := ExternalSender{SignatureKey: hubSigner.Public, Credential: basic("mimi://a.example")}
	tbe := &GroupInfoRatchetTreeTBE{
		GroupInfo:         f.groupInfo,
		RatchetTreeOption: RatchetTreeOption{Representation: RatchetTreeFull, RatchetTree: f.tree},
		PendingProposals:  []PendingProposal{{Proposal: f.proposal, HubAcceptedTime: 1700000000123}},
	}
	gresp, err := SealGroupInfoResponse(gir, "mimi://a.example/r/clubhouse", hub, hubSigner.Private, tbe)
	if err != nil {
		t.Fatal(err)
	}
	return []codec{
		{"KeyMaterialRequest", signedKeyMaterialRequest(t, f), wrap(DecodeKeyMaterialRequest)},
		{"KeyMaterialRequest without room", &KeyMaterialRequest{Protocol: ProtocolMLS10, RequestingUser: "mimi://a.example/u/alice", TargetUser: "mimi://b.example/u/bob", AcceptableCipherSuites: []mls.CipherSuite{1}, RequesterSignatureKey: []byte{1}, RequesterCredential: f.aliceCred, Signature: []byte{2}}, wrap(DecodeKeyMaterialRequest)},
		{"KeyMaterialResponse success", &KeyMaterialResponse{Protocol: ProtocolMLS10, UserStatus: KeyMaterialUserPartialSuccess, UserURI: "mimi://b.example/u/bob", Clients: []ClientKeyMaterial{
			{ClientStatus: KeyMaterialClientSuccess, ClientURI: "mimi://b.example/d/bob/1", KeyPackage: f.bobKP},
			{ClientStatus: KeyMaterialClientExhausted, ClientURI: "mimi://b.example/d/bob/2"},
			{ClientStatus: KeyMaterialClientNothingCompatible, ClientURI: "mimi://b.example/d/bob/3", ClientCapabilities: &f.bobKP.LeafNode.Capabilities},
			{ClientStatus: KeyMaterialClientNothingCompatible, ClientURI: "mimi://b.example/d/bob/4"},
		}}, wrap(DecodeKeyMaterialResponse)},
		{"KeyMaterialResponse userUnknown", &KeyMaterialResponse{Protocol: ProtocolMLS10, UserStatus: KeyMaterialUserUnknown, UserURI: "mimi://b.example/u/nobody"}, wrap(DecodeKeyMaterialResponse)},
		{"UpdateRequest commit full", &UpdateRequest{Bundle: HandshakeBundle{ProposalOrCommit: f.commit, Welcome: f.welcome,
			GroupInfoOption:   &GroupInfoOption{Representation: GroupInfoFull, GroupInfo: f.groupInfo},
			RatchetTreeOption: &RatchetTreeOption{Representation: RatchetTreeFull, RatchetTree: f.tree}}}, wrap(DecodeUpdateRequest)},
		{"UpdateRequest commit partial, httpsUri", &UpdateRequest{Bundle: HandshakeBundle{ProposalOrCommit: f.commit,
			GroupInfoOption:   &GroupInfoOption{Representation: GroupInfoPartial, Partial: &PartialGroupInfo{RatchetTreePresence: RatchetTreeAdded, GroupInfoExtensions: mls.Extensions{{Type: 0xff00, Data: []byte("x")}}, Signature: []byte("sig")}},
			RatchetTreeOption: &RatchetTreeOption{Representation: RatchetTreeHTTPSURI, URL: []byte("https://a.example/tree/1"), TreeSignature: []byte("ts")}}}, wrap(DecodeUpdateRequest)},
		{"UpdateRequest commit outOfBand", &UpdateRequest{Bundle: HandshakeBundle{ProposalOrCommit: f.commit,
			GroupInfoOption:   &GroupInfoOption{Representation: GroupInfoFull, GroupInfo: f.groupInfo},
			RatchetTreeOption: &RatchetTreeOption{Representation: RatchetTreeOutOfBand, TreeSignature: []byte("ts")}}}, wrap(DecodeUpdateRequest)},
		{"UpdateRequest commit distributionService", &UpdateRequest{Bundle: HandshakeBundle{ProposalOrCommit: f.commit,
			GroupInfoOption:   &GroupInfoOption{Representation: GroupInfoFull, GroupInfo: f.groupInfo},
			RatchetTreeOption: &RatchetTreeOption{Representation: RatchetTreeDistributionService}}}, wrap(DecodeUpdateRequest)},
		{"UpdateRequest proposal", &UpdateRequest{Bundle: HandshakeBundle{ProposalOrCommit: f.proposal, MoreProposals: []*mls.MLSMessage{f.proposal, f.proposal}}}, wrap(DecodeUpdateRequest)},
		{"UpdateRoomResponse success", &UpdateRoomResponse{ResponseCode: UpdateSuccess, AcceptedTimestamp: 1700000000123}, wrap(DecodeUpdateRoomResponse)},
		{"UpdateRoomResponse wrongEpoch", &UpdateRoomResponse{ResponseCode: UpdateWrongEpoch, ErrorDescription: "epoch 3 is current", CurrentEpoch: 3}, wrap(DecodeUpdateRoomResponse)},
		{"UpdateRoomResponse notAllowed", &UpdateRoomResponse{ResponseCode: UpdateNotAllowed, ErrorDescription: "banned"}, wrap(DecodeUpdateRoomResponse)},
		{"UpdateRoomResponse invalidProposal", &UpdateRoomResponse{ResponseCode: UpdateInvalidProposal, InvalidProposals: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}}, wrap(DecodeUpdateRoomResponse)},
		{"SubmitMessageRequest", &SubmitMessageRequest{Protocol: ProtocolMLS10, AppMessage: f.app, SendingURI: "mimi://a.example/u/alice"}, wrap(DecodeSubmitMessageRequest)},
		{"SubmitMessageResponse accepted with frank", &SubmitMessageResponse{Protocol: ProtocolMLS10, StatusCode: SubmitAccepted, AcceptedTimestamp: 42, Frank: frank}, wrap(DecodeSubmitMessageResponse)},
		{"SubmitMessageResponse accepted", &SubmitMessageResponse{Protocol: ProtocolMLS10, StatusCode: SubmitAccepted, AcceptedTimestamp: 42}, wrap(DecodeSubmitMessageResponse)},
		{"SubmitMessageResponse notAllowed", &SubmitMessageResponse{Protocol: ProtocolMLS10, StatusCode: SubmitNotAllowed}, wrap(DecodeSubmitMessageResponse)},
		{"SubmitMessageResponse epochTooOld", &SubmitMessageResponse{Protocol: ProtocolMLS10, StatusCode: SubmitEpochTooOld, CurrentEpoch: 9}, wrap(DecodeSubmitMessageResponse)},
		{"FanoutMessage application", &FanoutMessage{Timestamp: 1, Message: f.app, Frank: frank}, wrap(decodeOneFanout)},
		{"FanoutMessage application without frank", &FanoutMessage{Timestamp: 1, Message: f.app}, wrap(decodeOneFanout)},
		{"FanoutMessage welcome", &FanoutMessage{Timestamp: 2, Message: welcomeMsg, RatchetTreeOption: &RatchetTreeOption{Representation: RatchetTreeFull, RatchetTree: f.tree}}, wrap(decodeOneFanout)},
		{"FanoutMessage proposal", &FanoutMessage{Timestamp: 3, Message: f.proposal, MoreProposals: []*mls.MLSMessage{f.proposal}}, wrap(decodeOneFanout)},
		{"FanoutMessage commit", &FanoutMessage{Timestamp: 4, Message: f.commit, ExternalProposals: []*mls.MLSMessage{f.proposal}}, wrap(decodeOneFanout)},
		{"GroupInfoRequest", gir, wrap(DecodeGroupInfoRequest)},
		{"GroupInfoRequest without code", &GroupInfoRequest{CipherSuite: 1, RequestingSignatureKey: []byte{1}, RequestingCredential: f.aliceCred, GroupInfoPublicKey: []byte{2}, Signature: []byte{3}}, wrap(DecodeGroupInfoRequest)},
		{"GroupInfoResponse success", gresp, wrap(DecodeGroupInfoResponse)},
		{"GroupInfoResponse notAuthorized", &GroupInfoResponse{Protocol: ProtocolMLS10, RoomID: "mimi://a.example/r/clubhouse", Status: GroupInfoNotAuthorized}, wrap(DecodeGroupInfoResponse)},
		{"GroupInfoRatchetTreeTBE", tbe, wrap(DecodeGroupInfoRatchetTreeTBE)},
		{"ConsentEntry request", &ConsentEntry{Operation: ConsentRequest, Requester: "mimi://a.example/u/alice", Target: "mimi://b.example/u/bob"}, wrap(DecodeConsentEntry)},
		{"ConsentEntry cancel with room", &ConsentEntry{Operation: ConsentCancel, Requester: "mimi://a.example/u/alice", Target: "mimi://b.example/u/bob", Room: "mimi://a.example/r/clubhouse",
			Extensions: mls.AppDataDictionary{{ID: 0x8001, Data: []byte("x")}}}, wrap(DecodeConsentEntry)},
		{"ConsentEntry grant with KeyPackages", &ConsentEntry{Operation: ConsentGrant, Requester: "mimi://a.example/u/alice", Target: "mimi://b.example/u/bob", KeyPackages: []*mls.KeyPackage{f.bobKP}}, wrap(DecodeConsentEntry)},
		{"ConsentEntry grant without KeyPackages", &ConsentEntry{Operation: ConsentGrant, Requester: "mimi://a.example/u/alice", Target: "mimi://b.example/u/bob"}, wrap(DecodeConsentEntry)},
		{"ConsentEntry revoke", &ConsentEntry{Operation: ConsentRevoke, Requester: "mimi://a.example/u/alice", Target: "mimi://b.example/u/bob"}, wrap(DecodeConsentEntry)},
		{"IdentifierRequest", &IdentifierRequest{Elements: []QueryElement{{Type: SearchEmail, Value: "bob@b.example"}, {Type: SearchOIDCStdClaim, Name: "family_name", Value: "Bauer"},
			{Type: SearchVCardField, Name: "ORG", Value: "Amt B"}, {Type: 42, Value: "unknown type"}}}, wrap(DecodeIdentifierRequest)},
		{"IdentifierRequest empty", &IdentifierRequest{}, wrap(DecodeIdentifierRequest)},
		{"IdentifierResponse success", &IdentifierResponse{Code: IdentifierSuccess, URIs: []IdentifierURI{"mimi://b.example/u/bob"},
			Profiles: []UserProfile{{StableURI: "mimi://b.example/u/bob", Fields: []ProfileField{{Source: FieldOIDCStdClaim, Name: "name", Value: []byte("Bob Bauer")}}}}}, wrap(DecodeIdentifierResponse)},
		{"IdentifierResponse notFound", &IdentifierResponse{Code: IdentifierNotFound}, wrap(DecodeIdentifierResponse)},
		{"AbuseReport", &AbuseReport{Reporter: "mimi://b.example/u/bob", Accused: "mimi://e.example/u/eve", Note: "insults",
			Messages: []AbusiveMessage{{Content: []byte("content"), Frank: *frank, AcceptedTimestamp: 1700000000123}}}, wrap(DecodeAbuseReport)},
	}
}

func decodeOneFanout(b []byte) (*FanoutMessage, error) {
	ms, err := DecodeFanoutMessages(b)
	if err != nil {
		return nil, err
	}
	if len(ms) != 1 {
		return nil, errors.New("not one message")
	}
	return ms[0], nil
}

// TestRoundTrip encodes every struct with realistic MLS content, decodes it, checks the decoded
// value equals the original and re-encodes byte-identically.
func TestRoundTrip(t *testing.T) {
	for _, c := range allCodecs(t) {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.value.Encode()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			got, err := c.decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			b2, err := got.(interface{ Encode() ([]byte, error) }).Encode()
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs:\n%x\n%x", b, b2)
			}
			// The decoded value re-encodes identically; compare the typed fields too, via a
			// second decode (decoders normalise nil vs empty slices the same way each time).
			again, err := c.decode(b2)
			if err != nil || !reflect.DeepEqual(got, again) {
				t.Fatalf("second decode differs: %v", err)
			}
			if _, err := c.decode(append(b, 0)); err == nil {
				t.Fatal("trailing byte accepted")
			}
			if _, err := c.decode(b[:len(b)-1]); err == nil {
				t.Fatal("truncated body accepted")
			}
		})
	}
}

func TestRoundTripFields(t *testing.T) {
	f := getFixtures(t)
	req := signedKeyMaterialRequest(t, f)
	b, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeKeyMaterialRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.TargetUser != req.TargetUser || got.RoomID != req.RoomID || !reflect.DeepEqual(got.AcceptableCipherSuites, req.AcceptableCipherSuites) ||
		!reflect.DeepEqual(got.RequiredCapabilities, req.RequiredCapabilities) || !bytes.Equal(got.Signature, req.Signature) {
		t.Fatalf("fields differ: %+v", got)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("decoded request does not verify: %v", err)
	}
	got.TargetUser = "mimi://b.example/u/mallory"
	if err := got.Verify(); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered request: %v, want ErrSignature", err)
	}

	// A /notify body of several concatenated FanoutMessages.
	ms := []*FanoutMessage{{Timestamp: 1, Message: f.commit}, {Timestamp: 2, Message: f.app}, {Timestamp: 3, Message: f.proposal}}
	body, err := EncodeFanoutMessages(ms)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeFanoutMessages(body)
	if err != nil {
		t.Fatal(err)
	}
	want := []FanoutKind{FanoutCommit, FanoutApplication, FanoutProposal}
	for i, m := range dec {
		k, err := m.Kind()
		if err != nil || k != want[i] || m.Timestamp != uint64(i+1) {
			t.Fatalf("message %d: kind %v ts %d err %v", i, k, m.Timestamp, err)
		}
	}
}

func TestGroupInfoSealOpen(t *testing.T) {
	f := getFixtures(t)
	for _, code := range [][]byte{nil, []byte("code")} {
		req, priv := signedGroupInfoRequest(t, f, code)
		b, _ := req.Encode()
		dreq, err := DecodeGroupInfoRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := dreq.Verify(); err != nil {
			t.Fatalf("code %q: %v", code, err)
		}
		dreq.JoiningCode = []byte("other")
		if err := dreq.Verify(); !errors.Is(err, ErrSignature) {
			t.Fatalf("changed joining code verified: %v", err)
		}
		hubSigner, _ := mls.GenerateSigner(f.suite)
		hub := ExternalSender{SignatureKey: hubSigner.Public, Credential: basic("mimi://a.example")}
		tbe := &GroupInfoRatchetTreeTBE{GroupInfo: f.groupInfo, RatchetTreeOption: RatchetTreeOption{Representation: RatchetTreeDistributionService}}
		resp, err := SealGroupInfoResponse(req, "mimi://a.example/r/clubhouse", hub, hubSigner.Private, tbe)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := resp.Encode()
		dresp, err := DecodeGroupInfoResponse(rb)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dresp.Open(priv)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := tbe.Encode()
		gotB, _ := got.Encode()
		if !bytes.Equal(want, gotB) {
			t.Fatal("opened TBE differs")
		}
		dresp.RoomID = "mimi://a.example/r/other"
		if _, err := dresp.Open(priv); !errors.Is(err, ErrSignature) {
			t.Fatalf("tampered response opened: %v", err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	f := getFixtures(t)
	gi := &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: f.groupInfo}
	giB, _ := gi.Encode()
	appB, _ := f.app.Encode()
	kmr, _ := signedKeyMaterialRequest(t, f).Encode()
	badProto := append([]byte{2}, kmr[1:]...)
	tests := []struct {
		name   string
		decode func([]byte) error
		in     []byte
		want   error
	}{
		{"empty notify body", func(b []byte) error { _, err := DecodeFanoutMessages(b); return err }, nil, ErrMalformed},
		{"fanout of a GroupInfo", func(b []byte) error { _, err := DecodeFanoutMessages(b); return err }, append(make([]byte, 8), giB...), ErrMalformed},
		{"unknown protocol", func(b []byte) error { _, err := DecodeKeyMaterialRequest(b); return err }, badProto, ErrUnknownProtocol},
		{"submit of a commit", func(b []byte) error { _, err := DecodeSubmitMessageRequest(b); return err }, append([]byte{1}, mustEncode(t, f.commit)...), ErrMalformed},
		{"update with an application message", func(b []byte) error { _, err := DecodeUpdateRequest(b); return err }, appB, ErrMalformed},
		{"bad update response code", func(b []byte) error { _, err := DecodeUpdateRoomResponse(b); return err }, []byte{9, 0}, ErrMalformed},
		{"bad group info status", func(b []byte) error { _, err := DecodeGroupInfoResponse(b); return err }, []byte{1, 0, 0}, ErrMalformed},
		{"no cipher suites", func(b []byte) error { _, err := DecodeKeyMaterialRequest(b); return err }, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.decode(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func mustEncode(t testing.TB, m tlspl.Marshaler) []byte {
	t.Helper()
	b, err := tlspl.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPathIDs(t *testing.T) {
	tests := []struct{ in, want string }{
		{EncodePathID("mimi://a.example/r/clubhouse"), "mimi://a.example/r/clubhouse"},
		{"a.example%2Fr%2Fclubhouse", "mimi://a.example/r/clubhouse"},
		{"a.example/r/clubhouse", "mimi://a.example/r/clubhouse"},
		{EncodePathID("mimi://b.example/u/al%ice"), "mimi://b.example/u/al%ice"},
	}
	for _, tt := range tests {
		got, err := DecodePathID(tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("DecodePathID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := DecodePathID("%zz"); err == nil {
		t.Error("bad escape accepted")
	}
	if _, err := DecodePathID(""); err == nil {
		t.Error("empty id accepted")
	}
}
