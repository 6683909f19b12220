package gatewaytest

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"slices"
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
		org.Bot = id.NewUserID(stringAt(t, g, "mimibot", "bridges", "matrix", "appservice", "bot_localpart"), o.Domain)
	case ModeClient:
		org.HS = dendritetest.StartWith(t, dendritetest.Options{ServerName: o.Domain, Addr: hsAddr})
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
	cert := ca.Issue(t, o.Domain, "upload."+o.Domain)
	known := []string{}
	for u, pw := range o.Users {
		org.passwords[u] = pw
		known = append(known, u)
	}
	slices.Sort(known)
	org.Prosody = prosodytest.Start(t, prosodytest.Config{Domain: o.Domain, Users: o.Users, Upload: true, Certificate: &cert,
		Components: []prosodytest.Component{{Domain: org.UsersDomain, Secret: usersSecret}, {Domain: org.RoomsDomain, Secret: roomsSecret}}})
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
