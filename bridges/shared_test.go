package bridges_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

func TestDefault(t *testing.T) {
	n, d, s := 0, time.Duration(5), "set"
	bridges.Default(&n, 7)
	bridges.Default(&d, time.Second)
	bridges.Default(&s, "other")
	if n != 7 || d != 5 || s != "set" {
		t.Fatalf("Default: %d %v %q, want 7 5ns \"set\"", n, d, s)
	}
}

// TestLoadSecret: the first call creates the secret, concurrent first calls agree, later calls
// (also after reopening the store) return it.
func TestLoadSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.db")
	st, err := store.Open(t.Context(), store.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([][]byte, 4)
	for i := range got {
		wg.Go(func() {
			k, err := bridges.LoadSecret(t.Context(), st.KV("test"), "salt")
			if err != nil {
				t.Error(err)
			}
			got[i] = k
		})
	}
	wg.Wait()
	for _, k := range got {
		if len(k) != 32 || !bytes.Equal(k, got[0]) {
			t.Fatalf("secrets %x, want one 32-byte secret", got)
		}
	}
	st.Close()
	st, err = store.Open(t.Context(), store.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if k, err := bridges.LoadSecret(t.Context(), st.KV("test"), "salt"); err != nil || !bytes.Equal(k, got[0]) {
		t.Fatalf("after reopening: %x, %v; want %x", k, err, got[0])
	}
}

// TestAttachments: a file stored for MIMI opens again to its plaintext; a larger one than the
// caller takes is unavailable and too large.
func TestAttachments(t *testing.T) {
	s, err := assets.New(filepath.Join(t.TempDir(), "assets"), "gw.example", 0)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("Befund\n"), 100)
	x, err := bridges.StoreAttachment(t.Context(), s, data, assets.Meta{ContentType: "text/plain", Filename: "befund.txt"}, "the report")
	if err != nil {
		t.Fatal(err)
	}
	if x.EncAlg != content.AEADAES128GCM || x.Filename != "befund.txt" || x.Description != "the report" || x.Size != uint64(len(data))+16 {
		t.Fatalf("external part %+v", x)
	}
	back, err := bridges.OpenAttachment(t.Context(), s, "mimi://gw.example/r/x", x, 1<<20)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("OpenAttachment: %d bytes, %v", len(back), err)
	}
	_, err = bridges.OpenAttachment(t.Context(), s, "mimi://gw.example/r/x", x, 10)
	if !errors.Is(err, assets.ErrUnavailable) || !errors.Is(err, bridges.ErrTooLarge) {
		t.Fatalf("OpenAttachment with max 10: %v, want unavailable and too large", err)
	}
}

func TestUserLanguages(t *testing.T) {
	var l bridges.UserLanguages
	l.Note("alice@localhost", "de-DE")
	l.Note("bob@localhost", "fr") // no catalogue: nothing changes
	for _, c := range []struct {
		user, configured string
		want             bridges.Language
	}{
		{"alice@localhost", "en", bridges.German},
		{"bob@localhost", "de", bridges.German},
		{"bob@localhost", "", bridges.English},
		{"carol@localhost", "xx", bridges.English},
	} {
		if got := l.Of(c.user, c.configured); got != c.want {
			t.Errorf("Of(%s, %q) = %v, want %v", c.user, c.configured, got, c.want)
		}
	}
}
