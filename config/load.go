package config

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

//go:embed example.yaml
var exampleYAML []byte

// Example returns the embedded example configuration: every key with its default and a comment.
func Example() []byte { return append([]byte(nil), exampleYAML...) }

// ExampleFileName is the name errors use for positions in the embedded example.
const ExampleFileName = "example.yaml"

// maxErrors bounds the errors one load reports.
const maxErrors = 100

// Options says where Load reads from.
type Options struct {
	// Path is the YAML file; empty means defaults and environment only.
	Path string
	// Environ is the environment as "NAME=value" entries; nil means none (callers pass
	// os.Environ()).
	Environ []string
	// ReadFile reads Path; nil means os.ReadFile with a size limit. Tests substitute it.
	ReadFile func(path string) ([]byte, error)
}

// Load builds a configuration: embedded defaults, then the file (if any), then environment
// overrides, then *_file secrets, then validation. A non-nil error is an Errors listing every
// problem, or a plain error when the file cannot be read at all.
func Load(opts Options) (*Config, error) {
	var data []byte
	if opts.Path != "" {
		read := opts.ReadFile
		if read == nil {
			read = readFileLimited
		}
		var err error
		if data, err = read(opts.Path); err != nil {
			return nil, fmt.Errorf("config: reading %s: %w", opts.Path, err)
		}
	}
	return load(opts.Path, data, opts.Environ, opts.Path != "")
}

// Parse builds a configuration from YAML bytes, as if read from a file called name, without
// environment overrides.
func Parse(name string, data []byte) (*Config, error) {
	return load(name, data, nil, true)
}

func load(name string, data []byte, environ []string, haveFile bool) (*Config, error) {
	cfg, err := defaults()
	if err != nil {
		return nil, err
	}
	pos := make(map[string]Pos)
	var errs Errors
	if haveFile {
		if len(data) > MaxFileSize {
			return nil, Errors{{Pos: Pos{File: name}, Msg: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}}
		}
		root, perr := parseYAML(name, data)
		if perr != nil {
			return nil, Errors{perr}
		}
		if root != nil {
			d := &decoder{file: name, pos: pos}
			d.decode("", root, reflect.ValueOf(cfg).Elem(), 0)
			errs = append(errs, d.errs...)
		}
		cfg.source = name
	}
	errs = append(errs, applyEnv(cfg, environ, pos)...)
	errs = append(errs, resolveFiles(cfg, pos)...)
	// Validate even after decoding errors, so that one run reports everything; skip validation
	// findings about keys that already have a decoding error (their value is a default).
	v := &validator{}
	cfg.validate(v)
	cfg.warnings = v.warnings
	for _, p := range v.List() {
		if !overlaps(errs, p.Key) {
			errs = append(errs, place(p, pos, name))
		}
	}
	if len(errs) > 0 {
		sortErrors(errs)
		if len(errs) > maxErrors {
			more := len(errs) - maxErrors
			errs = append(errs[:maxErrors:maxErrors], &FieldError{Pos: Pos{File: name}, Msg: fmt.Sprintf("%d more errors not shown", more)})
		}
		return nil, errs
	}
	return cfg, nil
}

// overlaps reports whether errs has an error for path, an ancestor of it or a descendant of it.
func overlaps(errs Errors, path string) bool {
	for _, e := range errs {
		if e.Path == "" {
			continue
		}
		if e.Path == path || isUnder(path, e.Path) || isUnder(e.Path, path) {
			return true
		}
	}
	return false
}

// isUnder reports whether path p lies below path anc ("a.b[0].c" is under "a.b").
func isUnder(p, anc string) bool {
	return strings.HasPrefix(p, anc) && len(p) > len(anc) && (p[len(anc)] == '.' || p[len(anc)] == '[')
}

// defaults decodes the embedded example. It is valid by construction (tested), so an error here
// is a broken build.
func defaults() (*Config, error) {
	root, perr := exampleRoot()
	if perr != nil {
		return nil, fmt.Errorf("config: embedded example is invalid: %w", perr)
	}
	cfg := &Config{}
	d := &decoder{file: ExampleFileName, pos: make(map[string]Pos)}
	d.decode("", root, reflect.ValueOf(cfg).Elem(), 0)
	if len(d.errs) > 0 {
		return nil, fmt.Errorf("config: embedded example is invalid: %w", d.errs)
	}
	return cfg, nil
}

// exampleRoot parses the embedded example once; decoding only reads the tree, so every load can
// share it.
var exampleRoot = sync.OnceValues(func() (*yaml.Node, *FieldError) {
	return parseYAML(ExampleFileName, exampleYAML)
})

// parseYAML parses exactly one YAML document into a node tree. An empty file gives nil.
func parseYAML(name string, data []byte) (root *yaml.Node, ferr *FieldError) {
	defer func() {
		// yaml.v3 has panicked on hostile input in the past; turn any panic into an error.
		if r := recover(); r != nil {
			root, ferr = nil, &FieldError{Pos: Pos{File: name}, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlSyntaxError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlSyntaxError(name, err)
		}
		return nil, &FieldError{Pos: Pos{File: name, Line: extra.Line, Column: extra.Column}, Msg: "more than one YAML document"}
	}
	return &doc, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlSyntaxError turns a yaml.v3 syntax error ("yaml: line 3: did not find ...") into a
// FieldError with the line (yaml.v3 reports no column for syntax errors).
func yamlSyntaxError(name string, err error) *FieldError {
	msg := err.Error()
	fe := &FieldError{Pos: Pos{File: name}}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fmt.Sscanf(m[1], "%d", &fe.Pos.Line)
		msg = msg[len(m[0]):]
	}
	fe.Msg = "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")
	return fe
}

func cleanYAMLError(err error) string { return strings.TrimPrefix(err.Error(), "yaml: ") }

// readFileLimited reads a file of at most MaxFileSize bytes.
func readFileLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("file larger than %d bytes", MaxFileSize)
	}
	return data, nil
}

// maxSecretFile bounds a file read for a *_file key.
const maxSecretFile = 64 << 10

// resolveFiles reads every *_file key that has a sibling key without the suffix (dsn_file for
// dsn) into that sibling. Setting both is an error.
func resolveFiles(cfg *Config, pos map[string]Pos) Errors {
	var errs Errors
	var walk func(path string, v reflect.Value)
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			if v.Type() == durationType || v.Type() == nodeType {
				return
			}
			fields := fieldsOf(v.Type())
			for _, f := range orderedFields(v.Type()) {
				fv := v.FieldByIndex(f.index)
				base, isFile := strings.CutSuffix(f.name, "_file")
				bf, hasBase := fields[base]
				if isFile && hasBase && f.typ.Kind() == reflect.String && bf.typ.Kind() == reflect.String {
					file := fv.String()
					if file == "" {
						continue
					}
					fp, bp := join(path, f.name), join(path, base)
					bv := v.FieldByIndex(bf.index)
					if bv.String() != "" {
						errs = append(errs, &FieldError{Pos: pos[fp], Path: fp, Msg: fmt.Sprintf("set either %s or %s, not both", base, f.name)})
						continue
					}
					secret, err := readSecretFile(file)
					if err != nil {
						errs = append(errs, &FieldError{Pos: pos[fp], Path: fp, Msg: err.Error()})
						continue
					}
					bv.SetString(secret)
					pos[bp] = pos[fp]
					continue
				}
				walk(join(path, f.name), fv)
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
		}
	}
	walk("", reflect.ValueOf(cfg).Elem())
	return errs
}

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading secret: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("reading secret %s: %w", path, err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Errorf("secret file %s is larger than %d bytes", path, maxSecretFile)
	}
	s := strings.TrimRight(string(data), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}
