// Package prosodytest starts a real XMPP server (Prosody, installed by .ci/install-prosody) on
// random loopback ports with its configuration, data and logs in a test's temporary directory:
// one VirtualHost for the organisation's users (c2s), the external components (XEP-0114) a gateway
// connects to, and optionally an upload service (XEP-0363, Prosody's mod_http_file_share) on a
// loopback HTTP port.
//
// When Prosody is missing the test FAILS and names the install script: integration tests never
// skip silently.
package prosodytest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
)

// Missing is the failure message when Prosody is not installed.
const Missing = "prosody is not installed: run .ci/install-prosody (as root) to install it from the Debian packages"

// Component is an external component (XEP-0114) the server accepts.
type Component struct {
	Domain string
	Secret string
}

// Config describes the server to start.
type Config struct {
	// Domain is the VirtualHost of the users; empty means "localhost".
	Domain string
	// Components are the external components.
	Components []Component
	// Users maps user names (local parts) to passwords; they are registered before the start.
	Users map[string]string
	// Upload adds an upload service (mod_http_file_share) on the component "upload.<Domain>",
	// served on a loopback HTTP port (Server.UploadURL).
	Upload bool
	// Certificate, when set, is the VirtualHost's TLS certificate: c2s clients can then use
	// STARTTLS. Plain authentication without TLS stays allowed on the loopback test server.
	Certificate *tls.Certificate
	// Custom, when set, returns the configuration to use instead of the generated one, e.g. an
	// administrator's file with the server's ports and paths put in: the pidfile Dir/prosody.pid,
	// data in Dir/data, the log Dir/logs/prosody.log, the certificate (written when Certificate
	// is set) in CertFile and KeyFile. Components and Upload still say what to wait for.
	Custom func(s *Server) string
}

// CertFile and KeyFile are where the VirtualHost's certificate is written.
func (s *Server) CertFile() string { return filepath.Join(s.Dir, "certs", s.Domain+".crt") }

// KeyFile is the certificate's private key (PKCS #8, PEM).
func (s *Server) KeyFile() string { return filepath.Join(s.Dir, "certs", s.Domain+".key") }

// Server is a Prosody process owned by one test. Stop, Kill and Restart keep its ports and data.
type Server struct {
	// Domain is the users' VirtualHost.
	Domain string
	// Dir holds the configuration, data and logs.
	Dir string
	// ConfigFile is the prosody.cfg.lua in use.
	ConfigFile string
	// C2SPort is the client port, ComponentPort the XEP-0114 port, HTTPPort the HTTP port (0
	// without Upload).
	C2SPort, ComponentPort, HTTPPort int
	// UploadDomain is the upload component's JID domain ("" without Upload).
	UploadDomain string

	components bool // Prosody listens on ComponentPort only when it has external components

	mu   sync.Mutex
	proc *servertest.Process
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int { t.Helper(); return servertest.FreePort(t) }

// Start writes a loopback-only configuration, registers the users and starts Prosody in the
// foreground. It is stopped when the test ends; its log tail is printed if the test failed.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	for _, bin := range []string{"prosody", "prosodyctl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatal(Missing)
		}
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	s := &Server{Domain: cfg.Domain, Dir: t.TempDir(), C2SPort: FreePort(t), ComponentPort: FreePort(t)}
	for _, d := range []string{"data", "logs", "certs"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s.components = len(cfg.Components) > 0
	if cfg.Upload {
		s.HTTPPort = FreePort(t)
		s.UploadDomain = "upload." + cfg.Domain
	}
	conf, err := s.config(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Custom != nil {
		if cfg.Certificate != nil {
			if _, _, err := writeCert(s.Dir, cfg.Domain, *cfg.Certificate); err != nil {
				t.Fatal(err)
			}
		}
		conf = cfg.Custom(s)
	}
	s.ConfigFile = filepath.Join(s.Dir, "prosody.cfg.lua")
	if err := os.WriteFile(s.ConfigFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for u, pw := range cfg.Users {
		s.Register(t, u, pw)
	}
	// Registered before the start, so a server that starts but never listens is stopped too.
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			t.Logf("prosody %s log (tail):\n%s", s.Domain, s.LogTail())
		}
	})
	s.start(t)
	return s
}

func (s *Server) config(cfg Config) (string, error) {
	var b strings.Builder
	if os.Geteuid() == 0 {
		b.WriteString("run_as_root = true\n")
	}
	fmt.Fprintf(&b, "pidfile = %q\ndata_path = %q\ncertificates = %q\n", filepath.Join(s.Dir, "prosody.pid"),
		filepath.Join(s.Dir, "data"), filepath.Join(s.Dir, "certs"))
	fmt.Fprintf(&b, "log = {\n  { levels = { min = \"info\" }, to = \"file\", filename = %q };\n}\n", filepath.Join(s.Dir, "logs", "prosody.log"))
	fmt.Fprintf(&b, `interfaces = { "127.0.0.1" }
c2s_ports = { %d }
c2s_direct_tls_ports = { }
component_interfaces = { "127.0.0.1" }
component_ports = { %d }
https_ports = { }
modules_disabled = { "s2s" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"; "carbons"; "offline" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
`, s.C2SPort, s.ComponentPort)
	if cfg.Upload {
		fmt.Fprintf(&b, "http_ports = { %d }\nhttp_interfaces = { \"127.0.0.1\" }\nhttp_default_host = %q\n", s.HTTPPort, s.UploadDomain)
	} else {
		b.WriteString("http_ports = { }\n")
	}
	fmt.Fprintf(&b, "VirtualHost %q\n", cfg.Domain)
	if cfg.Certificate != nil {
		certFile, keyFile, err := writeCert(s.Dir, cfg.Domain, *cfg.Certificate)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  ssl = { certificate = %q, key = %q }\n", certFile, keyFile)
	}
	if cfg.Upload {
		fmt.Fprintf(&b, "  disco_items = { { %q, \"file uploads\" } }\n", s.UploadDomain)
	}
	for _, c := range cfg.Components {
		fmt.Fprintf(&b, "Component %q\n  component_secret = %q\n", c.Domain, c.Secret)
	}
	if cfg.Upload {
		fmt.Fprintf(&b, "Component %q \"http_file_share\"\n  http_external_url = %q\n  http_file_share_size_limit = 16*1024*1024\n",
			s.UploadDomain, s.UploadURL())
	}
	return b.String(), nil
}

func writeCert(dir, domain string, cert tls.Certificate) (string, string, error) {
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return "", "", fmt.Errorf("prosodytest: key of %s: %w", domain, err)
	}
	certFile, keyFile := filepath.Join(dir, "certs", domain+".crt"), filepath.Join(dir, "certs", domain+".key")
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// UploadURL is the base URL of the upload service ("" without Upload).
func (s *Server) UploadURL() string {
	if s.HTTPPort == 0 {
		return ""
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", s.HTTPPort)
}

// UploadHost is the upload service's host:port, as a gateway lists it in upload_hosts.
func (s *Server) UploadHost() string { return fmt.Sprintf("127.0.0.1:%d", s.HTTPPort) }

// C2SAddr is the client listener's address.
func (s *Server) C2SAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.C2SPort) }

// ComponentAddr is the component listener's address.
func (s *Server) ComponentAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.ComponentPort) }

// Register creates a user on the server's VirtualHost (the server need not run).
func (s *Server) Register(t testing.TB, user, password string) {
	t.Helper()
	out, err := exec.Command("prosodyctl", "--config", s.ConfigFile, "register", user, s.Domain, password).CombinedOutput()
	if err != nil {
		t.Fatalf("prosodyctl register %s: %v\n%s", user, err, out)
	}
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	p, err := servertest.Start(exec.Command("prosody", "-F", "--config", s.ConfigFile), filepath.Join(s.Dir, "logs", "stdout.log"), "prosodytest: start")
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	addrs := []string{s.C2SAddr()}
	if s.components {
		addrs = append(addrs, s.ComponentAddr())
	}
	if s.HTTPPort != 0 {
		addrs = append(addrs, s.UploadHost())
	}
	if err := p.WaitListening(30*time.Second, addrs...); err != nil {
		t.Fatalf("%v\n%s", err, s.LogTail())
	}
}

func (s *Server) process() *servertest.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Running reports whether the process runs.
func (s *Server) Running() bool { return s.process().Running() }

// Stop ends Prosody with SIGTERM (SIGKILL after 5 s) and waits for it.
func (s *Server) Stop(t testing.TB) { s.process().Signal(syscall.SIGTERM, 5*time.Second) }

// Kill ends Prosody with SIGKILL and waits for it.
func (s *Server) Kill(t testing.TB) { s.process().Kill() }

// Restart stops Prosody if it runs and starts it again on the same ports and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.start(t)
}

// LogTail returns the end of Prosody's log.
func (s *Server) LogTail() string {
	return servertest.Tail(filepath.Join(s.Dir, "logs", "prosody.log"), 6000) + servertest.Tail(filepath.Join(s.Dir, "logs", "stdout.log"), 6000)
}
