package config

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
)

// Manager holds the running configuration and reloads it. Readers call Current for an immutable
// snapshot; Reload replaces the snapshot atomically, so a reader sees either the old or the new
// configuration, never a mix.
type Manager struct {
	opts Options
	cur  atomic.Pointer[Config]
	mu   sync.Mutex // serialises Reload
	subs []func(old, cur *Config)
}

// NewManager loads the configuration described by opts and returns a Manager holding it. Reload
// reads from the same options (the same file path and environment).
func NewManager(opts Options) (*Manager, error) {
	cfg, err := Load(opts)
	if err != nil {
		return nil, err
	}
	return NewManagerWith(opts, cfg), nil
}

// NewManagerWith returns a Manager holding an already loaded cfg.
func NewManagerWith(opts Options, cfg *Config) *Manager {
	m := &Manager{opts: opts}
	m.cur.Store(cfg)
	return m
}

// Current returns the running configuration. Callers must not modify it.
func (m *Manager) Current() *Config { return m.cur.Load() }

// OnReload registers f to be called after each successful reload with the old and new snapshots.
// Register before the first Reload; f runs on the reloading goroutine.
func (m *Manager) OnReload(f func(old, cur *Config)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(m.subs, f)
}

// ReloadReport says what a successful reload did.
type ReloadReport struct {
	// Applied lists the key paths whose new values took effect.
	Applied []string
	// Kept lists the key paths that changed in the file but cannot change at runtime: they keep
	// their old values until the next restart.
	Kept []string
}

// Reload re-reads the configuration, validates it and, if valid, swaps it in. Changes to keys
// that cannot change at runtime are not applied; they are listed in the report. On any error the
// running configuration stays as it was.
func (m *Manager) Reload() (ReloadReport, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := Load(m.opts)
	if err != nil {
		return ReloadReport{}, err
	}
	old := m.cur.Load()
	var rep ReloadReport
	merge("", reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem(), false, &rep)
	sort.Strings(rep.Applied)
	sort.Strings(rep.Kept)
	m.cur.Store(next)
	for _, f := range m.subs {
		f(old, next)
	}
	return rep, nil
}

// merge compares old and next key by key. Where a key differs, a hot (reloadable) key keeps next's
// value and is reported as applied; any other key is reset to old's value and reported as kept.
func merge(path string, old, next reflect.Value, hot bool, rep *ReloadReport) {
	t := old.Type()
	if t.Kind() == reflect.Struct && t != durationType && t != nodeType &&
		!reflect.PointerTo(t).Implements(textUnmarshalerType) {
		for _, f := range orderedFields(t) {
			merge(join(path, f.name), old.FieldByIndex(f.index), next.FieldByIndex(f.index), hot || f.hot, rep)
		}
		return
	}
	if reflect.DeepEqual(old.Interface(), next.Interface()) {
		return
	}
	if hot {
		rep.Applied = append(rep.Applied, path)
		return
	}
	next.Set(old)
	rep.Kept = append(rep.Kept, path)
}

// HotKeys lists the key paths (or subtrees) that take effect on reload without a restart.
func HotKeys() []string {
	var out []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for _, f := range orderedFields(t) {
			p := join(prefix, f.name)
			if f.hot {
				out = append(out, p)
				continue
			}
			if f.typ.Kind() == reflect.Struct && f.typ != durationType && f.typ != nodeType {
				walk(p, f.typ)
			}
		}
	}
	walk("", reflect.TypeFor[Config]())
	return out
}

// String summarises the report for a log line.
func (r ReloadReport) String() string {
	return fmt.Sprintf("applied %v, kept until restart %v", r.Applied, r.Kept)
}

// Changes compares two loaded configurations as Reload would: the changed keys that would take
// effect at once (Applied) and those that would need a restart (Kept). Neither is modified.
func Changes(old, next *Config) ReloadReport {
	n := *next // merge resets kept keys in its second argument: work on a copy
	var rep ReloadReport
	merge("", reflect.ValueOf(old).Elem(), reflect.ValueOf(&n).Elem(), false, &rep)
	sort.Strings(rep.Applied)
	sort.Strings(rep.Kept)
	return rep
}
