package console

import "testing"

// FuzzVerifyPassword feeds arbitrary stored hashes to VerifyPassword: no panic, and never a
// match for a hash it cannot parse.
func FuzzVerifyPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "pw")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "pw")
	f.Add("$argon2i$v=19$m=8,t=1,p=1$$", "")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		ok, err := VerifyPassword(hash, pw)
		if err != nil && ok {
			t.Fatal("a match together with an error")
		}
	})
}
