package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/ops"
)

// run executes the CLI in-process and returns the exit code, stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(args, strings.NewReader(stdin), &out, &errOut, nil)
	return code, out.String(), errOut.String()
}

func TestConfigExampleValidates(t *testing.T) {
	code, example, stderr := runCLI(t, "", "config", "example")
	if code != 0 || !strings.Contains(example, "domain: localhost") {
		t.Fatalf("config example: exit %d, stderr %q", code, stderr)
	}
	f := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(f, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, "", "config", "validate", f)
	if code != 0 || out != f+": valid\n" {
		t.Fatalf("config validate: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if !strings.Contains(stderr, "warning: domain is \"localhost\"") {
		t.Errorf("no warning about the local domain: %q", stderr)
	}
}

func TestConfigValidateReportsAllErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f.yaml")
	src := "domain: klinik-a.example\n" +
		"store:\n" +
		"  drivr: sqlite\n" + // misspelt key
		"bus:\n" +
		"  max_deliveries: many\n" + // wrong type
		"partners:\n" +
		"  - base_url: https://mimi.amt-b.example/\n" // missing required domain
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "validate", f}, {"--config", f, "config", "validate"}} {
		code, out, stderr := runCLI(t, "", args...)
		want := f + `:3:3: store.drivr: unknown key "drivr" (did you mean "driver"?)` + "\n" +
			f + `:5:19: bus.max_deliveries: want an integer, got "many"` + "\n" +
			f + `:7:5: partners[0].domain: missing required value` + "\n"
		if code != exitConfig || out != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q\nstderr:\n%s\nwant:\n%s", args, code, out, stderr, want)
		}
	}
}

func TestConfigValidateNeedsAFile(t *testing.T) {
	code, _, stderr := runCLI(t, "", "config", "validate")
	if code != exitError || !strings.Contains(stderr, "no file given") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "config", "validate", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitConfig || !strings.Contains(stderr, "no such file") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(f, []byte("domain: a.example\nlog:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := execute([]string{"config", "validate"}, strings.NewReader(""), &out, &errOut, []string{"MIMI_GATEWAY_CONFIG=" + f})
	if code != exitConfig || !strings.HasPrefix(errOut.String(), f+":3:10: log.level:") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestInspectContent(t *testing.T) {
	data, err := os.ReadFile("testdata/original.cbor")
	if err != nil {
		t.Fatal(err)
	}
	const wantID = "message ID (draft-08): 017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4"
	code, fromFile, stderr := runCLI(t, "", "inspect", "content", "testdata/original.cbor")
	if code != 0 || !strings.Contains(fromFile, wantID) || !strings.Contains(fromFile, "(from extensions 1 and 2)") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, stderr, fromFile)
	}
	code, fromStdin, _ := runCLI(t, string(data), "inspect", "content", "-")
	if code != 0 || fromStdin != fromFile {
		t.Errorf("stdin gives another result (exit %d):\n%s", code, fromStdin)
	}
	// Flags override extensions 1 and 2, which changes the message ID.
	code, out, _ := runCLI(t, "", "inspect", "content", "--sender", "mimi://a.example/u/bob",
		"--room", "mimi://a.example/r/x", "testdata/original.cbor")
	if code != 0 || strings.Contains(out, wantID) || !strings.Contains(out, "mimi://a.example/u/bob") {
		t.Errorf("overrides not applied (exit %d):\n%s", code, out)
	}
	code, _, stderr = runCLI(t, "not cbor", "inspect", "content", "-")
	if code != exitError || !strings.Contains(stderr, "inspect:") {
		t.Errorf("garbage: exit %d, stderr %q", code, stderr)
	}
}

func TestInspectMLS(t *testing.T) {
	code, fromHex, stderr := runCLI(t, "", "inspect", "mls", "testdata/key_package.hex")
	if code != 0 || !strings.Contains(fromHex, "KeyPackage") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, stderr, fromHex)
	}
	raw, err := os.ReadFile("testdata/key_package.bin")
	if err != nil {
		t.Fatal(err)
	}
	code, fromStdin, _ := runCLI(t, string(raw), "inspect", "mls", "-")
	if code != 0 || fromStdin != fromHex {
		t.Errorf("raw bytes on stdin give another result (exit %d):\n%s", code, fromStdin)
	}
	code, _, stderr = runCLI(t, "\x00\x01garbage", "inspect", "mls", "-")
	if code != exitError || !strings.Contains(stderr, "mls") {
		t.Errorf("garbage: exit %d, stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "mimi-gateway ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("exit %d, out %q", code, out)
	}
	code, out, _ = runCLI(t, "", "version", "--json")
	if code != 0 || !strings.Contains(out, `"go_version":"`+runtime.Version()+`"`) {
		t.Errorf("exit %d, out %q", code, out)
	}
}

func TestHealthcheckFailsWithoutGateway(t *testing.T) {
	addr := freeAddr(t)
	code, _, stderr := runCLI(t, "", "healthcheck", "--addr", addr)
	if code != exitError || !strings.Contains(stderr, "connection refused") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestHealthcheckConfiguredAddress: without --addr, healthcheck probes admin.address as run
// reads it: from --config, from $MIMI_GATEWAY_CONFIG, from MIMI_GATEWAY_ADMIN_ADDRESS (which
// beats the file); a failed probe says which address it tried and where that came from.
func TestHealthcheckConfiguredAddress(t *testing.T) {
	admin := ops.NewAdmin()
	addr, err := admin.Start(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Shutdown(context.Background()) })
	admin.MarkStarted()
	dir := t.TempDir()
	file := filepath.Join(dir, "gateway.yaml")
	writeConfig(t, file, "admin:\n  address: "+addr.String()+"\n")
	other := filepath.Join(dir, "other.yaml")
	down := freeAddr(t)
	writeConfig(t, other, "admin:\n  address: "+down+"\n")
	tests := []struct {
		name    string
		environ []string
		args    []string
		ready   bool
		from    string // in the error of a failed probe
	}{
		{"--config", nil, []string{"--config", file}, true, ""},
		{"MIMI_GATEWAY_CONFIG", []string{"MIMI_GATEWAY_CONFIG=" + file}, nil, true, ""},
		{"environment beats the file", []string{"MIMI_GATEWAY_ADMIN_ADDRESS=" + addr.String()}, []string{"--config", other}, true, ""},
		{"file without a gateway", nil, []string{"--config", other}, false, other},
		{"environment without a gateway", []string{"MIMI_GATEWAY_ADMIN_ADDRESS=" + down}, nil, false, "MIMI_GATEWAY_ADMIN_ADDRESS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLIEnv(t, tc.environ, append(tc.args, "healthcheck", "--timeout", "3s")...)
			switch {
			case tc.ready && (code != 0 || out != "ready\n"):
				t.Fatalf("exit %d, out %q, stderr %q; want ready", code, out, stderr)
			case !tc.ready && (code != exitError || !strings.Contains(stderr, down) || !strings.Contains(stderr, tc.from)):
				t.Fatalf("exit %d, stderr %q; want a failure naming %s and %s", code, stderr, down, tc.from)
			}
		})
	}
}
