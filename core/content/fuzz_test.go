package content

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// addSeeds adds every .cbor file of the test vectors as a seed.
func addSeeds(f *testing.F) {
	f.Helper()
	for _, pattern := range []string{"testdata/vectors/*.cbor", "testdata/status/*.cbor"} {
		files, err := filepath.Glob(pattern)
		if err != nil || len(files) == 0 {
			f.Fatalf("no seeds for %s: %v", pattern, err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to the
// same bytes, decodes again, has computable IDs and can be inspected.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	// Documents that reach the generic extension-value checks.
	for _, kv := range []string{
		"1863" + "a3" + "01" + "f97e00" + "4161" + "fa47c35000" + "6161" + "c249010000000000000000",
		"1863" + "83" + "d820" + "6178" + "c11a62036674" + "a1" + "20" + "8180",
		"03" + "a2" + "01" + "1a62036674" + "28" + "1a3b9ac9ff",
		"04" + "82" + "4101" + "d820" + "6178",
		"190100" + "82" + id32 + id32,
	} {
		f.Add(withExt(f, kv, 1))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error %T is not a *ValidationError: %v", err, err)
			}
			// The other decoders must not panic on the same input either.
			_, _ = DecodeDerived(data)
			return
		}
		out, err := m.Encode()
		if err != nil {
			t.Fatalf("accepted input does not encode: %v\ninput %x", err, data)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs\ninput %x\n  got %x", data, out)
		}
		if _, err := Decode(out); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		for _, v := range []IDVersion{IDDraft08, IDDraft07} {
			if _, err := ComputeID(v, data, "mimi://a.example/u/x", "mimi://a.example/r/y"); err != nil {
				t.Fatalf("ComputeID: %v", err)
			}
		}
		_ = m.Renderable(nil)
		_, _, _ = m.StatusReport()
		if err := Inspect(io.Discard, data, "", ""); err != nil {
			t.Fatalf("Inspect: %v", err)
		}
	})
}

// FuzzDecodeStatusReport: no panics; accepted reports re-encode to the same
// bytes.
func FuzzDecodeStatusReport(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := DecodeStatusReport(data)
		if err != nil {
			return
		}
		out, err := rep.Encode()
		if err != nil {
			t.Fatalf("accepted report does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs\ninput %x\n  got %x", data, out)
		}
	})
}
