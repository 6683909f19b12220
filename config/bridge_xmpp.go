package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/confschema"
)

// XMPPBridge is the bridges.xmpp section; cmd/mimi-gateway maps it onto bridges/xmpp's own Config
// (xmppConfig). Every key is documented with its default in example.yaml.
type XMPPBridge struct {
	// Enabled starts the XMPP adapter.
	Enabled bool `yaml:"enabled"`
	// Server is host:port of the XMPP server's component listener (XEP-0114).
	Server string `yaml:"server"`
	// Domain is the XMPP domain of the organisation's users; empty means the gateway's domain.
	Domain string `yaml:"domain"`
	// Users is the component that carries one JID per MIMI user of a partner provider.
	Users XMPPComponent `yaml:"users"`
	// Rooms is the component that hosts one MUC room per MIMI room.
	Rooms XMPPComponent `yaml:"rooms"`
	// HistoryOnJoin is how many recent messages a user who joins a room receives; 0 disables.
	HistoryOnJoin int `yaml:"history_on_join"`
	// HistoryKeep is how many messages per room are kept for history.
	HistoryKeep int `yaml:"history_keep"`
	// MaxBody bounds one message body.
	MaxBody ByteSize `yaml:"max_body"`
	// AllowRoomCreation lets local users create MIMI rooms by joining a MUC that does not exist.
	AllowRoomCreation bool `yaml:"allow_room_creation"`
	// ReconnectMin and ReconnectMax bound the component reconnect backoff.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// Workers is the number of goroutines that handle incoming stanzas.
	Workers int `yaml:"workers"`
	// UploadHosts are the hosts of the XMPP server's upload service whose links are downloaded and
	// stored encrypted for partners.
	UploadHosts []string `yaml:"upload_hosts"`
	// MaxUpload bounds one downloaded file.
	MaxUpload ByteSize `yaml:"max_upload"`
	// UploadService is the JID of the XMPP server's upload service (XEP-0363) that partners'
	// encrypted attachments are decrypted and uploaded to for XMPP users; empty: not uploaded.
	UploadService string `yaml:"upload_service"`
	// KnownUsers lists the localparts of users whom partners may reach before they have used the
	// gateway ("*": everyone on the domain).
	KnownUsers []string `yaml:"known_users"`
	// Language is the language (en or de) of the gateway's notices when a user's own is unknown.
	Language string `yaml:"language"`
}

// XMPPComponent is one component connection.
type XMPPComponent struct {
	// Domain is the component's domain as configured on the XMPP server.
	Domain string `yaml:"domain"`
	// Secret is the component's shared secret. Secret: prefer secret_file.
	Secret string `yaml:"secret"`
	// SecretFile is a file whose content is the secret.
	SecretFile string `yaml:"secret_file"`
}

// validate checks the section. It is called for every load, enabled or not, so details are
// checked only when b.Enabled.
func (b *XMPPBridge) validate(v *validator) {
	if !b.Enabled {
		return
	}
	v.OneOf("bridges.xmpp.language", b.Language, "en", "de")
	if v.Required("bridges.xmpp.server", b.Server, "(the XMPP server's component port)") {
		v.HostPort("bridges.xmpp.server", b.Server)
	}
	if b.Domain != "" && !confschema.ValidDomain(b.Domain) {
		v.Errorf("bridges.xmpp.domain", "%q is not a DNS domain", b.Domain)
	}
	for _, c := range []struct {
		path string
		comp XMPPComponent
	}{{"bridges.xmpp.users", b.Users}, {"bridges.xmpp.rooms", b.Rooms}} {
		if v.Required(c.path+".domain", c.comp.Domain, "") && !confschema.ValidDomain(c.comp.Domain) {
			v.Errorf(c.path+".domain", "%q is not a DNS domain", c.comp.Domain)
		}
		v.Required(c.path+".secret", c.comp.Secret, "(or set secret_file)")
	}
	if b.UploadService != "" && !confschema.ValidDomain(b.UploadService) {
		v.Errorf("bridges.xmpp.upload_service", "%q is not a domain JID (e.g. upload.hospital.example)", b.UploadService)
	}
	if b.Users.Domain != "" && b.Users.Domain == b.Rooms.Domain {
		v.Errorf("bridges.xmpp.rooms.domain", "must differ from bridges.xmpp.users.domain: each is its own component")
	}
	if b.HistoryOnJoin < 0 {
		v.Errorf("bridges.xmpp.history_on_join", "must not be negative")
	}
	if b.HistoryKeep < 0 || b.HistoryKeep > 10000 {
		v.Errorf("bridges.xmpp.history_keep", "must be between 0 and 10000")
	}
	if b.MaxBody <= 0 || b.MaxBody > 512<<10 {
		v.Errorf("bridges.xmpp.max_body", "must be between 1 byte and 512KiB")
	}
	if b.ReconnectMin <= 0 || b.ReconnectMax < b.ReconnectMin {
		v.Errorf("bridges.xmpp.reconnect_max", "reconnect_min must be positive and reconnect_max at least reconnect_min")
	}
	if b.Workers < 1 || b.Workers > 256 {
		v.Errorf("bridges.xmpp.workers", "must be between 1 and 256")
	}
	for i, h := range b.UploadHosts {
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			v.Errorf(fmt.Sprintf("bridges.xmpp.upload_hosts[%d]", i), "%q is not a host or host:port", h)
		}
	}
	if b.MaxUpload <= 0 || b.MaxUpload > 1<<30 {
		v.Errorf("bridges.xmpp.max_upload", "must be between 1 byte and 1GiB")
	}
	for i, u := range b.KnownUsers {
		if u == "" || (u != "*" && strings.ContainsAny(u, "@/ \"\t")) {
			v.Errorf(fmt.Sprintf("bridges.xmpp.known_users[%d]", i), "%q is not a localpart (alice, not alice@domain) or \"*\"", u)
		}
	}
}
