package assets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// DefaultSweepInterval is how often Run sweeps unless told otherwise.
const DefaultSweepInterval = time.Hour

// Sweep deletes expired assets (ciphertext, then metadata) and what a crash during Put can leave:
// temporary files, ciphertext without metadata and metadata without ciphertext, once they are
// older than OrphanGrace (so that a Put in progress is never touched). Other files are left
// alone. It returns the number of files removed.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("assets: sweep: %w", err)
	}
	now := s.now()
	present := make(map[string]bool, len(entries))
	for _, e := range entries {
		present[e.Name()] = true
	}
	old := func(e os.DirEntry) bool {
		info, err := e.Info()
		return err == nil && now.Sub(info.ModTime()) >= OrphanGrace
	}
	removed := 0
	var errs []error
	remove := func(name string) {
		err := os.Remove(filepath.Join(s.dir, name))
		switch {
		case err == nil:
			removed++
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, err)
		}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			if _, err := protocol.ParseAssetID(strings.TrimSuffix(strings.TrimSuffix(name, tmpSuffix), metaSuffix)); err == nil && old(e) {
				remove(name)
			}
		case strings.HasSuffix(name, metaSuffix):
			id := strings.TrimSuffix(name, metaSuffix)
			if _, err := protocol.ParseAssetID(id); err != nil {
				continue
			}
			exp, ok := s.expiresOf(name)
			switch {
			case ok && !now.Before(exp):
				remove(id) // ciphertext first: metadata without it is still swept later
				remove(name)
				s.log.Debug("expired asset deleted", "id", id)
			case !present[id] && old(e):
				remove(name)
			case !ok && old(e):
				remove(id)
				remove(name)
			}
		default:
			if _, err := protocol.ParseAssetID(name); err == nil && !present[name+metaSuffix] && old(e) {
				remove(name)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("assets: sweep: %w", err)
	}
	return removed, nil
}

// expiresOf reads a metadata file's expiry; ok is false when it cannot be read.
func (s *Store) expiresOf(name string) (time.Time, bool) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize))
	if err != nil {
		return time.Time{}, false
	}
	var m meta
	if json.Unmarshal(b, &m) != nil {
		return time.Time{}, false
	}
	return time.Unix(m.Expires, 0), true
}

// Run sweeps at once and then every interval (DefaultSweepInterval when <= 0) until ctx ends.
// Errors are logged; the next sweep tries again.
func (s *Store) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("asset sweep failed", "err", err)
		} else if n > 0 {
			s.log.Info("asset sweep", "removed_files", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
