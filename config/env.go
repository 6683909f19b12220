package config

import (
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable that overrides a key: MIMI_GATEWAY_<PATH>, where
// PATH is the key path in upper case with dots replaced by underscores, e.g.
// MIMI_GATEWAY_STORE_POSTGRES_DSN for store.postgres.dsn.
const EnvPrefix = "MIMI_GATEWAY_"

// EnvConfigFile names the configuration file (like --config). It is not a key override.
const EnvConfigFile = EnvPrefix + "CONFIG"

// envKey is one overridable key.
type envKey struct {
	path  string
	index []int
	typ   reflect.Type
}

// EnvName returns the environment variable that overrides the key at path (e.g. "bus.mode").
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// envKeys lists every key that an environment variable can set: scalars, lists and maps (lists
// and maps take a YAML flow value, e.g. MIMI_GATEWAY_BUS_EXTERNAL_URLS='[nats://a:4222]').
func envKeys() map[string]envKey {
	out := make(map[string]envKey)
	var walk func(prefix string, t reflect.Type, index []int)
	walk = func(prefix string, t reflect.Type, index []int) {
		for _, f := range orderedFields(t) {
			p := join(prefix, f.name)
			idx := append(append([]int(nil), index...), f.index...)
			if f.typ.Kind() == reflect.Struct && f.typ != durationType && f.typ != nodeType &&
				!reflect.PointerTo(f.typ).Implements(textUnmarshalerType) {
				walk(p, f.typ, idx)
				continue
			}
			out[EnvName(p)] = envKey{path: p, index: idx, typ: f.typ}
		}
	}
	walk("", reflect.TypeFor[Config](), nil)
	return out
}

// applyEnv sets keys from MIMI_GATEWAY_* variables in environ ("NAME=value" entries). Unknown
// variables with the prefix are errors (they are almost always typos).
func applyEnv(cfg *Config, environ []string, pos map[string]Pos) Errors {
	keys := envKeys()
	var errs Errors
	var names []string
	vals := make(map[string]string)
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigFile {
			continue
		}
		if _, dup := vals[name]; !dup {
			names = append(names, name)
		}
		vals[name] = val
	}
	sort.Strings(names)
	root := reflect.ValueOf(cfg).Elem()
	for _, name := range names {
		val := vals[name]
		k, ok := keys[name]
		if !ok {
			errs = append(errs, &FieldError{Pos: Pos{Env: name}, Msg: "no configuration key matches this variable" + suggestEnv(name, keys)})
			continue
		}
		if len(val) > MaxFileSize {
			errs = append(errs, &FieldError{Pos: Pos{Env: name}, Path: k.path, Msg: "value too long"})
			continue
		}
		var n *yaml.Node
		switch k.typ.Kind() {
		case reflect.String:
			n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}
		case reflect.Slice, reflect.Map:
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(val), &doc); err != nil {
				errs = append(errs, &FieldError{Pos: Pos{Env: name}, Path: k.path, Msg: "invalid YAML value: " + cleanYAMLError(err)})
				continue
			}
			n = &doc
			if doc.Kind == 0 { // empty value: an empty list or map
				n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
			}
		default:
			n = &yaml.Node{Kind: yaml.ScalarNode, Value: val}
		}
		d := &decoder{env: name, pos: pos}
		d.decode(k.path, n, root.FieldByIndex(k.index), 0)
		errs = append(errs, d.errs...)
	}
	return errs
}

func suggestEnv(name string, keys map[string]envKey) string {
	best, bestD := "", 3
	for k := range keys {
		if d := editDistance(name, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}
