package mls

// Inspect: a readable dump of MLS messages for operators and interop debugging
// (`mimi-gateway inspect mls FILE|-`). It prints public data only; it never needs or shows a secret.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Inspect decodes an MLSMessage of any wire format and writes a readable description of it to w:
// for a KeyPackage its suite, credential, capabilities, lifetime, extensions and keys (and whether its
// signatures verify); for a Welcome its suite and the recipients' KeyPackageRefs; for a GroupInfo the
// group context, extensions and signer; for Public and PrivateMessages the framing header and, for
// PublicMessages, the content.
//
// data may be the raw encoding or hex text (whitespace ignored, as produced by xxd -p or the test
// vectors). Input that is not an MLSMessage is tried as a bare KeyPackage, GroupInfo, Welcome and
// ratchet tree, in that order. The error of the MLSMessage decoder is returned when nothing fits.
func Inspect(w io.Writer, data []byte) error { return inspectAt(w, data, time.Now()) }

// inspectAt is Inspect with the time that KeyPackage lifetimes are judged at.
func inspectAt(w io.Writer, data []byte, now time.Time) error {
	raw := decodeHexInput(data)
	p := &printer{w: w, now: now}
	m, err := DecodeMLSMessage(raw)
	if err == nil {
		p.line(0, "MLSMessage (%d bytes): %s, %s", len(raw), versionString(m.Version), m.WireFormat)
		p.message(1, m)
		if p.err != nil {
			return fmt.Errorf("mls: inspect: %w", p.err)
		}
		return nil
	}
	bare := []struct {
		name string
		try  func() bool
	}{
		{"KeyPackage", func() bool {
			kp, e := DecodeKeyPackage(raw)
			if e == nil {
				p.keyPackage(1, kp)
			}
			return e == nil
		}},
		{"GroupInfo", func() bool {
			gi, e := DecodeGroupInfo(raw)
			if e == nil {
				p.groupInfo(1, gi)
			}
			return e == nil
		}},
		{"Welcome", func() bool {
			wl, e := DecodeWelcome(raw)
			if e == nil {
				p.welcome(1, wl)
			}
			return e == nil
		}},
		{"ratchet tree", func() bool {
			t, e := DecodeRatchetTree(raw)
			if e == nil {
				p.ratchetTree(1, t)
			}
			return e == nil
		}},
	}
	for _, b := range bare {
		var buf bytes.Buffer
		p = &printer{w: &buf, now: now}
		p.line(0, "bare %s (%d bytes, not wrapped in an MLSMessage)", b.name, len(raw))
		if b.try() {
			if _, werr := w.Write(buf.Bytes()); werr != nil {
				return fmt.Errorf("mls: inspect: %w", werr)
			}
			return nil
		}
	}
	return fmt.Errorf("mls: inspect: not an MLS message: %w", err)
}

// decodeHexInput returns the bytes hex text stands for, or data itself when it is not hex text. MLS
// encodings start with a zero byte (version or length prefix), so binary input is never mistaken for
// hex.
func decodeHexInput(data []byte) []byte {
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, string(data))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if len(s) == 0 || len(s)%2 != 0 {
		return data
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return data
	}
	return b
}

// printer writes indented lines and remembers the first write error.
type printer struct {
	w   io.Writer
	now time.Time // KeyPackage lifetimes are judged at this time
	err error
}

func (p *printer) line(indent int, format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, "%s%s\n", strings.Repeat("  ", indent), fmt.Sprintf(format, args...))
}

func (p *printer) message(in int, m *MLSMessage) {
	switch m.WireFormat {
	case WireFormatKeyPackage:
		p.keyPackage(in, m.KeyPackage)
	case WireFormatWelcome:
		p.welcome(in, m.Welcome)
	case WireFormatGroupInfo:
		p.groupInfo(in, m.GroupInfo)
	case WireFormatPublicMessage:
		p.publicMessage(in, m.PublicMessage)
	case WireFormatPrivateMessage:
		p.privateMessage(in, m.PrivateMessage)
	}
}

// suiteName prints a cipher suite with its number.
func suiteName(cs CipherSuite) string {
	return fmt.Sprintf("0x%04x %v", uint16(cs), cs)
}

// bytesWithText prints b as hex, followed by the text when b is printable UTF-8.
func bytesWithText(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	s := hex.EncodeToString(b)
	if utf8.Valid(b) {
		printable := true
		for _, r := range string(b) {
			if !unicode.IsPrint(r) {
				printable = false
				break
			}
		}
		if printable {
			s += " " + strconv.Quote(string(b))
		}
	}
	return s
}

// shortHex prints short values in full and long ones as a length with a prefix.
func shortHex(b []byte) string {
	switch {
	case len(b) == 0:
		return "(empty)"
	case len(b) <= 133: // the longest public key (P-521) fits
		return hex.EncodeToString(b)
	default:
		return fmt.Sprintf("%d bytes, %s...", len(b), hex.EncodeToString(b[:16]))
	}
}

// unixTime prints a Lifetime bound as a UTC date, or as a number when it is out of range.
func unixTime(v uint64) string {
	const maxDate = 253402300799 // 9999-12-31T23:59:59Z
	if v > maxDate {
		return fmt.Sprintf("%d (beyond year 9999)", v)
	}
	return time.Unix(int64(v), 0).UTC().Format(time.RFC3339)
}

var extensionNames = map[ExtensionType]string{
	ExtensionApplicationID:        "application_id",
	ExtensionRatchetTree:          "ratchet_tree",
	ExtensionRequiredCapabilities: "required_capabilities",
	ExtensionExternalPub:          "external_pub",
	ExtensionExternalSenders:      "external_senders",
}

func extensionName(t ExtensionType) string {
	if n, ok := extensionNames[t]; ok {
		return fmt.Sprintf("0x%04x %s", uint16(t), n)
	}
	if t&0x0f0f == 0x0a0a {
		return fmt.Sprintf("0x%04x GREASE", uint16(t))
	}
	return fmt.Sprintf("0x%04x", uint16(t))
}

func joinNames[T any](vs []T, name func(T) string) string {
	if len(vs) == 0 {
		return "(none)"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = name(v)
	}
	return strings.Join(parts, ", ")
}

func (p *printer) extensions(in int, label string, exts Extensions) {
	if len(exts) == 0 {
		p.line(in, "%s: (none)", label)
		return
	}
	p.line(in, "%s: %d", label, len(exts))
	for _, e := range exts {
		switch e.Type {
		case ExtensionRatchetTree:
			t, err := DecodeRatchetTree(e.Data)
			if err != nil {
				p.line(in+1, "%s: %d bytes, does not decode: %v", extensionName(e.Type), len(e.Data), err)
				continue
			}
			p.line(in+1, "%s:", extensionName(e.Type))
			p.ratchetTree(in+2, t)
		case ExtensionExternalPub:
			p.line(in+1, "%s: %s", extensionName(e.Type), shortHex(e.Data))
		case ExtensionApplicationID:
			p.line(in+1, "%s: %s", extensionName(e.Type), bytesWithText(e.Data))
		default:
			p.line(in+1, "%s: %d bytes", extensionName(e.Type), len(e.Data))
		}
	}
}

func credentialString(c *Credential) string {
	switch c.Type {
	case CredentialTypeBasic:
		return "basic, identity " + bytesWithText(c.Identity)
	case CredentialTypeX509:
		sizes := make([]string, len(c.Certificates))
		for i, cert := range c.Certificates {
			sizes[i] = strconv.Itoa(len(cert))
		}
		return fmt.Sprintf("x509, %d certificate(s) of %s bytes", len(c.Certificates), strings.Join(sizes, ", "))
	}
	return fmt.Sprintf("%s, %d bytes (not interpreted)", c.Type, len(c.Data))
}

func (p *printer) leafNode(in int, ln *LeafNode) {
	p.line(in, "credential: %s", credentialString(&ln.Credential))
	p.line(in, "signature key: %s", shortHex(ln.SignatureKey))
	p.line(in, "encryption key: %s", shortHex(ln.EncryptionKey))
	c := &ln.Capabilities
	p.line(in, "capabilities:")
	p.line(in+1, "versions: %s", joinNames(c.Versions, versionString))
	p.line(in+1, "cipher suites: %s", joinNames(c.CipherSuites, suiteName))
	p.line(in+1, "extensions: %s", joinNames(c.Extensions, extensionName))
	p.line(in+1, "proposals: %s", joinNames(c.Proposals, func(t ProposalType) string { return t.String() }))
	p.line(in+1, "credentials: %s", joinNames(c.Credentials, func(t CredentialType) string { return t.String() }))
	p.line(in, "source: %s", ln.Source)
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		state := "valid now"
		t := uint64(p.now.Unix())
		if t < ln.Lifetime.NotBefore {
			state = "not yet valid"
		} else if t > ln.Lifetime.NotAfter {
			state = "expired"
		}
		p.line(in, "lifetime: %s .. %s (%s)", unixTime(ln.Lifetime.NotBefore), unixTime(ln.Lifetime.NotAfter), state)
	case LeafNodeSourceCommit:
		p.line(in, "parent hash: %s", shortHex(ln.ParentHash))
	}
	p.extensions(in, "leaf extensions", ln.Extensions)
	p.line(in, "signature: %d bytes", len(ln.Signature))
}

func (p *printer) keyPackage(in int, kp *KeyPackage) {
	p.line(in-1, "KeyPackage")
	p.line(in, "version: %s", versionString(kp.Version))
	p.line(in, "cipher suite: %s", suiteName(kp.CipherSuite))
	if ref, err := kp.Ref(); err == nil {
		p.line(in, "ref: %s", hex.EncodeToString(ref))
	}
	p.line(in, "init key: %s", shortHex(kp.InitKey))
	p.line(in, "leaf node:")
	p.leafNode(in+1, &kp.LeafNode)
	p.extensions(in, "extensions", kp.Extensions)
	verdict := "valid"
	if err := kp.Verify(); err != nil {
		verdict = "INVALID: " + err.Error()
	}
	p.line(in, "signature: %d bytes, %s", len(kp.Signature), verdict)
}

func (p *printer) welcome(in int, wl *Welcome) {
	p.line(in-1, "Welcome")
	p.line(in, "cipher suite: %s", suiteName(wl.CipherSuite))
	p.line(in, "recipients: %d (KeyPackageRef)", len(wl.Secrets))
	for _, s := range wl.Secrets {
		p.line(in+1, "%s (kem output %d bytes, ciphertext %d bytes)", hex.EncodeToString(s.NewMember),
			len(s.EncryptedGroupSecrets.KEMOutput), len(s.EncryptedGroupSecrets.Ciphertext))
	}
	p.line(in, "encrypted group info: %d bytes", len(wl.EncryptedGroupInfo))
}

func (p *printer) groupContext(in int, gc *GroupContext) {
	p.line(in, "version: %s", versionString(gc.Version))
	p.line(in, "cipher suite: %s", suiteName(gc.CipherSuite))
	p.line(in, "group id: %s", bytesWithText(gc.GroupID))
	p.line(in, "epoch: %d", gc.Epoch)
	p.line(in, "tree hash: %s", shortHex(gc.TreeHash))
	p.line(in, "confirmed transcript hash: %s", shortHex(gc.ConfirmedTranscriptHash))
	p.extensions(in, "extensions", gc.Extensions)
}

func (p *printer) groupInfo(in int, gi *GroupInfo) {
	p.line(in-1, "GroupInfo")
	p.line(in, "group context:")
	p.groupContext(in+1, &gi.GroupContext)
	p.extensions(in, "extensions", gi.Extensions)
	p.line(in, "confirmation tag: %s", shortHex(gi.ConfirmationTag))
	signer := fmt.Sprintf("leaf %d", gi.Signer)
	if data, ok := gi.Extensions.Find(ExtensionRatchetTree); ok {
		if t, err := DecodeRatchetTree(data); err == nil {
			if i := 2 * uint64(gi.Signer); i < uint64(len(t)) && t[i] != nil && t[i].Leaf != nil {
				signer += ", " + credentialString(&t[i].Leaf.Credential)
				if s, err := gi.GroupContext.CipherSuite.impl(); err == nil {
					if err := verifyGroupInfo(s, gi, t[i].Leaf.SignatureKey); err != nil {
						signer += ", signature INVALID"
					} else {
						signer += ", signature valid"
					}
				}
			}
		}
	}
	p.line(in, "signer: %s", signer)
	p.line(in, "signature: %d bytes", len(gi.Signature))
}

func (p *printer) ratchetTree(in int, t RatchetTree) {
	leaves, members, parents := 0, 0, 0
	for i, n := range t {
		if i%2 == 0 {
			leaves++
			if n != nil {
				members++
			}
		} else if n != nil {
			parents++
		}
	}
	p.line(in, "ratchet tree: %d nodes, %d leaves (%d members), %d non-blank parents", len(t), leaves, members, parents)
	const maxListed = 32
	listed := 0
	for i := 0; i < len(t); i += 2 {
		if t[i] == nil || t[i].Leaf == nil {
			continue
		}
		if listed == maxListed {
			p.line(in+1, "... %d more members", members-listed)
			break
		}
		p.line(in+1, "leaf %d: %s", i/2, credentialString(&t[i].Leaf.Credential))
		listed++
	}
}

func (p *printer) proposal(in int, pr *Proposal) {
	switch pr.Type {
	case ProposalTypeAdd:
		p.line(in, "add: %s, %s", suiteName(pr.KeyPackage.CipherSuite), credentialString(&pr.KeyPackage.LeafNode.Credential))
	case ProposalTypeUpdate:
		p.line(in, "update: %s", credentialString(&pr.LeafNode.Credential))
	case ProposalTypeRemove:
		p.line(in, "remove: leaf %d", pr.Removed)
	case ProposalTypePSK:
		switch pr.PSK.PSKType {
		case PSKTypeExternal:
			p.line(in, "psk: external, id %s", bytesWithText(pr.PSK.PSKID))
		default:
			p.line(in, "psk: resumption (usage %d), group %s, epoch %d", pr.PSK.Usage, bytesWithText(pr.PSK.PSKGroupID), pr.PSK.PSKEpoch)
		}
	case ProposalTypeReInit:
		p.line(in, "reinit: group %s, %s, %s", bytesWithText(pr.ReInit.GroupID), versionString(pr.ReInit.Version), suiteName(pr.ReInit.CipherSuite))
	case ProposalTypeExternalInit:
		p.line(in, "external_init: kem output %d bytes", len(pr.KEMOutput))
	case ProposalTypeGroupContextExtensions:
		p.extensions(in, "group_context_extensions", pr.Extensions)
	default:
		p.line(in, "%s", pr.Type)
	}
}

func (p *printer) publicMessage(in int, m *PublicMessage) {
	c := &m.Content
	p.line(in-1, "PublicMessage")
	p.line(in, "group id: %s", bytesWithText(c.GroupID))
	p.line(in, "epoch: %d", c.Epoch)
	p.line(in, "sender: %s", c.Sender)
	p.line(in, "content type: %s", c.ContentType)
	p.line(in, "authenticated data: %d bytes", len(c.AuthenticatedData))
	switch c.ContentType {
	case ContentTypeApplication:
		p.line(in, "application data: %d bytes", len(c.ApplicationData))
	case ContentTypeProposal:
		p.line(in, "proposal:")
		p.proposal(in+1, c.Proposal)
	case ContentTypeCommit:
		p.line(in, "commit: %d proposal(s)", len(c.Commit.Proposals))
		for _, por := range c.Commit.Proposals {
			if por.Type == ProposalOrRefReference {
				p.line(in+1, "by reference: %s", hex.EncodeToString(por.Reference))
			} else {
				p.proposal(in+1, por.Proposal)
			}
		}
		if c.Commit.Path != nil {
			p.line(in+1, "path: new leaf (%s), %d parent node(s)", credentialString(&c.Commit.Path.LeafNode.Credential), len(c.Commit.Path.Nodes))
		} else {
			p.line(in+1, "path: (none)")
		}
		p.line(in, "confirmation tag: %s", shortHex(m.Auth.ConfirmationTag))
	}
	p.line(in, "signature: %d bytes", len(m.Auth.Signature))
	if c.Sender.Type == SenderTypeMember {
		p.line(in, "membership tag: %s", shortHex(m.MembershipTag))
	}
}

func (p *printer) privateMessage(in int, m *PrivateMessage) {
	p.line(in-1, "PrivateMessage")
	p.line(in, "group id: %s", bytesWithText(m.GroupID))
	p.line(in, "epoch: %d", m.Epoch)
	p.line(in, "content type: %s", m.ContentType)
	p.line(in, "authenticated data: %d bytes", len(m.AuthenticatedData))
	p.line(in, "encrypted sender data: %d bytes", len(m.EncryptedSenderData))
	p.line(in, "ciphertext: %d bytes", len(m.Ciphertext))
	p.line(in, "sender and content are encrypted; they need the epoch's secrets")
}
