package mls

import (
	"bytes"
	"errors"
	"testing"
)

func init() { vectorLayouts["key-schedule.json"] = testKeyScheduleVectors }

type keyScheduleCase struct {
	suiteField
	GroupID           hexBytes `json:"group_id"`
	InitialInitSecret hexBytes `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		GroupContext            hexBytes `json:"group_context"`
		JoinerSecret            hexBytes `json:"joiner_secret"`
		WelcomeSecret           hexBytes `json:"welcome_secret"`
		InitSecret              hexBytes `json:"init_secret"`
		SenderDataSecret        hexBytes `json:"sender_data_secret"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		ExporterSecret          hexBytes `json:"exporter_secret"`
		EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
		ExternalSecret          hexBytes `json:"external_secret"`
		ConfirmationKey         hexBytes `json:"confirmation_key"`
		MembershipKey           hexBytes `json:"membership_key"`
		ResumptionPSK           hexBytes `json:"resumption_psk"`
		ExternalPub             hexBytes `json:"external_pub"`
		Exporter                struct {
			Label   string   `json:"label"` // a plain string (random hex digits), used verbatim
			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

func testKeyScheduleVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *keyScheduleCase) {
		if len(c.Epochs) == 0 {
			t.Fatal("no epochs")
		}
		initSecret := c.InitialInitSecret
		for i, ep := range c.Epochs {
			gc := GroupContext{
				Version:                 ProtocolVersionMLS10,
				CipherSuite:             c.CipherSuite,
				GroupID:                 c.GroupID,
				Epoch:                   uint64(i),
				TreeHash:                ep.TreeHash,
				ConfirmedTranscriptHash: ep.ConfirmedTranscriptHash,
			}
			gcBytes, err := gc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			equalHex(t, "group_context", gcBytes, ep.GroupContext)
			back, err := UnmarshalGroupContext(ep.GroupContext)
			if err != nil {
				t.Fatalf("epoch %d: decoding group_context: %v", i, err)
			}
			if again, _ := back.Marshal(); !bytes.Equal(again, ep.GroupContext) {
				t.Errorf("epoch %d: group_context does not round-trip", i)
			}

			e := s.deriveEpochSecrets(initSecret, ep.CommitSecret, ep.PSKSecret, gcBytes)
			for _, f := range []struct {
				name      string
				got, want []byte
			}{
				{"joiner_secret", e.joinerSecret, ep.JoinerSecret},
				{"welcome_secret", e.welcomeSecret, ep.WelcomeSecret},
				{"init_secret", e.initSecret, ep.InitSecret},
				{"sender_data_secret", e.senderDataSecret, ep.SenderDataSecret},
				{"encryption_secret", e.encryptionSecret, ep.EncryptionSecret},
				{"exporter_secret", e.exporterSecret, ep.ExporterSecret},
				{"epoch_authenticator", e.epochAuthenticator, ep.EpochAuthenticator},
				{"external_secret", e.externalSecret, ep.ExternalSecret},
				{"confirmation_key", e.confirmationKey, ep.ConfirmationKey},
				{"membership_key", e.membershipKey, ep.MembershipKey},
				{"resumption_psk", e.resumptionPSK, ep.ResumptionPSK},
			} {
				if !bytes.Equal(f.got, f.want) {
					t.Errorf("epoch %d %s:\n got  %x\n want %x", i, f.name, f.got, f.want)
				}
			}
			// A joiner starting from joiner_secret reaches the same epoch.
			j := s.epochSecretsFromJoiner(ep.JoinerSecret, ep.PSKSecret, gcBytes)
			equalHex(t, "joiner path epoch_authenticator", j.epochAuthenticator, ep.EpochAuthenticator)
			equalHex(t, "joiner path init_secret", j.initSecret, ep.InitSecret)
			equalHex(t, "welcomeSecretFromJoiner", s.welcomeSecretFromJoiner(ep.JoinerSecret, ep.PSKSecret), ep.WelcomeSecret)

			_, pub, err := s.externalKeyPair(e.externalSecret)
			if err != nil {
				t.Fatalf("epoch %d external key pair: %v", i, err)
			}
			equalHex(t, "external_pub", pub, ep.ExternalPub)

			x := ep.Exporter
			out, err := s.exporter(e.exporterSecret, x.Label, x.Context, x.Length)
			if err != nil {
				t.Fatalf("epoch %d exporter: %v", i, err)
			}
			equalHex(t, "exporter secret", out, x.Secret)
			initSecret = e.initSecret
		}
	})
}

func TestExporterLengthLimits(t *testing.T) {
	t.Parallel()
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	sec := make([]byte, 32)
	for _, n := range []int{-1, 255*32 + 1, 1 << 20} {
		if _, err := s.exporter(sec, "l", nil, n); !errors.Is(err, ErrExportLength) {
			t.Errorf("length %d: %v, want ErrExportLength", n, err)
		}
	}
	for _, n := range []int{0, 1, 255 * 32} {
		out, err := s.exporter(sec, "l", nil, n)
		if err != nil || len(out) != n {
			t.Errorf("length %d: %d bytes, %v", n, len(out), err)
		}
	}
}

func TestWelcomeKeyNonceSizes(t *testing.T) {
	t.Parallel()
	for _, cs := range SupportedCipherSuites() {
		s, _ := cs.impl()
		k, n := s.welcomeKeyNonce(make([]byte, s.hashSize()))
		if len(k) != s.aeadKeySize() || len(n) != s.aeadNonceSize() {
			t.Errorf("%v: key %d nonce %d", cs, len(k), len(n))
		}
	}
}
