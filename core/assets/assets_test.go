package assets

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges"
)

func TestPutOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir, "klinik-a.example", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("a scanned referral letter")
	a, err := s.Put(t.Context(), bytes.NewReader(plain), bridges.AssetMeta{ContentType: "application/pdf", Filename: "brief.pdf", Size: int64(len(plain))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.URL, "https://klinik-a.example/assets/") || a.Size != uint64(len(plain)) ||
		len(a.Key) != 16 || len(a.Nonce) != 12 || a.HashAlg != HashSHA256 || len(a.Hash) != 32 {
		t.Fatalf("asset = %+v", a)
	}
	// Only ciphertext is on disk.
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("%d files in the store", len(files))
	}
	raw, _ := os.ReadFile(filepath.Join(dir, files[0].Name()))
	if bytes.Contains(raw, plain) || len(raw) != len(plain)+tagSize {
		t.Fatalf("stored file is not the AES-GCM ciphertext (%d bytes)", len(raw))
	}
	if st, _ := os.Stat(filepath.Join(dir, files[0].Name())); st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v", st.Mode().Perm())
	}
	rc, err := s.Open(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q", got)
	}

	tests := []struct {
		name string
		mod  func(*bridges.Asset)
		want error
	}{
		{"wrong hash", func(x *bridges.Asset) { x.Hash = append([]byte(nil), x.Hash...); x.Hash[0] ^= 1 }, ErrIntegrity},
		{"wrong key", func(x *bridges.Asset) { x.Key = make([]byte, 16) }, ErrIntegrity},
		{"foreign URL", func(x *bridges.Asset) { x.URL = "https://evil.example/assets/" + strings.Repeat("a", 32) }, ErrNotFound},
		{"path traversal", func(x *bridges.Asset) { x.URL = "https://klinik-a.example/assets/../../etc/passwd" }, ErrNotFound},
		{"unknown id", func(x *bridges.Asset) { x.URL = "https://klinik-a.example/assets/" + strings.Repeat("0", 32) }, ErrNotFound},
		{"other hash algorithm", func(x *bridges.Asset) { x.HashAlg = 7 }, ErrIntegrity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := *a
			tc.mod(&x)
			if _, err := s.Open(t.Context(), &x); !errors.Is(err, tc.want) {
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
		})
	}
	// A tampered file fails the hash check.
	raw[0] ^= 1
	if err := os.WriteFile(filepath.Join(dir, files[0].Name()), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(t.Context(), a); !errors.Is(err, ErrIntegrity) {
		t.Errorf("tampered file: %v", err)
	}
}

func TestPutLimit(t *testing.T) {
	s, err := New(t.TempDir(), "klinik-a.example", 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), bytes.NewReader(make([]byte, 11)), bridges.AssetMeta{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized read: %v", err)
	}
	if _, err := s.Put(t.Context(), bytes.NewReader(nil), bridges.AssetMeta{Size: 11}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized declared size: %v", err)
	}
	if _, err := New(t.TempDir(), "evil.example/x", 0); err == nil {
		t.Error("domain with a path accepted")
	}
}

func BenchmarkPut1MiB(b *testing.B) {
	s, err := New(b.TempDir(), "klinik-a.example", 0)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Put(b.Context(), bytes.NewReader(data), bridges.AssetMeta{ContentType: "image/png"}); err != nil {
			b.Fatal(err)
		}
	}
}
