package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/console"
)

// fileEditor is the console's configuration editor on the gateway's configuration file: the
// same validation as `config validate` (the same loader, environment and *_file secrets), an
// atomic write, the earlier file kept in <data_dir>/config-versions, and the reload of SIGHUP.
type fileEditor struct {
	mgr   *config.Manager
	path  string
	dir   string
	keep  int
	hooks *runtimeHooks

	mu sync.Mutex // serialises Apply and Rollback
}

var _ console.ConfigEditor = (*fileEditor)(nil)

func newFileEditor(mgr *config.Manager, cfg *config.Config, hooks *runtimeHooks) *fileEditor {
	return &fileEditor{mgr: mgr, path: cfg.Source(), dir: filepath.Join(cfg.DataDirAbs(), "config-versions"),
		keep: cfg.AdminUI.ConfigVersions, hooks: hooks}
}

func (e *fileEditor) Effective() ([]byte, error) { return e.mgr.Current().Effective() }

func fileVersion(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:12])
}

func (e *fileEditor) read() ([]byte, error) {
	if e.path == "" {
		return nil, console.ErrNoConfigFile
	}
	b, err := os.ReadFile(e.path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", e.path, err)
	}
	return b, nil
}

func (e *fileEditor) File() (console.ConfigFile, error) {
	b, err := e.read()
	if err != nil {
		return console.ConfigFile{}, err
	}
	red, err := config.Redact(e.path, b)
	if err != nil {
		return console.ConfigFile{}, err
	}
	return console.ConfigFile{Name: e.path, Text: red, Version: fileVersion(b), Placeholder: config.RedactedValue}, nil
}

func (e *fileEditor) Check(text []byte) (console.ConfigCheck, error) {
	orig, err := e.read()
	if err != nil {
		return console.ConfigCheck{}, err
	}
	chk, _, err := e.check(text, orig)
	return chk, err
}

// check unredacts text against orig, loads it as the running gateway would, and compares it
// with the running configuration. It returns the full text to write.
func (e *fileEditor) check(text, orig []byte) (console.ConfigCheck, []byte, error) {
	var chk console.ConfigCheck
	full, err := config.Unredact(e.path, text, orig)
	if err != nil {
		chk.Errors = configErrors(err)
		return chk, nil, nil
	}
	next, err := config.Load(config.Options{Path: e.path, Environ: e.hooks.environ,
		ReadFile: func(string) ([]byte, error) { return full, nil }})
	if err != nil {
		chk.Errors = configErrors(err)
		return chk, nil, nil
	}
	redOrig, err := config.Redact(e.path, orig)
	if err != nil {
		return chk, nil, err
	}
	redNew, err := config.Redact(e.path, full)
	if err != nil {
		return chk, nil, err
	}
	chk.Diff = console.Diff(redOrig, redNew)
	rep := config.Changes(e.mgr.Current(), next)
	chk.Applied, chk.Restart = rep.Applied, rep.Kept
	return chk, full, nil
}

// configErrors turns a load error into the console's errors, one per problem, each as
// `config validate` prints it.
func configErrors(err error) []console.ConfigError {
	var fes config.Errors
	var fe *config.FieldError
	switch {
	case errors.As(err, &fes):
	case errors.As(err, &fe):
		fes = config.Errors{fe}
	default:
		return []console.ConfigError{{Text: err.Error()}}
	}
	out := make([]console.ConfigError, 0, len(fes))
	for _, f := range fes {
		out = append(out, console.ConfigError{Line: f.Pos.Line, Text: f.Error()})
	}
	return out
}

func (e *fileEditor) Apply(ctx context.Context, text []byte, base string) (console.ConfigApply, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	orig, err := e.read()
	if err != nil {
		return console.ConfigApply{}, err
	}
	if base != fileVersion(orig) {
		return console.ConfigApply{}, console.ErrConfigChanged
	}
	chk, full, err := e.check(text, orig)
	if err != nil || len(chk.Errors) > 0 {
		return console.ConfigApply{ConfigCheck: chk}, err
	}
	return e.write(orig, full, chk)
}

// write keeps orig as a version, writes full atomically and reloads.
func (e *fileEditor) write(orig, full []byte, chk console.ConfigCheck) (console.ConfigApply, error) {
	res := console.ConfigApply{ConfigCheck: chk, Version: fileVersion(full)}
	if err := e.keepVersion(orig); err != nil {
		return res, err
	}
	if err := writeAtomic(e.path, full); err != nil {
		return res, err
	}
	if _, err := e.hooks.reload(); err != nil {
		res.ReloadError = err.Error()
	}
	return res, nil
}

var versionName = regexp.MustCompile(`^[0-9]{19}$`)

func (e *fileEditor) keepVersion(orig []byte) error {
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return fmt.Errorf("config versions: %w", err)
	}
	name := filepath.Join(e.dir, fmt.Sprintf("%019d", time.Now().UnixNano())+".yaml")
	if err := writeAtomic(name, orig); err != nil {
		return err
	}
	vs, err := e.Versions()
	if err != nil {
		return err
	}
	for i := e.keep; i < len(vs); i++ {
		_ = os.Remove(filepath.Join(e.dir, vs[i].ID+".yaml"))
	}
	return nil
}

func (e *fileEditor) Versions() ([]console.ConfigVersion, error) {
	ents, err := os.ReadDir(e.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config versions: %w", err)
	}
	var out []console.ConfigVersion
	for _, en := range ents {
		id, ok := strings.CutSuffix(en.Name(), ".yaml")
		if !ok || !versionName.MatchString(id) {
			continue
		}
		ns, _ := strconv.ParseInt(id, 10, 64)
		v := console.ConfigVersion{ID: id, Time: time.Unix(0, ns).UTC()}
		if fi, err := en.Info(); err == nil {
			v.Size = int(fi.Size())
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}

func (e *fileEditor) Rollback(_ context.Context, id string) (console.ConfigApply, error) {
	if !versionName.MatchString(id) {
		return console.ConfigApply{}, fmt.Errorf("no configuration version %q", id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old, err := os.ReadFile(filepath.Join(e.dir, id+".yaml"))
	if err != nil {
		return console.ConfigApply{}, fmt.Errorf("configuration version %s: %w", id, err)
	}
	orig, err := e.read()
	if err != nil {
		return console.ConfigApply{}, err
	}
	chk, full, err := e.check(old, orig)
	if err != nil || len(chk.Errors) > 0 {
		return console.ConfigApply{ConfigCheck: chk}, err
	}
	return e.write(orig, full, chk)
}

// writeAtomic replaces path with data: a temporary file in the same directory, synced, renamed
// over path, then the directory synced. The file keeps path's mode (0600 for a new file).
func writeAtomic(path string, data []byte) error {
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
