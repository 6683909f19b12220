package mls

import "testing"

// BenchmarkNewKeyPackage makes a KeyPackage (two HPKE key pairs, two signatures), suite 1: what a
// provider does for every KeyPackage of a user's pool.
func BenchmarkNewKeyPackage(b *testing.B) {
	sg, err := GenerateSigner(MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	cred := Credential{Type: CredentialTypeBasic, Identity: []byte("mimi://a.example/u/alice")}
	m := startCPU()
	for b.Loop() {
		if _, _, err := NewKeyPackage(sg, cred, KeyPackageOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, b.N)
}
