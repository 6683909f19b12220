package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/console"
)

// TestFileEditor checks, applies and rolls back the configuration file: secrets stay in the
// file but never in what the editor hands out, an edit based on an old version is refused, a
// restart-only key is named, and only the configured number of versions is kept.
func TestFileEditor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	orig := "domain: a.example\ndata_dir: " + filepath.Join(dir, "data") + "\nbridges:\n  xmpp:\n    users:\n      secret: top-secret-value\n"
	if err := os.WriteFile(path, []byte(orig), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := config.Options{Path: path}
	mgr, err := config.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	reloads := 0
	hooks := &runtimeHooks{reload: func() (config.ReloadReport, error) { reloads++; return mgr.Reload() }}
	ed := newFileEditor(mgr, mgr.Current(), hooks)
	ed.keep = 2
	ctx := context.Background()

	f, err := ed.File()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(f.Text), "top-secret-value") || !strings.Contains(string(f.Text), config.RedactedValue) {
		t.Fatalf("file as shown:\n%s", f.Text)
	}
	if eff, _ := ed.Effective(); strings.Contains(string(eff), "top-secret-value") {
		t.Fatal("effective configuration shows the secret")
	}
	bad, err := ed.Check([]byte(strings.Replace(string(f.Text), "domain:", "domian:", 1)))
	if err != nil || len(bad.Errors) == 0 || bad.Errors[0].Line != 1 || !strings.Contains(bad.Errors[0].Text, "gw.yaml:1:1: domian") {
		t.Fatalf("typo: %+v, %v", bad, err)
	}
	edited := []byte(string(f.Text) + "shutdown_timeout: 9s\nlog:\n  level: debug\n")
	res, err := ed.Apply(ctx, edited, f.Version)
	if err != nil || len(res.Errors) > 0 || res.ReloadError != "" {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	if !slices.Contains(res.Restart, "shutdown_timeout") || !slices.Contains(res.Applied, "log.level") {
		t.Errorf("applied %v, restart %v", res.Applied, res.Restart)
	}
	disk, _ := os.ReadFile(path)
	if !strings.Contains(string(disk), "top-secret-value") || !strings.Contains(string(disk), "level: debug") {
		t.Fatalf("file after apply:\n%s", disk)
	}
	if mgr.Current().Log.Level != "debug" || reloads != 1 {
		t.Errorf("reload: level %q after %d reloads", mgr.Current().Log.Level, reloads)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v after the atomic write", fi.Mode().Perm())
	}
	// An edit that began before the apply is refused.
	if _, err := ed.Apply(ctx, edited, f.Version); !errors.Is(err, console.ErrConfigChanged) {
		t.Errorf("stale apply: %v", err)
	}
	for i := range 3 {
		cur, _ := ed.File()
		if _, err := ed.Apply(ctx, []byte(string(cur.Text)+"# edit "+string(rune('a'+i))+"\n"), cur.Version); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := ed.Versions()
	if err != nil || len(vs) != 2 {
		t.Fatalf("versions %+v, %v; want 2 kept", vs, err)
	}
	if _, err := ed.Rollback(ctx, "../../etc/passwd"); err == nil {
		t.Error("rollback to a path outside the versions directory")
	}
	if _, err := ed.Rollback(ctx, vs[1].ID); err != nil {
		t.Fatal(err)
	}
	disk, _ = os.ReadFile(path)
	if !strings.HasSuffix(string(disk), "# edit a\n") || !strings.Contains(string(disk), "top-secret-value") {
		t.Errorf("file after rollback:\n%s", disk)
	}
}
