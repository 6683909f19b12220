package protocol

import (
	"sync"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// fixtures are realistic MLS objects made with core/mls: Alice creates a group, adds Bob
// (Commit + Welcome + GroupInfo), proposes to add Carol, and encrypts a 1 KiB message.
type fixtures struct {
	suite          mls.CipherSuite
	aliceSigner    *mls.Signer
	aliceCred      mls.Credential
	bobKP, carolKP *mls.KeyPackage
	commit         *mls.MLSMessage // PublicMessage commit
	welcome        *mls.Welcome
	groupInfo      *mls.GroupInfo // with the ratchet_tree extension
	tree           mls.RatchetTree
	proposal       *mls.MLSMessage // PublicMessage proposal
	app            *mls.MLSMessage // PrivateMessage application, 1 KiB
}

var (
	fixOnce sync.Once
	fix     *fixtures
	fixErr  error
)

func basic(id string) mls.Credential {
	return mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte(id)}
}

func newKP(cs mls.CipherSuite, id string) (*mls.KeyPackage, *mls.KeyPackagePrivate, *mls.Signer, error) {
	s, err := mls.GenerateSigner(cs)
	if err != nil {
		return nil, nil, nil, err
	}
	kp, priv, err := mls.NewKeyPackage(s, basic(id), mls.KeyPackageOptions{})
	return kp, priv, s, err
}

func buildFixtures() (*fixtures, error) {
	f := &fixtures{suite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519}
	var err error
	if f.aliceSigner, err = mls.GenerateSigner(f.suite); err != nil {
		return nil, err
	}
	f.aliceCred = basic("mimi://a.example/d/alice/1")
	g, err := mls.CreateGroup([]byte("mimi://a.example/g/clubhouse"), f.aliceSigner, f.aliceCred, mls.GroupOptions{})
	if err != nil {
		return nil, err
	}
	if f.bobKP, _, _, err = newKP(f.suite, "mimi://b.example/d/bob/1"); err != nil {
		return nil, err
	}
	if f.carolKP, _, _, err = newKP(f.suite, "mimi://c.example/d/carol/1"); err != nil {
		return nil, err
	}
	pc, err := g.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{f.bobKP}})
	if err != nil {
		return nil, err
	}
	gi, err := pc.GroupInfo()
	if err != nil {
		return nil, err
	}
	f.commit, f.welcome, f.groupInfo = pc.Commit, pc.Welcome.Welcome, gi.GroupInfo
	rt, ok := f.groupInfo.Extensions.Find(mls.ExtensionRatchetTree)
	if !ok {
		return nil, errNoTree
	}
	if f.tree, err = mls.DecodeRatchetTree(rt); err != nil {
		return nil, err
	}
	if g, err = pc.Confirm(); err != nil {
		return nil, err
	}
	if f.proposal, err = g.ProposeAdd(f.carolKP); err != nil {
		return nil, err
	}
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = byte(i)
	}
	if f.app, err = g.Encrypt(payload, nil); err != nil {
		return nil, err
	}
	return f, nil
}

type fixtureError string

func (e fixtureError) Error() string { return string(e) }

const errNoTree = fixtureError("GroupInfo without ratchet_tree")

func getFixtures(t testing.TB) *fixtures {
	t.Helper()
	fixOnce.Do(func() { fix, fixErr = buildFixtures() })
	if fixErr != nil {
		t.Fatalf("building MLS fixtures: %v", fixErr)
	}
	return fix
}
