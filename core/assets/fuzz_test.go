package assets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzMetadata feeds arbitrary sidecar files to the metadata decoder (through OpenCiphertext and
// Sweep): no panic, a served asset has exactly the size its metadata states and has not expired.
func FuzzMetadata(f *testing.F) {
	f.Add([]byte(`{"expires":4102444800,"size":10}`))
	f.Add([]byte(`{"expires":1,"size":10}`))
	f.Add([]byte(`{"expires":-1,"size":-1}`))
	f.Add([]byte(`{"expires":1e400}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	id := strings.Repeat("ab", 16)
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, m []byte) {
		dir := t.TempDir()
		s, err := New(dir, "klinik-a.example", 1<<10, WithClock(func() time.Time { return now }))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id), []byte("0123456789"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id+metaSuffix), m, 0o600); err != nil {
			t.Fatal(err)
		}
		rc, n, err := s.OpenCiphertext(t.Context(), id)
		if err == nil {
			rc.Close()
			mm, merr := s.readMeta(id)
			if n != 10 || merr != nil || mm.Size != 10 || !now.Before(time.Unix(mm.Expires, 0)) {
				t.Fatalf("served %d bytes with metadata %+v (%v)", n, mm, merr)
			}
		}
		if _, err := s.Sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}
