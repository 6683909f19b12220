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

	"github.com/mimi-gateway/mimi-gateway/core/event"
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
	m, ok := s.metaOf(name)
	return time.Unix(m.Expires, 0), ok
}

// metaOf reads a metadata file; ok is false when it cannot be read.
func (s *Store) metaOf(name string) (meta, bool) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		return meta{}, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize))
	if err != nil {
		return meta{}, false
	}
	var m meta
	if json.Unmarshal(b, &m) != nil {
		return meta{}, false
	}
	return m, true
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

// PruneBefore deletes the assets stored before `before` (retention of attachments), whatever
// their expiry, and returns how many it deleted. An asset stored before its creation time was
// recorded counts from its expiry minus the configured expiry.
func (s *Store) PruneBefore(ctx context.Context, before time.Time) (int64, error) {
	return s.removeWhere(ctx, func(m meta) bool {
		created := m.Created
		if created == 0 {
			created = m.Expires - int64(s.expiry/time.Second)
		}
		return created < before.Unix()
	})
}

// EraseOwner deletes every asset the user u uploaded (erasure of a user's data) and returns how
// many it deleted.
func (s *Store) EraseOwner(ctx context.Context, u event.UserURI) (int64, error) {
	h := ownerHash(u)
	if h == "" {
		return 0, nil
	}
	return s.removeWhere(ctx, func(m meta) bool { return m.Owner == h })
}

// CountOwner returns how many stored assets the user u uploaded and their total size.
func (s *Store) CountOwner(ctx context.Context, u event.UserURI) (n, size int64, err error) {
	h := ownerHash(u)
	err = s.eachMeta(ctx, func(_ string, m meta) error {
		if h != "" && m.Owner == h {
			n++
			size += m.Size
		}
		return nil
	})
	return n, size, err
}

// removeWhere deletes the assets (ciphertext, then metadata) whose metadata matches.
func (s *Store) removeWhere(ctx context.Context, match func(meta) bool) (int64, error) {
	var removed int64
	err := s.eachMeta(ctx, func(id string, m meta) error {
		if !match(m) {
			return nil
		}
		for _, name := range []string{id, id + metaSuffix} {
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("assets: remove %s: %w", name, err)
			}
		}
		removed++
		return nil
	})
	return removed, err
}

// eachMeta calls fn with every readable asset metadata file.
func (s *Store) eachMeta(ctx context.Context, fn func(id string, m meta) error) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("assets: list: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		id, ok := strings.CutSuffix(e.Name(), metaSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if _, err := protocol.ParseAssetID(id); err != nil {
			continue
		}
		m, ok := s.metaOf(e.Name())
		if !ok {
			continue
		}
		if err := fn(id, m); err != nil {
			return err
		}
	}
	return nil
}
