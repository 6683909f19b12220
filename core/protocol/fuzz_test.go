package protocol

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl/tlspltest"
)

// fuzzDecoder seeds f with every round-trip fixture encoding (of all structs, so each decoder
// also sees the others' bodies) and requires canonical re-encoding of whatever decodes.
func fuzzDecoder[T tlspltest.Encoder](f *testing.F, decode func([]byte) (T, error)) {
	var seeds [][]byte
	for _, c := range allCodecs(f) {
		b, err := c.value.Encode()
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	tlspltest.FuzzCanonical(f, seeds, decode)
}

func FuzzKeyMaterialRequest(f *testing.F)  { fuzzDecoder(f, DecodeKeyMaterialRequest) }
func FuzzKeyMaterialResponse(f *testing.F) { fuzzDecoder(f, DecodeKeyMaterialResponse) }
func FuzzUpdateRequest(f *testing.F)       { fuzzDecoder(f, DecodeUpdateRequest) }
func FuzzUpdateRoomResponse(f *testing.F)  { fuzzDecoder(f, DecodeUpdateRoomResponse) }
func FuzzSubmitMessageRequest(f *testing.F) {
	fuzzDecoder(f, DecodeSubmitMessageRequest)
}
func FuzzSubmitMessageResponse(f *testing.F) {
	fuzzDecoder(f, DecodeSubmitMessageResponse)
}
func FuzzGroupInfoRequest(f *testing.F)  { fuzzDecoder(f, DecodeGroupInfoRequest) }
func FuzzGroupInfoResponse(f *testing.F) { fuzzDecoder(f, DecodeGroupInfoResponse) }
func FuzzGroupInfoRatchetTreeTBE(f *testing.F) {
	fuzzDecoder(f, DecodeGroupInfoRatchetTreeTBE)
}

func FuzzConsentEntry(f *testing.F)       { fuzzDecoder(f, DecodeConsentEntry) }
func FuzzIdentifierRequest(f *testing.F)  { fuzzDecoder(f, DecodeIdentifierRequest) }
func FuzzIdentifierResponse(f *testing.F) { fuzzDecoder(f, DecodeIdentifierResponse) }
func FuzzAbuseReport(f *testing.F)        { fuzzDecoder(f, DecodeAbuseReport) }

// fanoutBody makes DecodeFanoutMessages fit fuzzDecoder.
type fanoutBody []*FanoutMessage

func (m fanoutBody) Encode() ([]byte, error) { return EncodeFanoutMessages(m) }

func FuzzFanoutMessages(f *testing.F) {
	fuzzDecoder(f, func(b []byte) (fanoutBody, error) {
		ms, err := DecodeFanoutMessages(b)
		return fanoutBody(ms), err
	})
}

// FuzzPathID checks DecodePathID never panics and that encoding what it returns decodes back.
func FuzzPathID(f *testing.F) {
	for _, s := range []string{"mimi%3A%2F%2Fa.example%2Fr%2Fclubhouse", "a.example/r/clubhouse", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := DecodePathID(s)
		if err != nil {
			return
		}
		back, err := DecodePathID(EncodePathID(id))
		if err != nil || back != id {
			t.Fatalf("%q -> %q -> %q, %v", s, id, back, err)
		}
	})
}
