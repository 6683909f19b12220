package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits on what the decoder accepts.
const (
	// MaxFileSize bounds a configuration file.
	MaxFileSize = 1 << 20
	// maxNodes bounds the nodes visited while decoding, alias expansions included, so that an
	// alias bomb ("billion laughs") costs an error instead of memory.
	maxNodes = 100_000
	// maxDepth bounds nesting.
	maxDepth = 64
)

// Pos is where a value came from: a position in a file, or an environment variable.
type Pos struct {
	// File is the file name; empty for an environment variable.
	File string
	// Line and Column are 1-based; zero when unknown.
	Line, Column int
	// Env is the environment variable that set the value, if any.
	Env string
}

// String formats the position as file:line:column, or the variable name.
func (p Pos) String() string {
	switch {
	case p.Env != "":
		return p.Env
	case p.Line > 0 && p.Column > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return p.File
	}
}

// FieldError is one problem in a configuration: where, which key, what.
type FieldError struct {
	Pos Pos
	// Path is the key path, e.g. "bus.mode" or "partners[0].domain".
	Path string
	// Msg says what is wrong.
	Msg string
}

// Error formats the problem as "file:line:col: path: message".
func (e *FieldError) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one load, in file order.
type Errors []*FieldError

// Error lists all problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders errors by source (env after files), line, column and path.
func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if (a.Env != "") != (b.Env != "") {
			return a.Env == ""
		}
		if a.Env != b.Env {
			return a.Env < b.Env
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return es[i].Path < es[j].Path
	})
}

// decoder walks a yaml.Node tree alongside a Go value, strictly, collecting every error.
type decoder struct {
	file  string
	env   string // set when decoding an environment variable's value
	errs  Errors
	pos   map[string]Pos
	nodes int
	// via is the alias being expanded, if any: errors inside an expansion point at the alias.
	via *yaml.Node
}

func (d *decoder) at(n *yaml.Node) Pos {
	if d.env != "" {
		return Pos{Env: d.env}
	}
	if d.via != nil {
		n = d.via
	}
	return Pos{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Pos: d.at(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decode sets v from n. v must be settable. Errors are collected, never returned, so that one
// pass reports every problem.
func (d *decoder) decode(path string, n *yaml.Node, v reflect.Value, depth int) {
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.errorf(n, path, "document too large or too many alias expansions (limit %d nodes)", maxNodes)
		}
		return
	}
	if depth > maxDepth {
		d.errorf(n, path, "nesting deeper than %d levels", maxDepth)
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			d.decode(path, n.Content[0], v, depth+1)
		}
		return
	case yaml.AliasNode:
		if n.Alias == nil {
			d.errorf(n, path, "unresolved alias")
			return
		}
		if d.via == nil {
			d.via = n
			defer func() { d.via = nil }()
		}
		d.decode(path, n.Alias, v, depth+1)
		return
	}
	if path != "" {
		d.pos[path] = d.at(n)
	}
	t := v.Type()
	switch {
	case t == nodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case t == durationType:
		if !d.scalar(n, path, "a duration such as 30s or 5m") {
			return
		}
		if isNull(n) {
			v.SetInt(0)
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.errorf(n, path, "want a duration such as 30s or 5m, got %s", describe(n))
			return
		}
		v.SetInt(int64(dur))
		return
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		if !d.scalar(n, path, "a scalar") {
			return
		}
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.decodeStruct(path, n, v, depth)
	case reflect.Pointer: // an optional value (a schema's *bool whose nil means its default)
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		p := reflect.New(t.Elem())
		d.decode(path, n, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(fmt.Sprintf("%s[%d]", path, i), c, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.MappingNode || t.Key().Kind() != reflect.String {
			d.errorf(n, path, "want a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.errorf(k, path, "mapping keys must be strings")
				continue
			}
			if m.MapIndex(reflect.ValueOf(k.Value).Convert(t.Key())).IsValid() {
				d.errorf(k, join(path, k.Value), "duplicate key %q", k.Value)
				continue
			}
			e := reflect.New(t.Elem()).Elem()
			d.decode(join(path, k.Value), val, e, depth+1)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
		}
		v.Set(m)
	case reflect.String:
		if !d.scalar(n, path, "a string") {
			return
		}
		if isNull(n) {
			v.SetString("")
			return
		}
		if n.ShortTag() == "!!binary" {
			d.errorf(n, path, "want a string, got binary data")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		switch n.Value {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.errorf(n, path, "want true or false, got %s", describe(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if !d.scalar(n, path, "an integer") {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits())
		if err != nil || n.ShortTag() != "!!int" {
			d.errorf(n, path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !d.scalar(n, path, "a non-negative integer") {
			return
		}
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, t.Bits())
		if err != nil || n.ShortTag() != "!!int" {
			d.errorf(n, path, "want a non-negative integer, got %s", describe(n))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		if !d.scalar(n, path, "a number") {
			return
		}
		var f float64
		if err := n.Decode(&f); err != nil || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
			d.errorf(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// A schema type the decoder does not know is a programming error; report it, don't panic.
		d.errorf(n, path, "internal: unsupported field type %s", t)
	}
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value, depth int) {
	if isNull(n) {
		return // an empty section keeps its defaults
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "mapping keys must be strings, got %s", describe(k))
			continue
		}
		kp := join(path, k.Value)
		if k.Value == "<<" {
			d.errorf(k, kp, "merge keys (<<) are not supported")
			continue
		}
		if seen[k.Value] {
			d.errorf(k, kp, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			d.errorf(k, kp, "unknown key %q%s", k.Value, suggest(k.Value, fields))
			continue
		}
		d.decode(kp, val, v.FieldByIndex(f.index), depth+1)
	}
}

// scalar reports whether n is a scalar, recording an error if it is not.
func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	d.errorf(n, path, "want %s, got %s", want, describe(n))
	return false
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "boolean " + v
	case "!!int":
		return "integer " + v
	case "!!float":
		return "number " + v
	default:
		return strconv.Quote(v)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// field describes one configurable struct field.
type field struct {
	name  string
	index []int
	hot   bool // reload:"hot"
	typ   reflect.Type
}

// fieldsOf returns the yaml-tagged exported fields of struct type t by key name.
func fieldsOf(t reflect.Type) map[string]field {
	out := make(map[string]field)
	for _, f := range orderedFields(t) {
		out[f.name] = f
	}
	return out
}

// orderedFields returns the yaml-tagged exported fields of struct type t in declaration order.
func orderedFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, field{name: name, index: sf.Index, hot: sf.Tag.Get("reload") == "hot", typ: sf.Type})
	}
	return out
}

// suggest proposes the closest known key for a misspelt one.
func suggest(key string, fields map[string]field) string {
	best, bestD := "", 3 // suggest only within an edit distance of 2
	for name := range fields {
		if dist := editDistance(key, name); dist < bestD || (dist == bestD && name < best) {
			best, bestD = name, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, for short keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
