package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	// Write atomically, as editors and ConfigMap updates do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, path, "domain: a.example\nlog:\n  level: info\n")
	m, err := NewManager(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	m.OnReload(func(old, cur *Config) { calls = append(calls, old.Log.Level+"->"+cur.Log.Level) })
	first := m.Current()

	// An invalid file leaves the running configuration untouched.
	writeFile(t, path, "domain: a.example\nlog:\n  levl: debug\n")
	if _, err := m.Reload(); err == nil {
		t.Fatal("reload of an invalid file succeeded")
	} else {
		var errs Errors
		if !errors.As(err, &errs) || errs[0].Pos.Line != 3 {
			t.Errorf("want a positioned error, got %v", err)
		}
	}
	if m.Current() != first {
		t.Fatal("invalid reload replaced the configuration")
	}

	// A valid file is swapped in; keys that need a restart keep their old values and are reported.
	writeFile(t, path, "domain: b.example\nlog:\n  level: debug\n  format: json\n"+
		"partners:\n  - {domain: p.example, discovery: true}\n")
	rep, err := m.Reload()
	if err != nil {
		t.Fatal(err)
	}
	cur := m.Current()
	if cur == first {
		t.Fatal("valid reload did not swap")
	}
	if cur.Log.Level != "debug" || len(cur.Partners) != 1 {
		t.Errorf("reloadable keys not applied: level %q partners %v", cur.Log.Level, cur.Partners)
	}
	if cur.Domain != "a.example" || cur.Log.Format != "text" {
		t.Errorf("restart-only keys changed at runtime: domain %q format %q", cur.Domain, cur.Log.Format)
	}
	if !slices.Equal(rep.Applied, []string{"log.level", "partners"}) || !slices.Equal(rep.Kept, []string{"domain", "log.format"}) {
		t.Errorf("report = %+v", rep)
	}
	if first.Log.Level != "info" || first.Domain != "a.example" {
		t.Error("the old snapshot was modified")
	}
	if !slices.Equal(calls, []string{"info->debug"}) {
		t.Errorf("OnReload calls = %q", calls)
	}

	// A deleted file is an error too, and changes nothing.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Reload(); err == nil || m.Current() != cur {
		t.Errorf("reload of a missing file: err %v, swapped %v", err, m.Current() != cur)
	}
}

// TestReloadConcurrentReaders runs readers against reloads; with -race it checks the swap is
// free of data races and readers always see a complete snapshot.
func TestReloadConcurrentReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	writeFile(t, path, "domain: a.example\nlog:\n  level: info\n")
	m, err := NewManager(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := m.Current()
				if c.Domain != "a.example" || (c.Log.Level != "info" && c.Log.Level != "debug") {
					t.Errorf("inconsistent snapshot: %q %q", c.Domain, c.Log.Level)
					return
				}
			}
		})
	}
	for i := range 50 {
		level := "info"
		if i%2 == 0 {
			level = "debug"
		}
		writeFile(t, path, "domain: a.example\nlog:\n  level: "+level+"\n")
		if _, err := m.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
