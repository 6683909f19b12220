package room

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl/tlspltest"
)

// fuzzDecoder seeds f with every fixture encoding and requires canonical re-encoding of
// whatever decodes.
func fuzzDecoder[T tlspltest.Encoder](f *testing.F, decode func([]byte) (T, error)) {
	var seeds [][]byte
	for _, v := range fixtures(f) {
		seeds = append(seeds, enc(f, v))
	}
	tlspltest.FuzzCanonical(f, seeds, decode)
}

func FuzzParticipantList(f *testing.F)       { fuzzDecoder(f, DecodeParticipantList) }
func FuzzParticipantListUpdate(f *testing.F) { fuzzDecoder(f, DecodeParticipantListUpdate) }
func FuzzMetadata(f *testing.F)              { fuzzDecoder(f, DecodeMetadata) }
func FuzzRoles(f *testing.F)                 { fuzzDecoder(f, DecodeRoles) }
func FuzzBasePolicy(f *testing.F)            { fuzzDecoder(f, DecodeBasePolicy) }

// FuzzApplyAuthorize applies a fuzzed update to a fixed list through the Updater and authorizes
// it: never a panic, and an accepted update yields a valid list.
func FuzzApplyAuthorize(f *testing.F) {
	for _, v := range fixtures(f) {
		f.Add(enc(f, v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := testState()
		cur := enc(t, s.Participants)
		got, err := Updater{}.ApplyAppData(ComponentParticipantList, cur, true, [][]byte{b})
		if err != nil {
			return
		}
		l, err := DecodeParticipantList(got)
		if err != nil {
			t.Fatalf("Updater produced an invalid list: %v", err)
		}
		after := map[event.UserURI]int{}
		for _, p := range l.Participants {
			if p.Role != RoleBanned {
				after[p.User] = 1
			}
		}
		_, _ = Authorize(s, &Handshake{Committer: alice, Proposals: []mls.Proposal{appDataProposal(ComponentParticipantList, b)}, ClientsAfter: after})
	})
}
