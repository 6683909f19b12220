package syscount

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCountsFsyncs fsyncs a file a known number of times, from this goroutine and from
// goroutines that may run on other threads, and checks that the counter saw at least those.
func TestCountsFsyncs(t *testing.T) {
	c, err := Open(Fsyncs)
	if err != nil {
		t.Skipf("perf events not available here: %v", err)
	}
	defer c.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before, err := c.Count()
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	done := make(chan error, n)
	for range n {
		go func() { done <- f.Sync() }()
	}
	for range n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	after, err := c.Count()
	if err != nil {
		t.Fatal(err)
	}
	if after-before < n {
		t.Fatalf("counted %d fsyncs, made %d", after-before, n)
	}
}

// TestStart: the function Start returns counts the fsyncs made since Start.
func TestStart(t *testing.T) {
	since, err := Start(Fsyncs)
	if err != nil {
		t.Skipf("perf events not available here: %v", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const n = 5
	for range n {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := since(); err != nil || got < n {
		t.Fatalf("since = %d, %v; made %d fsyncs", got, err, n)
	}
}
