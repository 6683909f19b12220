package content

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// example is one entry of testdata/vectors/examples.json (copied from the
// shared conformance folder; see testdata/vectors/README.md).
type example struct {
	Name                 string `json:"name"`
	Type                 string `json:"type"`
	CBORHex              string `json:"cbor_hex"`
	SenderURI            string `json:"sender_uri"`
	RoomURI              string `json:"room_uri"`
	ExpectedMessageIDHex string `json:"expected_message_id_hex"`
	SaltHex              string `json:"salt_hex"`
	HubTimestampMS       *int64 `json:"hub_accepted_timestamp_ms"`
	MLSGroupIDHex        string `json:"mls_group_id_hex"`
	SenderLeafIndex      uint32 `json:"sender_leaf_index"`
	SenderClientURL      string `json:"sender_client_url"`
	CBORFileIDHex        string `json:"cbor_file_message_id_field_hex"`
	References           map[string]string
	Draft07              *struct {
		TextIDHex     *string `json:"message_id_hex_from_draft07_text"`
		CBORHex       string  `json:"reconstructed_cbor_hex"`
		RecomputedHex string  `json:"recomputed_message_id_hex"`
	} `json:"draft07"`
}

func loadExamples(t testing.TB) []example {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors", "examples.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ex []example
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatal(err)
	}
	if len(ex) != 16 {
		t.Fatalf("examples.json has %d entries, want 16", len(ex))
	}
	return ex
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", name+".cbor"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readVectorPath(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContentVectors(t *testing.T) {
	n := 0
	for _, ex := range loadExamples(t) {
		if ex.Type != "mimiContent" {
			continue
		}
		n++
		t.Run(ex.Name, func(t *testing.T) {
			data := readVector(t, ex.Name)
			if !bytes.Equal(data, mustHex(t, ex.CBORHex)) {
				t.Fatalf("%s.cbor differs from cbor_hex in examples.json", ex.Name)
			}
			m, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			again, err := m.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(again, data) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, data)
			}
			if got := hex.EncodeToString(m.Salt[:]); got != ex.SaltHex {
				t.Errorf("salt %s, want %s", got, ex.SaltHex)
			}
			if m.Extensions.SenderURI() != ex.SenderURI || m.Extensions.RoomURI() != ex.RoomURI {
				t.Errorf("URIs %q %q, want %q %q", m.Extensions.SenderURI(), m.Extensions.RoomURI(), ex.SenderURI, ex.RoomURI)
			}
			id, err := ComputeID(IDDraft08, data, m.Extensions.SenderURI(), m.Extensions.RoomURI())
			if err != nil {
				t.Fatal(err)
			}
			if id.String() != ex.ExpectedMessageIDHex {
				t.Errorf("-08 ID %s, want %s", id, ex.ExpectedMessageIDHex)
			}
			_, id2, err := m.EncodeWithID(IDDraft08)
			if err != nil || id2 != id {
				t.Errorf("EncodeWithID = %s, %v; want %s", id2, err, id)
			}
			for field, want := range ex.References {
				var got *MessageID
				switch field {
				case "inReplyTo":
					got = m.InReplyTo
				case "replaces":
					got = m.Replaces
				default:
					t.Fatalf("unknown reference %s", field)
				}
				if got == nil || got.String() != want {
					t.Errorf("%s = %v, want %s", field, got, want)
				}
			}
			if len(ex.References) == 0 && (m.InReplyTo != nil || m.Replaces != nil) {
				t.Errorf("unexpected references %v %v", m.InReplyTo, m.Replaces)
			}

			// The -07 legacy vector: same content with the -07 IDs of the
			// referenced messages, hashed without length prefixes.
			if ex.Draft07 == nil {
				t.Fatal("no draft07 vector")
			}
			old := mustHex(t, ex.Draft07.CBORHex)
			om, err := Decode(old)
			if err != nil {
				t.Fatalf("Decode -07 CBOR: %v", err)
			}
			if re, _ := om.Encode(); !bytes.Equal(re, old) {
				t.Fatalf("-07 CBOR does not re-encode identically")
			}
			id7, err := ComputeID(IDDraft07, old, ex.SenderURI, ex.RoomURI)
			if err != nil {
				t.Fatal(err)
			}
			if id7.String() != ex.Draft07.RecomputedHex {
				t.Errorf("-07 ID %s, want %s", id7, ex.Draft07.RecomputedHex)
			}
			if ex.Draft07.TextIDHex != nil && id7.String() != *ex.Draft07.TextIDHex {
				t.Errorf("-07 ID %s, draft-07 text says %s", id7, *ex.Draft07.TextIDHex)
			}
		})
	}
	if n != 14 {
		t.Fatalf("%d mimiContent examples, want 14", n)
	}
}

// TestDerivedVector checks implied-original.cbor. The file upstream is
// stale: its messageId is the -07 ID of "original" while the EDN and the -08
// text give the -08 ID (docs/content.md, "Defects").
func TestDerivedVector(t *testing.T) {
	var ex example
	for _, e := range loadExamples(t) {
		if e.Name == "implied-original" {
			ex = e
		}
	}
	data := readVector(t, "implied-original")
	d, err := DecodeDerived(data)
	if err != nil {
		t.Fatal(err)
	}
	if re, err := d.Encode(); err != nil || !bytes.Equal(re, data) {
		t.Fatalf("re-encode: %v\n got %x\nwant %x", err, re, data)
	}
	if d.MessageID.String() != ex.CBORFileIDHex {
		t.Errorf("messageId %s, want the (stale) file value %s", d.MessageID, ex.CBORFileIDHex)
	}
	if d.HubAccepted.UnixMilli() != *ex.HubTimestampMS || d.HubAccepted.Format(time.RFC3339Nano) != "2022-02-09T06:13:45.019Z" {
		t.Errorf("timestamp %v", d.HubAccepted)
	}
	if hex.EncodeToString(d.MLSGroupID) != ex.MLSGroupIDHex || d.SenderLeafIndex != ex.SenderLeafIndex ||
		d.SenderClientURL != ex.SenderClientURL || d.SenderUserURL != ex.SenderURI || d.RoomURL != ex.RoomURI {
		t.Errorf("derived values %+v do not match examples.json", d)
	}
	// The corrected form carries the -08 ID of original and encodes the
	// same apart from those 32 octets.
	orig, err := ComputeID(IDDraft08, readVector(t, "original"), ex.SenderURI, ex.RoomURI)
	if err != nil {
		t.Fatal(err)
	}
	if orig.String() != ex.ExpectedMessageIDHex {
		t.Fatalf("original's ID %s, want %s", orig, ex.ExpectedMessageIDHex)
	}
	fixed := *d
	fixed.MessageID = orig
	enc, err := fixed.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc[3:35], orig[:]) || !bytes.Equal(enc[35:], data[35:]) {
		t.Errorf("corrected derived values encode unexpectedly: %x", enc)
	}
}

func TestStatusVector(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "status", "status.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := DecodeStatusReport(data)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, ex := range loadExamples(t) {
		if ex.Type == "mimiContent" {
			ids[ex.Name] = ex.ExpectedMessageIDHex
		}
	}
	want := []struct {
		name   string
		status Status
	}{{"original", StatusRead}, {"reply", StatusRead}, {"mention", StatusUnread}, {"expiring", StatusExpired}}
	if len(rep) != len(want) {
		t.Fatalf("%d entries, want %d", len(rep), len(want))
	}
	for i, w := range want {
		if rep[i].MessageID.String() != ids[w.name] || rep[i].Status != w.status {
			t.Errorf("entry %d = %s %s, want %s (%s) %s", i, rep[i].MessageID, rep[i].Status, ids[w.name], w.name, w.status)
		}
	}
	re, err := rep.Encode()
	if err != nil || !bytes.Equal(re, data) {
		t.Fatalf("re-encode: %v\n got %x\nwant %x", err, re, data)
	}
}
