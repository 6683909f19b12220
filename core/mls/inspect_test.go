package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// messagesCase returns case i of testdata/messages.json, decoded from hex.
func messagesCase(t testing.TB, i int) map[string][]byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]string
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for k, v := range cases[i] {
		b, err := hex.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

func TestInspect(t *testing.T) {
	t.Parallel()
	c := messagesCase(t, 0)
	wl := readWelcomeCase(t)
	tests := []struct {
		name  string
		input []byte
		want  []string
	}{
		{"key package", c["mls_key_package"], []string{
			"MLSMessage (295 bytes): mls10, mls_key_package", "KeyPackage", "cipher suite: 0x0001 MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
			"ref: ", "init key: ", "credential: basic, identity ", "capabilities:", "versions: mls10", "lifetime: ",
			"signature key: ", "source: key_package", "signature: 64 bytes",
		}},
		{"valid key package (welcome.json)", wl, []string{
			"KeyPackage", "lifetime: 1970-01-01T00:00:00Z .. 18446744073709551615 (beyond year 9999) (valid now)",
			"signature: 64 bytes, valid",
		}},
		{"welcome", c["mls_welcome"], []string{"mls_welcome", "Welcome", "cipher suite: 0x0001", "recipients: ", "encrypted group info: "}},
		{"group info", c["mls_group_info"], []string{
			"mls_group_info", "GroupInfo", "group context:", "group id: ", "epoch: ", "tree hash: ",
			"confirmed transcript hash: ", "confirmation tag: ", "signer: leaf ",
		}},
		{"public proposal", c["public_message_proposal"], []string{
			"PublicMessage", "sender: member(leaf ", "content type: proposal", "authenticated data: ", "membership tag: ",
		}},
		{"public commit", c["public_message_commit"], []string{"content type: commit", "commit: ", "confirmation tag: "}},
		{"private message", c["private_message"], []string{
			"PrivateMessage", "group id: ", "epoch: ", "content type: ", "authenticated data: ", "ciphertext: ",
		}},
		{"hex input", []byte(hex.EncodeToString(c["mls_key_package"]) + "\n"), []string{"KeyPackage", "cipher suite: 0x0001"}},
		{"bare ratchet tree", c["ratchet_tree"], []string{"bare ratchet tree", "ratchet tree: ", "leaf 0: "}},
		{"bare key package", c["mls_key_package"][4:], []string{"bare KeyPackage", "credential: basic"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Inspect(&out, tc.input); err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// readWelcomeCase returns the KeyPackage MLSMessage of the first welcome.json case: a KeyPackage with
// valid signatures and an unbounded lifetime.
func readWelcomeCase(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/welcome.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []welcomeCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	return cases[0].KeyPackage
}

func TestInspectRejects(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{nil, []byte("hello"), {0, 1, 0, 9}, []byte("0001000")} {
		if err := Inspect(&bytes.Buffer{}, in); err == nil {
			t.Errorf("Inspect(%q): no error", in)
		}
	}
}

func TestInspectLifetimeStates(t *testing.T) {
	t.Parallel()
	kp := &KeyPackage{Version: ProtocolVersionMLS10, CipherSuite: 1, LeafNode: LeafNode{
		Credential: Credential{Type: CredentialTypeBasic, Identity: []byte("alice")},
		Source:     LeafNodeSourceKeyPackage, Lifetime: Lifetime{NotBefore: 1700000000, NotAfter: 1800000000},
	}}
	msg, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: kp}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  int64
		want string
	}{
		{1600000000, "(not yet valid)"}, {1750000000, "(valid now)"}, {1900000000, "(expired)"},
	} {
		var out bytes.Buffer
		if err := inspectAt(&out, msg, time.Unix(tc.now, 0)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "lifetime: 2023-11-14T22:13:20Z .. 2027-01-15T08:00:00Z "+tc.want) {
			t.Errorf("now=%d: lifetime line lacks %q:\n%s", tc.now, tc.want, out.String())
		}
		if !strings.Contains(out.String(), `identity 616c696365 "alice"`) || !strings.Contains(out.String(), "INVALID") {
			t.Errorf("credential or signature verdict missing:\n%s", out.String())
		}
	}
}

// TestInspectAllMessages prints every MLSMessage and bare structure of messages.json.
func TestInspectAllMessages(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]string
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	fields := []string{"mls_welcome", "mls_group_info", "mls_key_package", "public_message_application",
		"public_message_proposal", "public_message_commit", "private_message", "ratchet_tree"}
	n := 0
	for i, c := range cases {
		for _, f := range fields {
			b, err := hex.DecodeString(c[f])
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Inspect(&out, b); err != nil {
				t.Fatalf("case %d %s: %v", i, f, err)
			}
			if out.Len() == 0 {
				t.Fatalf("case %d %s: no output", i, f)
			}
			n++
		}
	}
	t.Logf("inspected %d structures", n)
}
