package mls

// The RFC 9420 test-vector runner.
//
// Every vector file is dispatched by its base name to a layout handler:
//   - vectorLayouts: files of mlswg/mls-implementations test-vectors/ (crypto-basics.json, ...)
//   - interopPassiveLayouts: files of interop/passive/ (welcome_join.json, ...)
//
// Handlers register themselves from the _test.go file that implements them:
//
//	func init() { vectorLayouts["welcome.json"] = testWelcomeVectors }
//
// TestVectors runs every *.json in testdata/ and testdata/mls-interop-passive/ and, when the
// environment variable MLS_TEST_VECTORS names a directory, every *.json in $MLS_TEST_VECTORS/mls/ and
// $MLS_TEST_VECTORS/mls-interop-passive/. A file with no registered layout fails the test: an unknown
// name says so, and a known layout that is not implemented yet names who implements it.
//
// Handlers should use runCases, which runs each case as a subtest and logs per-suite counts.

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// vectorLayout checks every test case of one vector file.
type vectorLayout func(t *testing.T, raw []byte)

var (
	// vectorLayouts maps a test-vectors/ file name to its handler.
	vectorLayouts = map[string]vectorLayout{}
	// interopPassiveLayouts maps an interop/passive/ file name to its handler.
	interopPassiveLayouts = map[string]vectorLayout{}
)

// pendingLayouts names the known upstream files whose handlers are not registered yet, and who
// implements them. A registered handler always wins over an entry here.
var pendingLayouts = map[string]string{
	"tree-operations.json":                "issue 5 (ratchet tree)",
	"tree-validation.json":                "issue 5 (ratchet tree)",
	"treekem.json":                        "issue 5 (TreeKEM)",
	"passive-client-welcome.json":         "issue 5 (group state machine)",
	"passive-client-handling-commit.json": "issue 5 (group state machine)",
	"passive-client-random.json":          "issue 5 (group state machine)",
}

// pendingInteropLayouts is pendingLayouts for interop/passive/ files (all share the passive-client layout).
var pendingInteropLayouts = map[string]string{
	"application.json":        "issue 5 (passive client)",
	"branch.json":             "issue 5 (passive client)",
	"commit.json":             "issue 5 (passive client)",
	"external_join.json":      "issue 5 (passive client)",
	"external_proposals.json": "issue 5 (passive client)",
	"reinit.json":             "issue 5 (passive client)",
	"welcome_join.json":       "issue 5 (passive client)",
}

func TestVectors(t *testing.T) {
	t.Parallel()
	t.Run("testdata", func(t *testing.T) {
		runVectorDir(t, "testdata", vectorLayouts, pendingLayouts)
		if _, err := os.Stat(filepath.Join("testdata", "mls-interop-passive")); err == nil {
			runVectorDir(t, filepath.Join("testdata", "mls-interop-passive"), interopPassiveLayouts, pendingInteropLayouts)
		}
	})
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		t.Log("MLS_TEST_VECTORS not set: ran the package's testdata only")
		return
	}
	t.Run("MLS_TEST_VECTORS", func(t *testing.T) {
		found := 0
		for _, sub := range []struct {
			name    string
			layouts map[string]vectorLayout
			pending map[string]string
		}{
			{"mls", vectorLayouts, pendingLayouts},
			{"mls-interop-passive", interopPassiveLayouts, pendingInteropLayouts},
		} {
			d := filepath.Join(dir, sub.name)
			if _, err := os.Stat(d); err != nil {
				t.Logf("MLS_TEST_VECTORS: no %s directory (%v)", sub.name, err)
				continue
			}
			found++
			t.Run(sub.name, func(t *testing.T) { runVectorDir(t, d, sub.layouts, sub.pending) })
		}
		if found == 0 {
			t.Fatalf("MLS_TEST_VECTORS=%s has neither mls/ nor mls-interop-passive/", dir)
		}
	})
}

// runVectorDir runs every *.json file in dir through its layout handler.
func runVectorDir(t *testing.T, dir string, layouts map[string]vectorLayout, pending map[string]string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	if len(files) == 0 {
		t.Fatalf("no vector files in %s", dir)
	}
	sort.Strings(files)
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			layout, ok := layouts[name]
			if !ok {
				if who, known := pending[name]; known {
					t.Errorf("%s: layout not implemented yet (%s); the file was included explicitly", f, who)
				} else {
					t.Errorf("%s: no layout registered for %q: register a handler in vectorLayouts or interopPassiveLayouts", f, name)
				}
				return
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("reading %s: %v", f, err)
			}
			layout(t, raw)
		})
	}
}

// hexBytes is a byte string written as lowercase hex in the vector files; JSON null decodes to nil.
type hexBytes []byte

// UnmarshalJSON decodes a hex string or null.
func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("hex field: %w", err)
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex field: %w", err)
	}
	*h = d
	return nil
}

// suiteCase is implemented by vector cases that carry a cipher suite.
type suiteCase interface{ suiteID() CipherSuite }

// suiteField is embedded by vector cases with a cipher_suite field.
type suiteField struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
}

func (s suiteField) suiteID() CipherSuite { return s.CipherSuite }

// runCases decodes raw as a JSON array of T, runs check on each case in a parallel subtest named
// "case<i>/suite<n>" (or "case<i>" when T has no suite), and logs how many cases passed per suite
// once all have run. A case whose suite is unsupported fails. An empty file fails.
func runCases[T any](t *testing.T, raw []byte, check func(t *testing.T, s *suite, c *T)) {
	t.Helper()
	var cases []T
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("decoding vector file: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("vector file has no test cases")
	}
	var mu sync.Mutex
	counts := map[CipherSuite]*caseCount{}
	// The cases run in parallel: the tally is logged when the last one is done.
	t.Cleanup(func() { logCounts(t, counts) })
	for i := range cases {
		c := &cases[i]
		var cs CipherSuite
		name := fmt.Sprintf("case%d", i)
		sc, hasSuite := any(c).(suiteCase)
		if hasSuite {
			cs = sc.suiteID()
			name += fmt.Sprintf("/suite%d", uint16(cs))
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				if counts[cs] == nil {
					counts[cs] = &caseCount{}
				}
				counts[cs].run++
				if !t.Failed() {
					counts[cs].passed++
				}
			}()
			var s *suite
			if hasSuite {
				var err error
				s, err = cs.impl()
				if err != nil {
					t.Fatalf("cipher suite %d: %v", cs, err)
				}
			}
			check(t, s, c)
		})
	}
}

// caseCount tallies the vector cases of one cipher suite.
type caseCount struct{ run, passed int }

// logCounts logs how many vector cases passed per cipher suite.
func logCounts(t *testing.T, counts map[CipherSuite]*caseCount) {
	keys := make([]CipherSuite, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	total, passed := 0, 0
	for _, k := range keys {
		c := counts[k]
		total += c.run
		passed += c.passed
		if k == 0 {
			parts = append(parts, fmt.Sprintf("no suite: %d/%d", c.passed, c.run))
		} else {
			parts = append(parts, fmt.Sprintf("suite %d: %d/%d", uint16(k), c.passed, c.run))
		}
	}
	t.Logf("%d/%d cases passed (%s)", passed, total, strings.Join(parts, ", "))
}

// equalHex fails the test when got != want, printing both in hex.
func equalHex(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if string(got) != string(want) {
		t.Errorf("%s:\n got  %x\n want %x", what, got, want)
	}
}

func init() { vectorLayouts["deserialization.json"] = testDeserializationVectors }

// testDeserializationVectors checks the MLS varint vector headers (core/tlspl has the same check;
// the runner needs a handler for every upstream file).
func testDeserializationVectors(t *testing.T, raw []byte) {
	type vlCase struct {
		Header hexBytes `json:"vlbytes_header"`
		Length uint64   `json:"length"`
	}
	runCases(t, raw, func(t *testing.T, _ *suite, c *vlCase) {
		r := tlspl.NewReader(c.Header)
		if got := r.Varint(); got != c.Length {
			t.Errorf("varint %x = %d, want %d", []byte(c.Header), got, c.Length)
		}
		if err := r.Finish(); err != nil {
			t.Errorf("varint %x: %v", []byte(c.Header), err)
		}
		var w tlspl.Writer
		w.Varint(c.Length)
		got, err := w.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		equalHex(t, "encoded header", got, c.Header)
	})
}
