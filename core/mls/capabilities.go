package mls

// What our own leaves advertise (RFC 9420 §7.2) and the checks a leaf we make passes before it is
// signed or sent (RFC 9420 §7.3 against the group it is meant for).

import (
	"fmt"
	"slices"
)

// DefaultCapabilities returns the capabilities a leaf advertises when its options set none
// (docs/mls.md, "Capabilities"): protocol version mls10, every supported cipher suite, the
// app_data_dictionary extension, the AppDataUpdate and SelfRemove proposals, and the credential
// types basic and x509. Groups created by OpenMLS-based clients
// (Wire's core-crypto) and by ts-mls require basic and x509 in their required_capabilities; a leaf
// that lists only basic cannot join them.
func DefaultCapabilities() Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolVersionMLS10},
		CipherSuites: SupportedCipherSuites(),
		Extensions:   []ExtensionType{ExtensionAppDataDictionary},
		Proposals:    []ProposalType{ProposalTypeAppDataUpdate, ProposalTypeSelfRemove},
		Credentials:  []CredentialType{CredentialTypeBasic, CredentialTypeX509},
	}
}

// leafCapabilities returns the capabilities of a leaf of suite cs with credential type ct and
// leaf extensions exts. Without explicit capabilities it widens the defaults by the leaf's own
// credential type and extension types (advertising them is a fact about the leaf); explicit
// capabilities are taken as they are and must cover the leaf itself, else ErrCapabilities.
func leafCapabilities(explicit *Capabilities, cs CipherSuite, ct CredentialType, exts Extensions) (Capabilities, error) {
	if explicit == nil {
		c := DefaultCapabilities()
		if !slices.Contains(c.Credentials, ct) {
			c.Credentials = append(c.Credentials, ct)
		}
		for _, e := range exts {
			if !defaultExtension(e.Type) && !slices.Contains(c.Extensions, e.Type) {
				c.Extensions = append(c.Extensions, e.Type)
			}
		}
		return c, nil
	}
	c := Capabilities{Versions: slices.Clone(explicit.Versions), CipherSuites: slices.Clone(explicit.CipherSuites),
		Extensions: slices.Clone(explicit.Extensions), Proposals: slices.Clone(explicit.Proposals), Credentials: slices.Clone(explicit.Credentials)}
	switch {
	case !slices.Contains(c.Versions, ProtocolVersionMLS10):
		return c, fmt.Errorf("%w: %w: the capabilities do not list version mls10", ErrInvalidLeafNode, ErrCapabilities)
	case !slices.Contains(c.CipherSuites, cs):
		return c, fmt.Errorf("%w: %w: the capabilities do not list the leaf's cipher suite %v", ErrInvalidLeafNode, ErrCapabilities, cs)
	case !slices.Contains(c.Credentials, ct):
		return c, fmt.Errorf("%w: %w: the capabilities do not list the leaf's credential type %s", ErrInvalidLeafNode, ErrCapabilities, ct)
	}
	for _, e := range exts {
		if !defaultExtension(e.Type) && !slices.Contains(c.Extensions, e.Type) {
			return c, fmt.Errorf("%w: %w: the capabilities do not list the leaf's extension 0x%04x", ErrInvalidLeafNode, ErrCapabilities, uint16(e.Type))
		}
	}
	return c, nil
}

// checkOwnLeaf checks a leaf this member is about to put into a group whose GroupContext has
// cipher suite cs and extensions exts, at leaf index l of tree (nil when the group's tree is not
// known, as for a KeyPackage made for a group): RFC 9420 §7.3 (required_capabilities, credential
// types against every other member, key uniqueness), support for every non-default GroupContext
// extension, and, as OpenMLS requires of every leaf, the group's cipher
// suite and version in the capabilities. It fails before anything is signed or sent.
func checkOwnLeaf(tree *ratchetTree, ln *LeafNode, l leafIndex, cs CipherSuite, exts Extensions) error {
	if err := checkLeafForContext(ln, cs, exts); err != nil {
		return fmt.Errorf("own leaf: %w", err)
	}
	if tree == nil {
		return nil
	}
	if err := tree.validateLeafNode(ln, l, &leafCheck{extensions: exts, skipSignature: true}); err != nil {
		return fmt.Errorf("own leaf: %w", err)
	}
	return nil
}

// checkLeafForContext runs the checks of checkOwnLeaf that need no tree.
func checkLeafForContext(ln *LeafNode, cs CipherSuite, exts Extensions) error {
	if !slices.Contains(ln.Capabilities.Versions, ProtocolVersionMLS10) || !slices.Contains(ln.Capabilities.CipherSuites, cs) {
		return fmt.Errorf("%w: %w: the group's cipher suite %v or version mls10 is not in the leaf's capabilities", ErrInvalidLeafNode, ErrCapabilities, cs)
	}
	if !slices.Contains(ln.Capabilities.Credentials, ln.Credential.Type) {
		return fmt.Errorf("%w: %w: the leaf does not list its own credential type %s", ErrInvalidLeafNode, ErrCapabilities, ln.Credential.Type)
	}
	rc, err := parseRequiredCapabilities(exts)
	if err != nil {
		return err
	}
	if err := checkRequired(ln, rc); err != nil {
		return err
	}
	for _, e := range exts {
		if !defaultExtension(e.Type) && !slices.Contains(ln.Capabilities.Extensions, e.Type) {
			return fmt.Errorf("%w: %w: the group uses extension 0x%04x, which the leaf does not support", ErrInvalidLeafNode, ErrCapabilities, uint16(e.Type))
		}
	}
	return nil
}
