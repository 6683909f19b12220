package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

func TestMain(m *testing.M) { gt.Main(m) }

// docPath is a file of docs/, found from this package's directory.
func docPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "docs", name)
}

var (
	snippetsOnce sync.Once
	snippetsEN   map[string]string
	snippetsErr  error
)

// readSnippets returns the fenced blocks of a Markdown file whose info string names a snippet
// ("```yaml snippet=klinik-a.yaml"), by name.
func readSnippets(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	name, inFence := "", false
	var b strings.Builder
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		trimmed := strings.TrimSpace(l)
		switch {
		case !inFence && strings.HasPrefix(trimmed, "```"):
			inFence, name = true, ""
			for _, f := range strings.Fields(strings.TrimPrefix(trimmed, "```")) {
				if v, ok := strings.CutPrefix(f, "snippet="); ok {
					name = v
				}
			}
			b.Reset()
		case inFence && trimmed == "```":
			inFence = false
			if name != "" {
				if _, dup := out[name]; dup {
					return nil, fmt.Errorf("%s:%d: snippet %s defined twice", path, line, name)
				}
				out[name] = b.String()
			}
		case inFence:
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	if inFence {
		return nil, fmt.Errorf("%s: unterminated code block", path)
	}
	return out, sc.Err()
}

// snippet returns a configuration block of docs/walkthrough.md, with the organisation's
// domain replaced when the suite runs a second organisation of the same kind.
func snippet(t *testing.T, name string, replace ...string) string {
	t.Helper()
	snippetsOnce.Do(func() { snippetsEN, snippetsErr = readSnippets(docPath("walkthrough.md")) })
	if snippetsErr != nil {
		t.Fatal(snippetsErr)
	}
	s, ok := snippetsEN[name]
	if !ok {
		t.Fatalf("docs/walkthrough.md has no snippet %s", name)
	}
	return strings.NewReplacer(replace...).Replace(s)
}

// TestWalkthroughSnippets: the English and the German walkthrough carry the same configuration
// blocks, and the suite uses every one of the gateway configurations.
func TestWalkthroughSnippets(t *testing.T) {
	en, err := readSnippets(docPath("walkthrough.md"))
	if err != nil {
		t.Fatal(err)
	}
	de, err := readSnippets(docPath("walkthrough.de.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range en {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if de[n] != en[n] {
			t.Errorf("snippet %s differs between walkthrough.md and walkthrough.de.md", n)
		}
	}
	for n := range de {
		if _, ok := en[n]; !ok {
			t.Errorf("snippet %s is only in walkthrough.de.md", n)
		}
	}
	for _, n := range []string{"klinik-a.yaml", "klinik-a-client.yaml", "amt-b.yaml", "amt-b-matrix.yaml", "prosody-amt-b.cfg.lua"} {
		if _, ok := en[n]; !ok {
			t.Errorf("walkthrough.md lacks snippet %s", n)
		}
	}
}

// Organisations as the walkthrough describes them. A second organisation of a kind (for the
// XMPP ↔ XMPP and Matrix ↔ Matrix pairs) is the same configuration under another domain.

func klinikA(t *testing.T, ca *protocoltest.CA, mode string) *gt.MatrixOrg {
	t.Helper()
	name := "klinik-a.yaml"
	if mode == gt.ModeClient {
		name = "klinik-a-client.yaml"
	}
	return gt.NewMatrixOrg(t, ca, gt.MatrixOptions{Domain: "klinik-a.example", Mode: mode, Layers: []string{snippet(t, name)}})
}

func amtBMatrix(t *testing.T, ca *protocoltest.CA, domain string) *gt.MatrixOrg {
	t.Helper()
	return gt.NewMatrixOrg(t, ca, gt.MatrixOptions{Domain: domain, Mode: gt.ModeAppservice,
		Layers: []string{snippet(t, "amt-b-matrix.yaml", "amt-b.example", domain)}})
}

func amtBXMPP(t *testing.T, ca *protocoltest.CA, domain string, users ...string) *gt.XMPPOrg {
	t.Helper()
	pw := map[string]string{}
	for _, u := range users {
		pw[u] = "password-" + u
	}
	return gt.NewXMPPOrg(t, ca, gt.XMPPOptions{Domain: domain, Users: pw,
		Layers:        []string{snippet(t, "amt-b.yaml", "amt-b.example", domain, "amt-b/", orgDir(domain)+"/")},
		ProsodyConfig: snippet(t, "prosody-amt-b.cfg.lua", "amt-b.example", domain, "amt-b/", orgDir(domain)+"/")})
}

// orgDir is the walkthrough's directory of an organisation: amt-b for amt-b.example.
func orgDir(domain string) string {
	d, _, _ := strings.Cut(domain, ".")
	return d
}

// startAll starts the gateways (each a partner of the others) and waits until all are ready.
func startAll(t *testing.T, gws ...*gt.Gateway) {
	t.Helper()
	gt.Connect(gws...)
	for _, g := range gws {
		g.Start(t)
	}
	for _, g := range gws {
		g.WaitReady(t, readyWait)
	}
}
