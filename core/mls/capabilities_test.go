package mls

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"
)

// requiredBasicX509 is the required_capabilities extension of the groups Wire's core-crypto
// (OpenMLS) creates: no extension or proposal types, credential types basic and x509.
func requiredBasicX509() Extension {
	return Extension{Type: ExtensionRequiredCapabilities, Data: []byte{0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02}}
}

// basicOnly are capabilities that lack x509 (what defaultCapabilities listed before).
func basicOnly(cs CipherSuite) *Capabilities {
	return &Capabilities{Versions: []ProtocolVersion{ProtocolVersionMLS10}, CipherSuites: []CipherSuite{cs},
		Credentials: []CredentialType{CredentialTypeBasic}}
}

func TestDefaultCapabilities(t *testing.T) {
	t.Parallel()
	c := DefaultCapabilities()
	for _, ct := range []CredentialType{CredentialTypeBasic, CredentialTypeX509} {
		if !slices.Contains(c.Credentials, ct) {
			t.Errorf("default capabilities lack credential type %s", ct)
		}
	}
	if !slices.Equal(c.CipherSuites, SupportedCipherSuites()) || !slices.Equal(c.Versions, []ProtocolVersion{ProtocolVersionMLS10}) {
		t.Errorf("suites %v versions %v", c.CipherSuites, c.Versions)
	}
	// A leaf with a custom credential type advertises it too; explicit capabilities must cover it.
	custom := CredentialType(0xf001)
	got, err := leafCapabilities(nil, 1, custom, nil)
	if err != nil || !slices.Contains(got.Credentials, custom) {
		t.Fatalf("widened: %v %v", got.Credentials, err)
	}
	for name, caps := range map[string]*Capabilities{
		"no own credential": basicOnly(1),
		"no suite":          {Versions: []ProtocolVersion{ProtocolVersionMLS10}, Credentials: []CredentialType{custom}},
		"no version":        {CipherSuites: []CipherSuite{1}, Credentials: []CredentialType{custom}},
	} {
		if _, err := leafCapabilities(caps, 1, custom, nil); !errors.Is(err, ErrCapabilities) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRequiredCapabilities: in a group that requires credential types basic and x509 (our own
// CreateGroup), a default KeyPackage is added and joins by Welcome, a default ExternalJoin is
// accepted by every member, and leaves without x509 are refused before anything is signed.
func TestRequiredCapabilities(t *testing.T) {
	t.Parallel()
	for _, cs := range []CipherSuite{1, 2} {
		t.Run(fmt.Sprint("suite", cs), func(t *testing.T) {
			t.Parallel()
			owner := newGoClient(t, cs, "owner")
			exts := Extensions{requiredBasicX509()}
			if _, err := CreateGroup([]byte("g"), owner.signer, owner.cred(), GroupOptions{Extensions: exts, Capabilities: basicOnly(cs)}); !errors.Is(err, ErrCapabilities) {
				t.Fatalf("CreateGroup without x509: %v", err)
			}
			var err error
			if owner.g, err = CreateGroup([]byte("g"), owner.signer, owner.cred(), GroupOptions{Extensions: exts}); err != nil {
				t.Fatal(err)
			}
			gc := owner.g.GroupContext()
			if _, _, err := NewKeyPackage(owner.signer, owner.cred(), KeyPackageOptions{Capabilities: basicOnly(cs), Group: &gc}); !errors.Is(err, ErrCapabilities) {
				t.Fatalf("KeyPackage without x509 for the group: %v", err)
			}
			// A KeyPackage made without the group in mind is refused by our commit, not sent.
			lacking := newGoClient(t, cs, "lacking")
			if lacking.kp, lacking.kpPriv, err = NewKeyPackage(lacking.signer, lacking.cred(), KeyPackageOptions{Capabilities: basicOnly(cs)}); err != nil {
				t.Fatal(err)
			}
			if _, err := owner.g.Commit(CommitOptions{Add: []*KeyPackage{lacking.kp}}); !errors.Is(err, ErrCapabilities) {
				t.Fatalf("commit adding a leaf without x509: %v", err)
			}

			joiner := newGoClient(t, cs, "joiner")
			if _, _, err := NewKeyPackage(joiner.signer, joiner.cred(), KeyPackageOptions{Group: &gc}); err != nil {
				t.Fatalf("default KeyPackage for the group: %v", err)
			}
			pc, err := owner.g.Commit(CommitOptions{Add: []*KeyPackage{joiner.kp}})
			if err != nil {
				t.Fatal(err)
			}
			owner.g = confirm(t, pc)
			if joiner.g, err = JoinFromWelcome(reencode(t, pc.Welcome).Welcome, joiner.kp, joiner.kpPriv, joiner.signer, JoinOptions{}); err != nil {
				t.Fatal(err)
			}

			gi, err := owner.g.GroupInfo()
			if err != nil {
				t.Fatal(err)
			}
			ext := newGoClient(t, cs, "external")
			if _, err := ExternalJoin(reencode(t, gi).GroupInfo, ext.signer, ext.cred(), ExternalJoinOptions{Capabilities: basicOnly(cs)}); !errors.Is(err, ErrCapabilities) {
				t.Fatalf("external join without x509: %v", err)
			}
			if _, err := ExternalJoin(reencode(t, gi).GroupInfo, owner.signer, ext.cred(), ExternalJoinOptions{}); !errors.Is(err, ErrInvalidLeafNode) {
				t.Fatalf("external join with a signature key already in the group: %v", err)
			}
			ej, err := ExternalJoin(reencode(t, gi).GroupInfo, ext.signer, ext.cred(), ExternalJoinOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*goClient{owner, joiner} {
				r, err := c.g.Process(reencode(t, ej.Commit), ProcessOptions{})
				if err != nil {
					t.Fatalf("%s refuses the external commit: %v", c.name, err)
				}
				c.g = r.Commit.State
			}
			ext.g = confirm(t, ej)
			sameEpoch(t, owner.g, joiner.g, ext.g)
		})
	}
}

// TestSelfRemovedEpoch: a member that processes its own removal learns the new epoch.
func TestSelfRemovedEpoch(t *testing.T) {
	t.Parallel()
	a, b := newGoClient(t, 1, "a"), newGoClient(t, 1, "b")
	createWith(t, a, GroupOptions{}, b)
	pc, err := a.g.Commit(CommitOptions{Remove: []LeafIndex{b.g.LeafIndex()}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.g.Process(reencode(t, pc.Commit), ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Commit.SelfRemoved || r.Commit.State != nil || r.Commit.Epoch != b.g.Epoch()+1 || r.Commit.Epoch != pc.State.Epoch() {
		t.Fatalf("self removal: removed %v epoch %d, want %d", r.Commit.SelfRemoved, r.Commit.Epoch, b.g.Epoch()+1)
	}
}

// TestX509Member: a member with an x509 credential is added and joins; every member sees its
// certificate chain as it was sent (core/mls checks no chain: the application's credential policy
// decides).
func TestX509Member(t *testing.T) {
	t.Parallel()
	owner, x := newGoClient(t, 1, "owner"), newGoClient(t, 1, "x509")
	cert := selfSignedCert(t)
	cred := Credential{Type: CredentialTypeX509, Certificates: [][]byte{cert}}
	var err error
	if x.kp, x.kpPriv, err = NewKeyPackage(x.signer, cred, KeyPackageOptions{}); err != nil {
		t.Fatal(err)
	}
	createWith(t, owner, GroupOptions{Extensions: Extensions{requiredBasicX509()}}, x)
	for _, g := range []*Group{owner.g, x.g} {
		m, ok := g.Member(1)
		if !ok || m.Credential.Type != CredentialTypeX509 || len(m.Credential.Certificates) != 1 || string(m.Credential.Certificates[0]) != string(cert) {
			t.Fatalf("leaf 1 seen as %+v", m.Credential)
		}
	}
}

func selfSignedCert(t *testing.T) []byte {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x509 member"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// confirm confirms a pending commit (the delivery service accepted it) and returns the new state.
func confirm(t testing.TB, pc *PendingCommit) *Group {
	t.Helper()
	g, err := pc.Confirm()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRequiredCapabilitiesTSMLS: ts-mls creates a group that requires credential types basic and
// x509 (as OpenMLS-based clients do); a default KeyPackage is added and joins by Welcome, a default
// ExternalJoin is accepted by ts-mls and by the Go member, and a leaf without x509 is refused
// locally.
func TestRequiredCapabilitiesTSMLS(t *testing.T) {
	t.Parallel()
	p := startTSPeer(t)
	for _, cs := range []CipherSuite{1, 2, 3} {
		t.Run(fmt.Sprint("suite", cs), func(t *testing.T) {
			p.t = t
			ts := fmt.Sprint("ts-required-", cs)
			p.call("new_client", map[string]any{"name": ts, "suite": int(cs)})
			rc := requiredBasicX509()
			p.call("create_group", map[string]any{"name": ts, "group_id": fmt.Sprintf("%x", ts),
				"extensions": []map[string]any{{"type": int(rc.Type), "data": fmt.Sprintf("%x", rc.Data)}}})
			member := newGoClient(t, cs, "go-member")
			rep := p.call("add", map[string]any{"name": ts, "key_packages": []string{kpHex(t, member.kp)}, "public": true})
			var err error
			if member.g, err = JoinFromWelcome(decodeMsg(t, p.hexField(rep, "welcome")).Welcome, member.kp, member.kpPriv, member.signer, JoinOptions{}); err != nil {
				t.Fatalf("joining ts-mls's Welcome: %v", err)
			}
			if _, ok := member.g.Extensions().Find(ExtensionRequiredCapabilities); !ok {
				t.Fatal("the ts-mls group has no required_capabilities")
			}
			agree(t, p, ts, member.g)

			gi := decodeMsg(t, p.hexField(p.call("group_info", map[string]any{"name": ts}), "group_info")).GroupInfo
			ext := newGoClient(t, cs, "go-external")
			if _, err := ExternalJoin(gi, ext.signer, ext.cred(), ExternalJoinOptions{Capabilities: basicOnly(cs)}); !errors.Is(err, ErrCapabilities) {
				t.Fatalf("external join without x509: %v", err)
			}
			if _, _, err := NewKeyPackage(ext.signer, ext.cred(), KeyPackageOptions{Capabilities: basicOnly(cs), Group: &gi.GroupContext}); !errors.Is(err, ErrCapabilities) {
				t.Fatalf("KeyPackage without x509 for the ts-mls group: %v", err)
			}
			ej, err := ExternalJoin(gi, ext.signer, ext.cred(), ExternalJoinOptions{})
			if err != nil {
				t.Fatal(err)
			}
			tsProcess(t, p, ts, ej.Commit)
			goProcess(t, member, p.mustHex(t, ej.Commit))
			ext.g = confirm(t, ej)
			agree(t, p, ts, member.g, ext.g)

			// The external joiner talks to both.
			m, err := ext.g.Encrypt([]byte("joined"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tsProcess(t, p, ts, m); got["plaintext"] != fmt.Sprintf("%x", "joined") {
				t.Fatalf("ts-mls read %v", got["plaintext"])
			}
			if r := goProcess(t, member, p.mustHex(t, m)); string(r.ApplicationData) != "joined" {
				t.Fatalf("go member read %q", r.ApplicationData)
			}
		})
	}
}

// groupInfoMsg returns the GroupInfo of a pending commit's epoch.
func groupInfoMsg(t testing.TB, pc *PendingCommit) *MLSMessage {
	t.Helper()
	gi, err := pc.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	return gi
}

// groupInfoOf returns the GroupInfo of a pending commit's epoch, unwrapped.
func groupInfoOf(t testing.TB, pc *PendingCommit) *GroupInfo { return groupInfoMsg(t, pc).GroupInfo }
