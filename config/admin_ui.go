package config

import (
	"net/url"
	"time"
)

// AdminUI is the admin_ui section: the admin console (core/console) and the local socket the
// `mimi-gateway admin` commands use. Every key is documented with its default in example.yaml.
type AdminUI struct {
	// Address is host:port of the console's HTTPS (or, behind a proxy, HTTP) listener; empty
	// turns the console off.
	Address string `yaml:"address"`
	// PublicURL is the console's URL as browsers reach it (for the OpenID Connect redirect).
	PublicURL string `yaml:"public_url"`
	// TLSCertFile and TLSKeyFile serve the console over HTTPS; empty means plain HTTP (only
	// behind a TLS-terminating reverse proxy or on loopback).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// Socket is the Unix socket for the admin CLI; empty means <data_dir>/admin.sock, "off"
	// turns it off.
	Socket string `yaml:"socket"`
	// IdleTimeout and AbsoluteTimeout end sessions.
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	AbsoluteTimeout time.Duration `yaml:"absolute_timeout"`
	// LoginLimit failed sign-ins per account and per address within LoginWindow block sign-in.
	LoginLimit  int           `yaml:"login_limit"`
	LoginWindow time.Duration `yaml:"login_window"`
	// ConfigVersions is how many earlier configuration files the console keeps for rollback.
	ConfigVersions int `yaml:"config_versions"`
	// OIDC configures sign-in through the organisation's identity provider.
	OIDC AdminOIDC `yaml:"oidc"`
}

// AdminOIDC configures OpenID Connect sign-in.
type AdminOIDC struct {
	// Issuer is the identity provider's issuer URL; empty turns OIDC sign-in off.
	Issuer string `yaml:"issuer"`
	// ClientID is the console's client ID.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the console's client secret. Secret: prefer client_secret_file.
	ClientSecret string `yaml:"client_secret"`
	// ClientSecretFile is a file whose content is the client secret.
	ClientSecretFile string `yaml:"client_secret_file"`
	// CAFile verifies the identity provider's certificate; empty means the system roots.
	CAFile string `yaml:"ca_file"`
	// GroupsClaim is the ID token claim that lists groups.
	GroupsClaim string `yaml:"groups_claim"`
	// OperatorGroups may change things; ViewerGroups may only look.
	OperatorGroups []string `yaml:"operator_groups"`
	ViewerGroups   []string `yaml:"viewer_groups"`
}

// SocketPath returns the admin socket's path, or "" when it is off.
func (c *Config) SocketPath() string {
	switch c.AdminUI.Socket {
	case "off":
		return ""
	case "":
		return c.DataDirAbs() + "/admin.sock"
	}
	return abs(c.AdminUI.Socket)
}

func (c *Config) validateAdminUI(v *validator) {
	a := c.AdminUI
	v.Positive("admin_ui.idle_timeout", int64(a.IdleTimeout))
	v.Positive("admin_ui.absolute_timeout", int64(a.AbsoluteTimeout))
	v.Positive("admin_ui.login_limit", int64(a.LoginLimit))
	v.Positive("admin_ui.login_window", int64(a.LoginWindow))
	v.Positive("admin_ui.config_versions", int64(a.ConfigVersions))
	if a.Address == "" {
		return
	}
	v.HostPort("admin_ui.address", a.Address)
	if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
		v.Errorf("admin_ui.tls_key_file", "tls_cert_file and tls_key_file go together")
	}
	if a.PublicURL != "" {
		if u, err := url.Parse(a.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.Errorf("admin_ui.public_url", "%q is not an http(s) URL", a.PublicURL)
		}
	}
	if a.OIDC.Issuer != "" {
		v.Required("admin_ui.oidc.client_id", a.OIDC.ClientID, "(the console's client at the identity provider)")
		v.Required("admin_ui.public_url", a.PublicURL, "(needed for the OpenID Connect redirect URI)")
		if len(a.OIDC.OperatorGroups)+len(a.OIDC.ViewerGroups) == 0 {
			v.Errorf("admin_ui.oidc.operator_groups", "name at least one operator or viewer group")
		}
	}
}
