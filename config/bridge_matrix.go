package config

// MatrixBridge is the bridges.matrix section. It belongs to bridges/matrix: add typed fields here
// (with yaml tags), document each key with its default in example.yaml under bridges.matrix, and
// check them in validate. See docs/configuration.md, "Adding keys".
type MatrixBridge struct {
	// Enabled starts the Matrix adapter.
	Enabled bool `yaml:"enabled"`
}

// validate checks the section. Report problems with v.errorf("bridges.matrix.<key>", ...); it is
// called for every load, enabled or not, so check details only when b.Enabled.
func (b *MatrixBridge) validate(v *validator) {}
