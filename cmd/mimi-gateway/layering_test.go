package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/mimi-gateway/mimi-gateway"

// layerRules are the import rules of docs/architecture.md: the core never knows the adapters or
// the configuration file (each package owns its section's schema type, which config composes), the adapters
// never speak MLS or room policy (they see the bus envelope only), and nothing imports cmd.
var layerRules = []struct {
	from, to string // package path prefixes below the module
	why      string
}{
	{"core/", "bridges", "the core does not know the adapters"},
	{"core/", "config", "the core does not read the configuration file; config composes the core's schema types"},
	{"core/", "cmd/", "nothing imports the command"},
	{"bridges", "core/mls", "adapters never speak MLS"},
	{"bridges", "core/room", "adapters see roles as event values, not MLS room state"},
	{"bridges", "config", "adapters do not read the configuration file; config composes their schema types"},
	{"bridges", "cmd/", "nothing imports the command"},
	{"config", "cmd/", "nothing imports the command"},
}

// knownViolations are imports that break a rule and are being removed (none today). The test
// fails when one of them is gone (delete it here) as much as when a new one appears.
var knownViolations = []string{}

// hasPrefix reports whether pkg is prefix itself or below it ("bridges" matches "bridges" and
// "bridges/matrix", not "bridgesx").
func hasPrefix(pkg, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(pkg, prefix)
	}
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// TestLayering checks the direct imports of every non-test package in the module (go list) against
// layerRules.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "goolm", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, modulePath+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var found []string
	packages := 0
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		packages++
		from := strings.TrimPrefix(fields[0], modulePath+"/")
		for _, imp := range fields[1:] {
			to, ok := strings.CutPrefix(imp, modulePath+"/")
			if !ok {
				continue
			}
			for _, r := range layerRules {
				if hasPrefix(from, r.from) && hasPrefix(to, r.to) {
					v := from + " -> " + to
					if !slices.Contains(found, v) {
						found = append(found, v)
					}
					if !slices.Contains(knownViolations, v) {
						t.Errorf("%s: %s", v, r.why)
					}
				}
			}
		}
	}
	if packages < 10 {
		t.Fatalf("go list returned %d packages; expected the whole module:\n%s", packages, out)
	}
	for _, v := range knownViolations {
		if !slices.Contains(found, v) {
			t.Errorf("%s is gone: remove it from knownViolations", v)
		}
	}
}
