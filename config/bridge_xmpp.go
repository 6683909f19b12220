package config

// XMPPBridge is the bridges.xmpp section. It belongs to bridges/xmpp: add typed fields here
// (with yaml tags), document each key with its default in example.yaml under bridges.xmpp, and
// check them in validate. See docs/configuration.md, "Adding keys".
type XMPPBridge struct {
	// Enabled starts the XMPP adapter.
	Enabled bool `yaml:"enabled"`
}

// validate checks the section. Report problems with v.errorf("bridges.xmpp.<key>", ...); it is
// called for every load, enabled or not, so check details only when b.Enabled.
func (b *XMPPBridge) validate(v *validator) {}
