package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// runCLIEnv is runCLI with an environment.
func runCLIEnv(t *testing.T, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(args, strings.NewReader(""), &out, &errOut, environ)
	return code, out.String(), errOut.String()
}

// TestAdminStoreKeyRotate: a new key in front of the old one, `admin store-key rotate`
// re-encrypts everything and retires the old key, after which the new key alone opens the store.
func TestAdminStoreKeyRotate(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	env := []string{"MIMI_GATEWAY_DATA_DIR=" + dir, "MIMI_GATEWAY_STORE_ENCRYPTION_KEY_FILE=" + keyFile}
	newKey := func() string {
		code, out, stderr := runCLIEnv(t, nil, "admin", "store-key", "generate")
		if code != 0 {
			t.Fatalf("generate: exit %d: %s", code, stderr)
		}
		return strings.TrimSpace(out)
	}
	oldKey, nextKey := newKey(), newKey()
	if oldKey == nextKey || len(oldKey) != 44 {
		t.Fatalf("generate printed %q and %q", oldKey, nextKey)
	}
	writeKeyFile(t, keyFile, oldKey)
	cfg, err := config.Load(config.Options{Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), storeConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := st.KV("test").Put(t.Context(), k, []byte("secret "+k)); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	writeKeyFile(t, keyFile, nextKey, oldKey)
	code, out, stderr := runCLIEnv(t, env, "admin", "store-key", "rotate", "--batch", "2")
	if code != 0 || !strings.Contains(out, "re-encrypted 3") || !strings.Contains(out, "retired keys") {
		t.Fatalf("rotate: exit %d\nstdout: %s\nstderr: %s", code, out, stderr)
	}

	writeKeyFile(t, keyFile, nextKey)
	cfg, err = config.Load(config.Options{Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(t.Context(), storeConfig(cfg))
	if err != nil {
		t.Fatalf("the new key alone after rotation: %v", err)
	}
	defer st.Close()
	for _, k := range []string{"a", "b", "c"} {
		if e, err := st.KV("test").Get(t.Context(), k); err != nil || string(e.Value) != "secret "+k {
			t.Fatalf("%s: %q, %v", k, e.Value, err)
		}
	}
}

func writeKeyFile(t *testing.T, path string, keys ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRunRefusesWrongStoreKey: a gateway whose store key was replaced stops at start with a
// message that says so, and leaves the database as it was.
func TestRunRefusesWrongStoreKey(t *testing.T) {
	dir := t.TempDir()
	env := []string{"MIMI_GATEWAY_DATA_DIR=" + dir, "MIMI_GATEWAY_ADMIN_ADDRESS=" + freeAddr(t)}
	cfg, err := config.Load(config.Options{Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), storeConfig(cfg)) // creates <data_dir>/store.key
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(dir, "store.key")); err != nil {
		t.Fatalf("no default key file: %v", err)
	}
	other, _ := store.GenerateKey()
	writeKeyFile(t, filepath.Join(dir, "store.key"), other)
	code, _, stderr := runCLIEnv(t, env, "run")
	if code != exitError || !strings.Contains(stderr, "wrong encryption key") {
		t.Fatalf("run with a wrong key: exit %d, stderr:\n%s", code, stderr)
	}
	t.Logf("run: %s", stderr)
	if strings.Contains(stderr, other) {
		t.Fatal("the error shows the key")
	}
}
