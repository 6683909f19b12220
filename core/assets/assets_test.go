package assets

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPutOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir, "klinik-a.example", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("a scanned referral letter")
	a, err := s.Put(t.Context(), bytes.NewReader(plain), Meta{ContentType: "application/pdf", Filename: "brief.pdf", Size: int64(len(plain))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.URL, "https://klinik-a.example/assets/") || a.Size != uint64(len(plain)) ||
		len(a.Key) != 16 || len(a.Nonce) != 12 || a.HashAlg != HashSHA256 || len(a.Hash) != 32 {
		t.Fatalf("asset = %+v", a)
	}
	// Only ciphertext and its metadata are on disk.
	files, _ := os.ReadDir(dir)
	if len(files) != 2 || files[1].Name() != files[0].Name()+metaSuffix {
		t.Fatalf("files in the store: %v", files)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, files[0].Name()))
	if bytes.Contains(raw, plain) || len(raw) != len(plain)+tagSize {
		t.Fatalf("stored file is not the AES-GCM ciphertext (%d bytes)", len(raw))
	}
	for _, f := range files {
		if st, _ := os.Stat(filepath.Join(dir, f.Name())); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: file mode %v", f.Name(), st.Mode().Perm())
		}
	}
	if a.Expires.IsZero() || a.Expires.Sub(time.Now()) > DefaultExpiry || a.Expires.Sub(time.Now()) < DefaultExpiry-time.Minute {
		t.Errorf("Expires = %v, want about now + %v", a.Expires, DefaultExpiry)
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
		mod  func(*Asset)
		want error
	}{
		{"wrong hash", func(x *Asset) { x.Hash = append([]byte(nil), x.Hash...); x.Hash[0] ^= 1 }, ErrIntegrity},
		{"wrong key", func(x *Asset) { x.Key = make([]byte, 16) }, ErrIntegrity},
		{"foreign URL without a downloader", func(x *Asset) { x.URL = "https://evil.example/assets/" + strings.Repeat("a", 32) }, ErrNotFound},
		{"upper-case ID", func(x *Asset) { x.URL = strings.ToUpper(x.URL) }, ErrNotFound},
		{"query", func(x *Asset) { x.URL += "?a=b" }, ErrNotFound},
		{"path traversal", func(x *Asset) { x.URL = "https://klinik-a.example/assets/../../etc/passwd" }, ErrNotFound},
		{"unknown id", func(x *Asset) { x.URL = "https://klinik-a.example/assets/" + strings.Repeat("0", 32) }, ErrNotFound},
		{"other hash algorithm", func(x *Asset) { x.HashAlg = 7 }, ErrIntegrity},
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
	if _, err := s.Put(t.Context(), bytes.NewReader(make([]byte, 11)), Meta{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized read: %v", err)
	}
	if _, err := s.Put(t.Context(), bytes.NewReader(nil), Meta{Size: 11}); !errors.Is(err, ErrTooLarge) {
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
		if _, err := s.Put(b.Context(), bytes.NewReader(data), Meta{ContentType: "image/png"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestExpiryAndSweep moves the store's clock: an asset is served until it expires, is then
// ErrNotFound, and Sweep deletes it together with what a crash during Put leaves behind, but
// not a Put in progress (files younger than OrphanGrace) nor foreign files.
func TestExpiryAndSweep(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	s, err := New(dir, "klinik-a.example", 0, WithExpiry(24*time.Hour), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	put := func() (*Asset, string) {
		a, err := s.Put(t.Context(), strings.NewReader("Röntgenbild"), Meta{ContentType: "image/png"})
		if err != nil {
			t.Fatal(err)
		}
		return a, strings.TrimPrefix(a.URL, "https://klinik-a.example/assets/")
	}
	a, id := put()
	_, keepID := put()
	if !a.Expires.Equal(now.Add(24 * time.Hour).Truncate(time.Second)) {
		t.Errorf("Expires = %v", a.Expires)
	}
	// Leftovers of crashes, all old: a temporary file, ciphertext without metadata, metadata
	// without ciphertext, unreadable metadata. And young ones, as a Put in progress has them.
	old := now.Add(-2 * OrphanGrace)
	hex := func(c string) string { return strings.Repeat(c, 32) }
	write := func(name, data string, mtime time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write(hex("1")+tmpSuffix, "x", old)
	write(hex("2"), "ciphertext", old)
	write(hex("3")+metaSuffix, `{"expires":99999999999,"size":1}`, old)
	write(hex("4"), "ciphertext", old)
	write(hex("4")+metaSuffix, `not json`, old)
	write(hex("5")+tmpSuffix, "x", now)
	write(hex("6"), "ciphertext", now)
	write("README", "not ours", old)

	if _, _, err := s.OpenCiphertext(t.Context(), hex("2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("ciphertext without metadata: %v", err)
	}
	n, err := s.Sweep(t.Context())
	if err != nil || n != 5 {
		t.Fatalf("first sweep removed %d files: %v", n, err)
	}
	left := func() []string {
		var names []string
		es, _ := os.ReadDir(dir)
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	want := []string{hex("5") + tmpSuffix, hex("6"), "README"}
	for _, x := range []string{id, id + metaSuffix, keepID, keepID + metaSuffix} {
		want = append(want, x)
	}
	if got := left(); len(got) != len(want) {
		t.Fatalf("after the first sweep: %v, want %v", got, want)
	}
	if rc, err := s.Open(t.Context(), a); err != nil {
		t.Fatalf("open before expiry: %v", err)
	} else {
		rc.Close()
	}

	now = now.Add(24 * time.Hour)
	if _, err := s.Open(t.Context(), a); !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("open after expiry: %v", err)
	}
	if _, _, err := s.OpenCiphertext(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("serve after expiry: %v", err)
	}
	n, err = s.Sweep(t.Context())
	// Both assets expired; the young leftovers are now old enough too.
	if err != nil || n != 6 {
		t.Fatalf("second sweep removed %d files: %v (left %v)", n, err, left())
	}
	if got := left(); len(got) != 1 || got[0] != "README" {
		t.Errorf("after the second sweep: %v", got)
	}
}

func TestRunSweeps(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s, err := New(dir, "klinik-a.example", 0, WithExpiry(time.Second), WithClock(func() time.Time { return now.Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	// Written with the real clock, swept with one an hour ahead.
	if err := os.WriteFile(filepath.Join(dir, strings.Repeat("a", 32)+metaSuffix), []byte(`{"expires":1,"size":0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		es, _ := os.ReadDir(dir)
		if len(es) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not sweep: %v", es)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
