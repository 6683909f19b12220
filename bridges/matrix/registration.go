package matrix

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

// DefaultRegistrationFile is the registration file name in the data directory.
const DefaultRegistrationFile = "matrix-registration.yaml"

// maxRegistrationSize bounds the registration file read from disk.
const maxRegistrationSize = 64 << 10

// NewRegistration builds the appservice registration for cfg (after WithDefaults). The as/hs
// tokens are taken from prev when given (so that re-running `mimi-gateway matrix registration`
// keeps the tokens the homeserver already knows), else generated from crypto/rand.
func NewRegistration(cfg Config, prev *appservice.Registration) (*appservice.Registration, error) {
	cfg = cfg.WithDefaults()
	if cfg.Appservice.URL == "" {
		return nil, errors.New("matrix: registration needs appservice.url or appservice.listen")
	}
	if cfg.ServerName == "" {
		return nil, errors.New("matrix: registration needs server_name")
	}
	r := &appservice.Registration{
		ID:              cfg.Appservice.ID,
		URL:             cfg.Appservice.URL,
		SenderLocalpart: cfg.Appservice.BotLocalpart,
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
	g := Ghosts{Prefix: cfg.Appservice.GhostPrefix, Server: cfg.ServerName}
	r.Namespaces.UserIDs.Register(regexp.MustCompile(g.Regex()), true)
	r.Namespaces.UserIDs.Register(regexp.MustCompile("@"+regexp.QuoteMeta(cfg.Appservice.BotLocalpart)+":"+regexp.QuoteMeta(cfg.ServerName)), true)
	r.Namespaces.RoomAliases.Register(regexp.MustCompile("#"+regexp.QuoteMeta(cfg.Appservice.GhostPrefix)+".*:"+regexp.QuoteMeta(cfg.ServerName)), true)
	return r, nil
}

func randomToken(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("matrix: random token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// LoadRegistration reads a registration file written by WriteRegistration.
func LoadRegistration(path string) (*appservice.Registration, error) {
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

// WriteRegistration writes (or rewrites, keeping its tokens) the registration file for cfg with
// mode 0600 and returns it.
func WriteRegistration(cfg Config, path string) (*appservice.Registration, error) {
	var prev *appservice.Registration
	if p, err := LoadRegistration(path); err == nil {
		prev = p
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	r, err := NewRegistration(cfg, prev)
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
