package gatewaytest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/prosodytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// Matrix adapter modes.
const (
	ModeAppservice = "appservice"
	ModeClient     = "client"
)

// MatrixOptions describe an organisation on Matrix.
type MatrixOptions struct {
	// Domain is the MIMI domain and the homeserver's server name.
	Domain string
	// Mode is ModeAppservice or ModeClient.
	Mode string
	// Layers are YAML configuration layers (e.g. the walkthrough's snippet); the harness then
	// sets the loopback addresses, secrets and files.
	Layers []string
	// FunctionalAccount is the client-mode account's localpart (default "mimi-gateway").
	FunctionalAccount string
}

// MatrixOrg is an organisation on Matrix: a Dendrite and a gateway attached to it.
type MatrixOrg struct {
	Domain  string
	Mode    string
	HS      *dendritetest.Server
	Gateway *Gateway
	// Bot is the appservice bot (appservice mode) or the functional account (client mode).
	Bot id.UserID
}

// NewMatrixOrg starts the organisation's Dendrite (in appservice mode with the gateway's
// registration, written by `mimi-gateway matrix registration`) and prepares its gateway; start
// the gateway with Gateway.StartReady once its partners are set.
func NewMatrixOrg(t testing.TB, ca *protocoltest.CA, o MatrixOptions) *MatrixOrg {
	t.Helper()
	if o.FunctionalAccount == "" {
		o.FunctionalAccount = "mimi-gateway"
	}
	hsAddr := FreeAddr(t)
	g := New(t, ca, Options{Domain: o.Domain, Layers: o.Layers})
	m := map[string]any{"enabled": true, "mode": o.Mode, "homeserver_url": "http://" + hsAddr, "server_name": o.Domain,
		"encryption": map[string]any{"pickle_key": randomSecret(t), "pickle_key_file": ""}}
	org := &MatrixOrg{Domain: o.Domain, Mode: o.Mode, Gateway: g}
	switch o.Mode {
	case ModeAppservice:
		m["appservice"] = map[string]any{"listen": FreeAddr(t), "url": "", "registration_file": ""}
		g.AddLayer(yamlLayer(t, map[string]any{"bridges": map[string]any{"matrix": m}}))
		g.Command(t, "matrix", "registration")
		org.HS = dendritetest.StartWith(t, dendritetest.Options{ServerName: o.Domain, Addr: hsAddr,
			Registrations: []string{filepath.Join(g.DataDir, "matrix-registration.yaml")}})
		t.Cleanup(func() { keepLog(t, filepath.Join(org.HS.Dir, "dendrite.log"), "dendrite-"+o.Domain+".log") })
		org.Bot = id.NewUserID(stringAt(t, g, "mimibot", "bridges", "matrix", "appservice", "bot_localpart"), o.Domain)
	case ModeClient:
		org.HS = dendritetest.StartWith(t, dendritetest.Options{ServerName: o.Domain, Addr: hsAddr})
		t.Cleanup(func() { keepLog(t, filepath.Join(org.HS.Dir, "dendrite.log"), "dendrite-"+o.Domain+".log") })
		pw := randomSecret(t)
		org.HS.CreateUser(t, o.FunctionalAccount, pw)
		org.Bot = id.NewUserID(o.FunctionalAccount, o.Domain)
		m["client"] = map[string]any{"user_id": org.Bot.String(), "password": pw, "password_file": "",
			"access_token": "", "access_token_file": ""}
		g.AddLayer(yamlLayer(t, map[string]any{"bridges": map[string]any{"matrix": m}}))
	default:
		t.Fatalf("gatewaytest: unknown Matrix mode %q", o.Mode)
	}
	return org
}

// MatrixClient is a Matrix user's E2EE client.
type MatrixClient = dendritetest.Client

// Body returns the body of a Matrix message event ("" for other events).
func Body(e *mevent.Event) string { return dendritetest.Body(e) }

// User creates an account on the homeserver and returns its logged-in E2EE client.
func (o *MatrixOrg) User(t testing.TB, name string) *MatrixClient {
	t.Helper()
	pw := "password-" + name
	o.HS.CreateUser(t, name, pw)
	return dendritetest.NewClient(t, o.HS.URL, name, pw)
}

// UserID is name's Matrix ID on this homeserver.
func (o *MatrixOrg) UserID(name string) id.UserID { return id.NewUserID(name, o.Domain) }

// XMPPOptions describe an organisation on XMPP.
type XMPPOptions struct {
	// Domain is the MIMI domain and the users' XMPP domain.
	Domain string
	// Users are created on Prosody (name → password).
	Users map[string]string
	// Layers are YAML configuration layers; the component domains are taken from them
	// (bridges.xmpp.users.domain, bridges.xmpp.rooms.domain), else mimi.<Domain> and
	// rooms.mimi.<Domain>.
	Layers []string
	// ProsodyConfig, when set, is the administrator's prosody.cfg.lua to run (the walkthrough's):
	// its paths under /path/to/demo and its ports 5222, 5347 and 5280 are replaced by the test's,
	// and its component secrets are given to the gateway. Empty: a generated configuration.
	ProsodyConfig string
}

// XMPPOrg is an organisation on XMPP: a Prosody with the gateway's two components and an
// upload service, and a gateway attached to it.
type XMPPOrg struct {
	Domain string
	// UsersDomain carries partner users' addresses, RoomsDomain the MIMI rooms.
	UsersDomain, RoomsDomain string
	Prosody                  *prosodytest.Server
	Gateway                  *Gateway
	ca                       *protocoltest.CA
	passwords                map[string]string
}

// NewXMPPOrg starts the organisation's Prosody (STARTTLS with a certificate from ca, the
// components, mod_http_file_share) and prepares its gateway.
func NewXMPPOrg(t testing.TB, ca *protocoltest.CA, o XMPPOptions) *XMPPOrg {
	t.Helper()
	g := New(t, ca, Options{Domain: o.Domain, Layers: o.Layers})
	org := &XMPPOrg{Domain: o.Domain, Gateway: g, ca: ca, passwords: map[string]string{}}
	org.UsersDomain = stringAt(t, g, "mimi."+o.Domain, "bridges", "xmpp", "users", "domain")
	org.RoomsDomain = stringAt(t, g, "rooms.mimi."+o.Domain, "bridges", "xmpp", "rooms", "domain")
	usersSecret, roomsSecret := randomSecret(t), randomSecret(t)
	var custom func(*prosodytest.Server) string
	if o.ProsodyConfig != "" {
		secrets := componentSecrets(o.ProsodyConfig)
		usersSecret, roomsSecret = secrets[org.UsersDomain], secrets[org.RoomsDomain]
		if usersSecret == "" || roomsSecret == "" {
			t.Fatalf("gatewaytest: the Prosody configuration has no component_secret for %s or %s", org.UsersDomain, org.RoomsDomain)
		}
		custom = func(s *prosodytest.Server) string { return adaptProsody(o.ProsodyConfig, s) }
	}
	cert := ca.Issue(t, o.Domain, "upload."+o.Domain)
	known := []string{}
	for u, pw := range o.Users {
		org.passwords[u] = pw
		known = append(known, u)
	}
	slices.Sort(known)
	org.Prosody = prosodytest.Start(t, prosodytest.Config{Domain: o.Domain, Users: o.Users, Upload: true, Certificate: &cert, Custom: custom,
		Components: []prosodytest.Component{{Domain: org.UsersDomain, Secret: usersSecret}, {Domain: org.RoomsDomain, Secret: roomsSecret}}})
	t.Cleanup(func() { keepLog(t, filepath.Join(org.Prosody.Dir, "logs", "prosody.log"), "prosody-"+o.Domain+".log") })
	g.AddLayer(yamlLayer(t, map[string]any{"bridges": map[string]any{"xmpp": map[string]any{
		"enabled": true, "server": org.Prosody.ComponentAddr(), "domain": o.Domain,
		"users":        map[string]any{"domain": org.UsersDomain, "secret": usersSecret, "secret_file": ""},
		"rooms":        map[string]any{"domain": org.RoomsDomain, "secret": roomsSecret, "secret_file": ""},
		"upload_hosts": []string{org.Prosody.UploadHost()}, "upload_service": org.Prosody.UploadDomain,
		"known_users": known,
	}}}))
	return org
}

// Client connects an XMPP user (created with NewXMPPOrg's Users) with a c2s client.
func (o *XMPPOrg) Client(t testing.TB, user, resource string) *XMPPClient {
	t.Helper()
	pw, ok := o.passwords[user]
	if !ok {
		t.Fatalf("gatewaytest: %s is not a user of %s", user, o.Domain)
	}
	return DialXMPP(t, o.Prosody, o.ca.Pool, user, pw, resource)
}

// Puppet is the XMPP address of a partner's MIMI user on this organisation's users component
// (XEP-0106 escaping of the "@").
func (o *XMPPOrg) Puppet(user, domain string) string {
	return user + `\40` + domain + "@" + o.UsersDomain
}

func randomSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func yamlLayer(t testing.TB, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stringAt returns the string at path in g's merged configuration layers, or def.
func stringAt(t testing.TB, g *Gateway, def string, path ...string) string {
	t.Helper()
	merged, err := MergeYAML(g.layers...)
	if err != nil {
		t.Fatalf("gatewaytest: %s configuration: %v", g.Domain, err)
	}
	var v any = map[string]any{}
	if err := yaml.Unmarshal([]byte(merged), &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return def
		}
		v = m[p]
	}
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	return def
}

var componentRE = regexp.MustCompile(`(?m)^Component\s+"([^"]+)"[^\n]*\n\s*component_secret\s*=\s*"([^"]*)"`)

// componentSecrets returns the component_secret of each Component of a prosody.cfg.lua.
func componentSecrets(lua string) map[string]string {
	out := map[string]string{}
	for _, m := range componentRE.FindAllStringSubmatch(lua, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// adaptProsody puts a test server's paths and ports into an administrator's prosody.cfg.lua
// written for /path/to/demo and the default ports.
func adaptProsody(lua string, s *prosodytest.Server) string {
	base := "/path/to/demo"
	domain := s.Domain
	out := strings.NewReplacer(
		base+"/pki/"+domain+".crt", s.CertFile(),
		base+"/pki/"+domain+".key", s.KeyFile(),
		base+"/"+orgDir(domain)+"/prosody.pid", filepath.Join(s.Dir, "prosody.pid"),
		base+"/"+orgDir(domain)+"/prosody-data", filepath.Join(s.Dir, "data"),
		base+"/"+orgDir(domain)+"/prosody.log", filepath.Join(s.Dir, "logs", "prosody.log"),
		"{ 5222 }", fmt.Sprintf("{ %d }", s.C2SPort),
		"{ 5347 }", fmt.Sprintf("{ %d }", s.ComponentPort),
		"{ 5280 }", fmt.Sprintf("{ %d }", s.HTTPPort),
		"127.0.0.1:5280", s.UploadHost(),
	).Replace(lua)
	if os.Geteuid() != 0 {
		out = strings.Replace(out, "run_as_root = true", "", 1)
	}
	return out
}

// orgDir is the walkthrough's directory of an organisation: amt-b for amt-b.example.
func orgDir(domain string) string {
	d, _, _ := strings.Cut(domain, ".")
	return d
}
