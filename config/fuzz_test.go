package config

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader: it must return a configuration or Errors, and
// never panic. Each error carries a message.
func FuzzParse(f *testing.F) {
	f.Add(Example())
	f.Add([]byte("domain: a.example\nbus:\n  ackwait: 1s\n  max_deliveries: x\npartners:\n  - base_url: https://p/\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("x: &x {y: *x}\ndomain: *x\n"))
	f.Add([]byte("domain: [\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("bus: {embedded: {max_memory: 99999999999TiB}}\n"))
	f.Add([]byte("partners: [{domain: a, base_url: 'https://x'}, {discovery: true}]\nstore: {driver: postgres}\n"))
	f.Add([]byte("? [a, b]\n: c\n"))
	f.Add([]byte("log: !!binary aGVsbG8=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) {
			t.Fatalf("error is not Errors: %v", err)
		}
		if len(errs) == 0 {
			t.Fatal("empty Errors")
		}
		for _, e := range errs {
			if e.Msg == "" {
				t.Fatalf("error without message: %+v", e)
			}
		}
	})
}

// BenchmarkParse measures loading a file the size of the example (the cost of a reload).
func BenchmarkParse(b *testing.B) {
	data := Example()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("example.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
