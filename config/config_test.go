package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the example")

func TestExampleIsValidAndComplete(t *testing.T) {
	cfg, err := Parse("example.yaml", Example())
	if err != nil {
		t.Fatalf("example does not load: %v", err)
	}
	def, err := defaults()
	if err != nil {
		t.Fatal(err)
	}
	def.source = cfg.source
	def.warnings = cfg.warnings
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("parsing the example gives something else than the defaults:\n%+v\n%+v", cfg, def)
	}
	// Every key of the schema appears in the example (it is the single source of defaults) and
	// every key in the example carries a comment.
	root, perr := parseYAML("example.yaml", exampleYAML)
	if perr != nil {
		t.Fatal(perr)
	}
	inExample := map[string]bool{}
	var walk func(path string, m *yaml.Node)
	walk = func(path string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			p := join(path, k.Value)
			if v.Kind == yaml.MappingNode {
				walk(p, v)
				continue
			}
			inExample[p] = true
			if strings.TrimSpace(k.HeadComment) == "" {
				t.Errorf("example.yaml:%d: key %s has no comment", k.Line, p)
			}
		}
	}
	walk("", root.Content[0])
	for _, k := range envKeys() {
		if !inExample[k.path] {
			t.Errorf("key %s is missing from example.yaml", k.path)
		}
	}
}

func TestDefaultsWithoutFile(t *testing.T) {
	cfg, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "localhost" || cfg.Bus.Mode != "embedded" || cfg.Store.Driver != "sqlite" {
		t.Errorf("defaults: domain %q bus %q store %q", cfg.Domain, cfg.Bus.Mode, cfg.Store.Driver)
	}
	if len(cfg.Warnings()) != 1 || !strings.Contains(cfg.Warnings()[0], "localhost") {
		t.Errorf("want one warning about the local domain, got %q", cfg.Warnings())
	}
	wd, _ := os.Getwd()
	if got, want := cfg.SQLitePath(), filepath.Join(wd, "data", "mimi-gateway.db"); got != want {
		t.Errorf("SQLitePath = %q, want %q", got, want)
	}
	if got, want := cfg.NATSStoreDir(), filepath.Join(wd, "data", "nats"); got != want {
		t.Errorf("NATSStoreDir = %q, want %q", got, want)
	}
	if cfg.Bus.Embedded.MaxMemory != 64<<20 || cfg.Bus.DedupeWindow != time.Hour {
		t.Errorf("sizes/durations: %v %v", cfg.Bus.Embedded.MaxMemory, cfg.Bus.DedupeWindow)
	}
}

func TestFileOverridesDefaults(t *testing.T) {
	cfg, err := Parse("f.yaml", []byte(`
domain: klinik-a.example
bus:
  embedded:
    max_store: 1GiB
partners:
  - domain: amt-b.example
    base_url: https://mimi.amt-b.example/
  - domain: klinik-c.example
    discovery: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "klinik-a.example" || cfg.Bus.Embedded.MaxStore != 1<<30 {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	if cfg.Bus.Embedded.MaxMemory != 64<<20 || cfg.Bus.Mode != "embedded" {
		t.Errorf("defaults next to overridden keys lost: %+v", cfg.Bus)
	}
	if len(cfg.Partners) != 2 || !cfg.Partners[1].Discovery {
		t.Errorf("partners: %+v", cfg.Partners)
	}
	if len(cfg.Warnings()) != 0 {
		t.Errorf("unexpected warnings %q", cfg.Warnings())
	}
}

// TestErrors checks each kind of error with its exact position and key path.
func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // "line:col path: message fragment"
	}{
		{
			name: "misspelt key, wrong type and missing required value at once",
			yaml: "domain: klinik-a.example\n" +
				"bus:\n" +
				"  ackwait: 10s\n" +
				"  max_deliveries: ten\n" +
				"partners:\n" +
				"  - base_url: https://p.example/\n",
			want: []string{
				`f.yaml:3:3: bus.ackwait: unknown key "ackwait" (did you mean "ack_wait"?)`,
				`f.yaml:4:19: bus.max_deliveries: want an integer, got "ten"`,
				`f.yaml:6:5: partners[0].domain: missing required value`,
			},
		},
		{
			name: "lease too short, advertise address without a port",
			yaml: "domain: a.example\nha:\n  lease_ttl: 1s\n  advertise_address: 10.0.0.7\n",
			want: []string{
				`f.yaml:3:14: ha.lease_ttl: 1s is shorter than 3s`,
				`f.yaml:4:22: ha.advertise_address:`,
			},
		},
		{
			name: "unknown top-level key",
			yaml: "domain: a.example\nfoo: 1\n",
			want: []string{`f.yaml:2:1: foo: unknown key "foo"`},
		},
		{
			name: "mapping where a scalar belongs",
			yaml: "domain:\n  x: 1\n",
			want: []string{`f.yaml:2:3: domain: want a string, got a mapping`},
		},
		{
			name: "list where a mapping belongs",
			yaml: "domain: a.example\nstore: [1, 2]\n",
			want: []string{`f.yaml:2:8: store: want a mapping, got a list`},
		},
		{
			name: "bad duration and bad size",
			yaml: "domain: a.example\nbus:\n  ack_wait: 30\n  embedded:\n    max_memory: lots\n",
			want: []string{
				`f.yaml:3:13: bus.ack_wait: want a duration such as 30s or 5m, got integer 30`,
				`f.yaml:5:17: bus.embedded.max_memory: invalid size "lots"`,
			},
		},
		{
			name: "bool expected",
			yaml: "domain: a.example\nbridges:\n  matrix:\n    enabled: maybe\n",
			want: []string{`f.yaml:4:14: bridges.matrix.enabled: want true or false, got "maybe"`},
		},
		{
			name: "duplicate key",
			yaml: "domain: a.example\ndomain: b.example\n",
			want: []string{`f.yaml:2:1: domain: duplicate key "domain"`},
		},
		{
			name: "invalid enum value",
			yaml: "domain: a.example\nbus:\n  mode: cluster\n",
			want: []string{`f.yaml:3:9: bus.mode: "cluster" is not one of embedded, external`},
		},
		{
			name: "postgres without dsn or key: position of the nearest written key",
			yaml: "domain: a.example\nstore:\n  driver: postgres\n",
			want: []string{
				`f.yaml:3:3: store.encryption.key: missing required value (store.driver is postgres: every replica needs the same key; set key_file)`,
				`f.yaml:3:3: store.postgres.dsn: missing required value (store.driver is postgres; or set dsn_file)`,
			},
		},
		{
			name: "external bus without urls",
			yaml: "domain: a.example\nbus:\n  mode: external\nstore:\n  driver: postgres\n  postgres:\n    dsn: postgres://x@db/gw\n  encryption:\n    key: k\n",
			want: []string{`f.yaml:3:3: bus.external.urls: missing required value (bus.mode is external)`},
		},
		{
			name: "empty required domain",
			yaml: "domain: \"\"\n",
			want: []string{`f.yaml:1:9: domain: missing required value (the provider's DNS domain)`},
		},
		{
			name: "mimi listener needs its files",
			yaml: "domain: a.example\nmimi:\n  address: \":8443\"\n",
			want: []string{
				`f.yaml:3:3: mimi.cert_file: missing required value (mimi.address is set)`,
				`f.yaml:3:3: mimi.client_ca_file: missing required value (mimi.address is set)`,
				`f.yaml:3:3: mimi.key_file: missing required value (mimi.address is set)`,
			},
		},
		{
			name: "partners: duplicate domain, http URL, both base_url and discovery",
			yaml: "domain: a.example\npartners:\n" +
				"  - {domain: b.example, base_url: http://b.example/}\n" +
				"  - {domain: B.example, discovery: true, base_url: https://b.example/}\n",
			want: []string{
				`f.yaml:3:35: partners[0].base_url: "http://b.example/" is not an https URL`,
				`f.yaml:4:14: partners[1].domain: "B.example" is already partners[0]`,
				`f.yaml:4:36: partners[1].discovery: set either base_url or discovery, not both`,
			},
		},
		{
			name: "URLs: bad scheme, unparsable, credentials never echoed",
			yaml: "domain: a.example\nbus:\n  mode: external\n  external:\n    urls: ['http://u:secret@n1:4222', '::']\n" +
				"store: {driver: postgres, postgres: {dsn: x}, encryption: {key: k}}\n",
			want: []string{
				`f.yaml:5:12: bus.external.urls[0]: "http://u:xxxxx@n1:4222": scheme must be nats, tls, ws or wss`,
				`f.yaml:5:39: bus.external.urls[1]: not a URL such as nats://host:4222`,
			},
		},
		{
			name: "syntax error",
			yaml: "domain: a.example\nbus:\n  mode: [\n",
			want: []string{`f.yaml:3: invalid YAML: did not find expected node content`},
		},
		{
			name: "two documents",
			yaml: "domain: a.example\n---\ndomain: b.example\n",
			want: []string{`f.yaml:2:1: more than one YAML document`},
		},
		{
			name: "merge keys refused",
			yaml: "domain: a.example\nlog:\n  <<: {level: debug}\n",
			want: []string{`f.yaml:3:3: log.<<: merge keys (<<) are not supported`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want Errors, got %v", err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				if got := errs[i].Error(); !strings.HasPrefix(got, w) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, got, w)
				}
			}
		})
	}
}

func TestSyntaxErrorLine(t *testing.T) {
	_, err := Parse("f.yaml", []byte("domain: a.example\nbus:\n\tmode: x\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Pos.Line != 3 {
		t.Fatalf("want one error on line 3, got %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte("postgres://gw@db/gw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Options{Environ: []string{
		"PATH=/bin",
		"MIMI_GATEWAY_CONFIG=ignored.yaml",
		"MIMI_GATEWAY_DOMAIN=klinik-a.example",
		"MIMI_GATEWAY_BUS_MODE=external",
		"MIMI_GATEWAY_BUS_EXTERNAL_URLS=[nats://n1:4222, nats://n2:4222]",
		"MIMI_GATEWAY_BUS_ACK_WAIT=45s",
		"MIMI_GATEWAY_BUS_EXTERNAL_REPLICAS=5",
		"MIMI_GATEWAY_STORE_DRIVER=postgres",
		"MIMI_GATEWAY_STORE_POSTGRES_DSN_FILE=" + dsnFile,
		"MIMI_GATEWAY_STORE_ENCRYPTION_KEY_FILE=" + dsnFile,
		"MIMI_GATEWAY_BRIDGES_MATRIX_ENABLED=true",
		"MIMI_GATEWAY_PARTNERS=[{domain: amt-b.example, discovery: true}]",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "klinik-a.example" || cfg.Bus.Mode != "external" || cfg.Bus.AckWait != 45*time.Second ||
		cfg.Bus.External.Replicas != 5 || !cfg.Bridges.Matrix.Enabled {
		t.Errorf("env not applied: %+v", cfg)
	}
	if !slices.Equal(cfg.Bus.External.URLs, []string{"nats://n1:4222", "nats://n2:4222"}) {
		t.Errorf("urls = %q", cfg.Bus.External.URLs)
	}
	if cfg.Store.Postgres.DSN != "postgres://gw@db/gw" {
		t.Errorf("dsn from file = %q", cfg.Store.Postgres.DSN)
	}
	if len(cfg.Partners) != 1 || cfg.Partners[0].Domain != "amt-b.example" {
		t.Errorf("partners = %+v", cfg.Partners)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("domain: a.example\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(Options{Path: path, Environ: []string{"MIMI_GATEWAY_LOG_LEVEL=warn"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "warn" || cfg.Domain != "a.example" || cfg.Source() != path {
		t.Errorf("got level %q domain %q source %q", cfg.Log.Level, cfg.Domain, cfg.Source())
	}
}

func TestEnvErrorsNameTheVariable(t *testing.T) {
	_, err := Load(Options{Environ: []string{
		"MIMI_GATEWAY_BUS_MAX_DELIVERIES=many",
		"MIMI_GATEWAY_STORE_DRIVR=postgres",
		"MIMI_GATEWAY_BUS_EXTERNAL_URLS=[unclosed",
		"MIMI_GATEWAY_LOG_LEVEL=loud",
	}})
	want := []string{
		`MIMI_GATEWAY_BUS_EXTERNAL_URLS: bus.external.urls: invalid YAML value`,
		`MIMI_GATEWAY_BUS_MAX_DELIVERIES: bus.max_deliveries: want an integer, got "many"`,
		`MIMI_GATEWAY_LOG_LEVEL: log.level: "loud" is not one of debug, info, warn, error`,
		`MIMI_GATEWAY_STORE_DRIVR: no configuration key matches this variable (did you mean MIMI_GATEWAY_STORE_DRIVER?)`,
	}
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != len(want) {
		t.Fatalf("want %d errors, got %v", len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d:\n got %s\nwant %s...", i, errs[i], w)
		}
	}
}

func TestEnvNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	var walk func(prefix string, t2 reflect.Type)
	walk = func(prefix string, t2 reflect.Type) {
		for _, f := range orderedFields(t2) {
			p := join(prefix, f.name)
			if prev, dup := seen[EnvName(p)]; dup {
				t.Errorf("%s and %s share the variable %s", prev, p, EnvName(p))
			}
			seen[EnvName(p)] = p
			if f.typ.Kind() == reflect.Struct && f.typ != durationType {
				walk(p, f.typ)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, yaml, want string }{
		{"both set", "domain: a.example\nstore:\n  postgres:\n    dsn: x\n    dsn_file: /nonexistent\n",
			`f.yaml:5:15: store.postgres.dsn_file: set either dsn or dsn_file, not both`},
		{"missing file", "domain: a.example\nstore:\n  postgres:\n    dsn_file: " + filepath.Join(dir, "nope") + "\n",
			`f.yaml:4:15: store.postgres.dsn_file: reading secret: open `},
		{"empty file", "domain: a.example\nstore:\n  postgres:\n    dsn_file: " + empty + "\n",
			`f.yaml:4:15: store.postgres.dsn_file: secret file ` + empty + ` is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %s...", err, tt.want)
			}
		})
	}
}

// TestAliasBomb checks that nested aliases ("billion laughs") cost neither time nor memory: the
// schema has no unbounded recursion, so an alias to a list of lists stops at the first level.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("domain: a.example\nbus:\n  external:\n    urls: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	b.WriteString("partners:\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "  - &a%d [", i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "mimi: {address: *a8}\n")
	_, err := Parse("bomb.yaml", []byte(b.String()))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 9 {
		t.Fatalf("want 9 type errors, got %v", err)
	}
	if want := "bomb.yaml:14:17: mimi.address: want a string, got a list"; errs[8].Error() != want {
		t.Errorf("last error %q, want %q", errs[8], want)
	}
}

func TestNodeAndErrorLimits(t *testing.T) {
	big := "domain: a.example\nbus:\n  external:\n    urls: [" + strings.Repeat("a,", maxNodes) + "a]\n"
	_, err := Parse("big.yaml", []byte(big))
	if err == nil || !strings.Contains(err.Error(), "document too large or too many alias expansions (limit 100000 nodes)") {
		t.Errorf("want a node-limit error, got %.200v", err)
	}
	var many strings.Builder
	for i := range 300 {
		fmt.Fprintf(&many, "k%d: 1\n", i)
	}
	_, err = Parse("many.yaml", []byte(many.String()))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != maxErrors+1 || errs[maxErrors].Msg != "200 more errors not shown" {
		t.Errorf("want %d errors and a summary, got %d", maxErrors+1, len(errs))
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{"1024", 1024, false}, {"64MiB", 64 << 20, false}, {"10GiB", 10 << 30, false},
		{"1KB", 1000, false}, {"5 GB", 5e9, false}, {"3B", 3, false},
		{"-1", 0, true}, {"1.5GiB", 0, true}, {"MiB", 0, true}, {"99999999999TiB", 0, true}, {"", 0, true},
	}
	for _, tt := range tests {
		var b ByteSize
		err := b.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.err || (!tt.err && b != tt.want) {
			t.Errorf("%q: got %d, %v; want %d, err %v", tt.in, b, err, tt.want, tt.err)
		}
	}
	if s := ByteSize(64 << 20).String(); s != "64MiB" {
		t.Errorf("String = %q", s)
	}
	if s := ByteSize(1000).String(); s != "1000B" {
		t.Errorf("String = %q", s)
	}
}

// TestConfigurationDoc keeps docs/configuration.md in sync with example.yaml. Run
// `go test ./config -run TestConfigurationDoc -update` to regenerate it.
func TestConfigurationDoc(t *testing.T) {
	const (
		path  = "../docs/configuration.md"
		begin = "<!-- BEGIN GENERATED: go test ./config -run TestConfigurationDoc -update -->\n"
		end   = "<!-- END GENERATED -->\n"
	)
	ref, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-section markers", path)
	}
	cur := s[i+len(begin) : j]
	if cur == ref {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i+len(begin)]+ref+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with example.yaml; run: go test ./config -run TestConfigurationDoc -update", path)
}

func TestHotKeys(t *testing.T) {
	want := []string{"log.level", "partners"}
	if got := HotKeys(); !slices.Equal(got, want) {
		t.Errorf("HotKeys = %q, want %q", got, want)
	}
}

// TestHAAdvertiseAddress: with several replicas a MIMI listener on every interface needs
// ha.advertise_address (the others could not reach this replica); a named host or the key do.
func TestHAAdvertiseAddress(t *testing.T) {
	base := "domain: a.example\nbus:\n  mode: external\n  external:\n    urls: [nats://n1:4222]\n" +
		"store:\n  driver: postgres\n  postgres:\n    dsn: postgres://db/gw\n  encryption:\n    key: k\n" +
		"mimi:\n  cert_file: c.pem\n  key_file: k.pem\n  client_ca_file: ca.pem\n"
	for _, tt := range []struct {
		name, extra string
		wantErr     bool
	}{
		{"all interfaces", "  address: 0.0.0.0:8443\n", true},
		{"all interfaces, no host", "  address: :8443\n", true},
		{"a named host", "  address: 10.0.0.7:8443\n", false},
		{"all interfaces and the key", "  address: 0.0.0.0:8443\nha:\n  advertise_address: 10.0.0.7:8443\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(base+tt.extra))
			has := err != nil && strings.Contains(err.Error(), "ha.advertise_address: required with several replicas")
			if has != tt.wantErr {
				t.Fatalf("error %v; want the ha.advertise_address error: %v", err, tt.wantErr)
			}
		})
	}
}

// TestMatrixSection: the bridges.matrix section is bridges/matrix's own Config. Its Validate's
// problems are placed at their key's file:line:col; a missing required value is a warning at load
// (the adapter refuses to start without it); an optional *bool decodes as set.
func TestMatrixSection(t *testing.T) {
	src := "domain: a.example\nbridges:\n  matrix:\n    enabled: true\n    appservice:\n      bot_localpart: Mimi_Bot\n" +
		"    client:\n      permission_check: false\n"
	_, err := Parse("f.yaml", []byte(src))
	want := `f.yaml:6:22: bridges.matrix.appservice.bot_localpart: "Mimi_Bot" is not a valid Matrix localpart`
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v; want one: %s", err, want)
	}
	cfg, err := Parse("f.yaml", []byte(strings.Replace(src, "Mimi_Bot", "mimibot", 1)))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(cfg.Warnings(), "\n")
	for _, k := range []string{"bridges.matrix.homeserver_url: missing required value", "bridges.matrix.encryption.pickle_key: missing required value"} {
		if !strings.Contains(w, k) {
			t.Errorf("warnings %q lack %q", w, k)
		}
	}
	m := cfg.MatrixConfig()
	if pc := m.Client.PermissionCheck; pc == nil || *pc || !*m.Encryption.Default {
		t.Errorf("permission_check %v, encryption.default %v: want false (set) and true (default)", pc, *m.Encryption.Default)
	}
	if m.ServerName != "a.example" || m.GatewayDomain != "a.example" || m.Appservice.URL != "http://127.0.0.1:29333" {
		t.Errorf("top-level values not filled in: %+v", m)
	}
}

// TestXMPPSection: the bridges.xmpp section is bridges/xmpp's own Config; its Validate's problems
// are errors placed at their key's file:line:col (a missing secret among them).
func TestXMPPSection(t *testing.T) {
	src := "domain: a.example\nbridges:\n  xmpp:\n    enabled: true\n    users:\n      domain: mimi.a.example\n      secret: s\n" +
		"    rooms:\n      domain: rooms.a.example\n    upload_hosts: [\"up.a.example/x\"]\n"
	_, err := Parse("f.yaml", []byte(src))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	for i, w := range []string{
		`f.yaml:9:7: bridges.xmpp.rooms.secret: missing required value (or set secret_file)`,
		`f.yaml:10:20: bridges.xmpp.upload_hosts[0]: "up.a.example/x" is not a host or host:port`,
	} {
		if errs[i].Error() != w {
			t.Errorf("error %d:\n got %s\nwant %s", i, errs[i], w)
		}
	}
	cfg, err := Parse("f.yaml", []byte(strings.Replace(strings.Replace(src, "/x", "", 1), "domain: rooms.a.example\n", "domain: rooms.a.example\n      secret: r\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if x := cfg.XMPPConfig(); x.Domain != "a.example" || x.Provider != "a.example" || x.HistoryOnJoin == nil || *x.HistoryOnJoin != 20 {
		t.Errorf("XMPPConfig() = %+v", x)
	}
}
