// Package registration is the Matrix appservice registration of the gateway: built from the
// adapter's settings, written with mode 0600 (keeping the tokens the homeserver knows) and read
// back with a size limit. bridges/matrix and the `mimi-gateway matrix registration` command use it.
package registration

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"maunium.net/go/mautrix/appservice"
)

// DefaultFile is the registration file name in the data directory.
const DefaultFile = "matrix-registration.yaml"

// Spec is what a registration says about the adapter.
type Spec struct {
	ID           string // the appservice ID
	URL          string // where the homeserver sends transactions
	BotLocalpart string
	GhostPrefix  string // localpart prefix of the ghosts
	GhostRegex   string // the ghosts' user ID namespace
	ServerName   string
}

// maxRegistrationSize bounds the registration file read from disk.
const maxRegistrationSize = 64 << 10

// New builds the appservice registration of s. The as/hs tokens are taken from prev when given
// (so that re-running `mimi-gateway matrix registration` keeps the tokens the homeserver already
// knows), else generated from crypto/rand.
func New(s Spec, prev *appservice.Registration) (*appservice.Registration, error) {
	if s.URL == "" {
		return nil, errors.New("matrix: registration needs appservice.url or appservice.listen")
	}
	if s.ServerName == "" {
		return nil, errors.New("matrix: registration needs server_name")
	}
	r := &appservice.Registration{
		ID:              s.ID,
		URL:             s.URL,
		SenderLocalpart: s.BotLocalpart,
	}
	if prev != nil && prev.AppToken != "" && prev.ServerToken != "" {
		r.AppToken, r.ServerToken = prev.AppToken, prev.ServerToken
	} else {
		var err error
		if r.AppToken, err = randomToken("as_"); err != nil {
			return nil, err
		}
		if r.ServerToken, err = randomToken("hs_"); err != nil {
			return nil, err
		}
	}
	f := false
	r.RateLimited = &f
	r.Namespaces.UserIDs.Register(regexp.MustCompile(s.GhostRegex), true)
	r.Namespaces.UserIDs.Register(regexp.MustCompile("@"+regexp.QuoteMeta(s.BotLocalpart)+":"+regexp.QuoteMeta(s.ServerName)), true)
	r.Namespaces.RoomAliases.Register(regexp.MustCompile("#"+regexp.QuoteMeta(s.GhostPrefix)+".*:"+regexp.QuoteMeta(s.ServerName)), true)
	return r, nil
}

func randomToken(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("matrix: random token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Load reads a registration file written by Write.
func Load(path string) (*appservice.Registration, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("matrix: registration file: %w", err)
	}
	if st.Size() > maxRegistrationSize {
		return nil, fmt.Errorf("matrix: registration file %s is %d bytes, limit %d", path, st.Size(), maxRegistrationSize)
	}
	r, err := appservice.LoadRegistration(path)
	if err != nil {
		return nil, fmt.Errorf("matrix: registration file %s: %w", path, err)
	}
	if r.AppToken == "" || r.ServerToken == "" {
		return nil, fmt.Errorf("matrix: registration file %s lacks as_token or hs_token", path)
	}
	return r, nil
}

// Write writes (or rewrites, keeping its tokens) the registration file of s with mode 0600 and
// returns it.
func Write(s Spec, path string) (*appservice.Registration, error) {
	var prev *appservice.Registration
	if p, err := Load(path); err == nil {
		prev = p
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	r, err := New(s, prev)
	if err != nil {
		return nil, err
	}
	y, err := r.YAML()
	if err != nil {
		return nil, fmt.Errorf("matrix: encode registration: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("matrix: registration directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(y), 0o600); err != nil {
		return nil, fmt.Errorf("matrix: write registration: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("matrix: write registration: %w", err)
	}
	return r, nil
}
