package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// RedactedValue replaces secret values wherever a configuration is shown (the admin console).
// In an edited text it stands for the secret's current value.
const RedactedValue = "(secret: unchanged)"

// A secret is a string key with a *_file sibling (store.postgres.dsn next to dsn_file,
// bridges.xmpp.users.secret next to secret_file, ...): the same rule that reads *_file keys.
func isSecret(fields map[string]field, f field) bool {
	sib, ok := fields[f.name+"_file"]
	return ok && f.typ.Kind() == reflect.String && sib.typ.Kind() == reflect.String
}

// secretNode is a secret's value node in a YAML document.
type secretNode struct {
	path string
	n    *yaml.Node
}

// secretNodes finds the value nodes of secret keys in a YAML tree of t.
func secretNodes(n *yaml.Node, t reflect.Type, path string, out *[]secretNode) {
	if n == nil {
		return
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			secretNodes(c, t, path, out)
		}
		return
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType && t != nodeType && n.Kind == yaml.MappingNode:
		fields := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			f, ok := fields[n.Content[i].Value]
			if !ok {
				continue
			}
			p := join(path, f.name)
			if isSecret(fields, f) {
				*out = append(*out, secretNode{path: p, n: n.Content[i+1]})
				continue
			}
			secretNodes(n.Content[i+1], f.typ, p, out)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			secretNodes(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

// Effective returns c as YAML, every key with its value, secrets replaced by RedactedValue.
func (c *Config) Effective() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encoding: %w", err)
	}
	var secrets []secretNode
	secretNodes(&doc, reflect.TypeFor[Config](), "", &secrets)
	for _, s := range secrets {
		if s.n.Kind == yaml.ScalarNode && s.n.Value != "" {
			s.n.Value, s.n.Style, s.n.Tag = RedactedValue, yaml.DoubleQuotedStyle, "!!str"
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("config: encoding: %w", err)
	}
	return b.Bytes(), nil
}

// Redact returns the configuration file text data with the value of every secret key replaced
// by RedactedValue, keeping everything else (comments, order, line numbers) as it is.
func Redact(name string, data []byte) ([]byte, error) {
	lines, secrets, err := fileSecrets(name, data)
	if err != nil {
		return nil, err
	}
	for _, s := range secrets {
		if s.n.Value == "" {
			continue
		}
		lines[s.n.Line-1] = replaceTail(lines[s.n.Line-1], s.n, `"`+RedactedValue+`"`)
	}
	return []byte(strings.Join(lines, "\n")), nil
}

// Unredact returns edited with every secret whose value is RedactedValue given the value it has
// in original (the file as it is), keeping line numbers. A placeholder for a secret that
// original does not have is an error naming its line.
func Unredact(name string, edited, original []byte) ([]byte, error) {
	lines, secrets, err := fileSecrets(name, edited)
	if err != nil {
		// Not YAML: validation reports it with its position.
		return edited, nil //nolint:nilerr // the caller validates and reports the syntax error
	}
	var origLines []string
	orig := map[string]*yaml.Node{}
	if len(original) > 0 {
		ol, os, err := fileSecrets(name, original)
		if err != nil {
			return nil, err
		}
		origLines = ol
		for _, s := range os {
			orig[s.path] = s.n
		}
	}
	for _, s := range secrets {
		if s.n.Value != RedactedValue {
			continue
		}
		o, ok := orig[s.path]
		if !ok || o.Value == "" {
			return nil, &FieldError{Pos: Pos{File: name, Line: s.n.Line, Column: s.n.Column}, Path: s.path,
				Msg: "the placeholder stands for the current secret, but the file has none here: type the value"}
		}
		lines[s.n.Line-1] = replaceTail(lines[s.n.Line-1], s.n, rawScalar(origLines[o.Line-1], o))
	}
	return []byte(strings.Join(lines, "\n")), nil
}

// fileSecrets parses a configuration file and returns its lines and its secrets' value nodes.
// A secret written over several lines is refused: it cannot be replaced in place.
func fileSecrets(name string, data []byte) ([]string, []secretNode, error) {
	root, ferr := parseYAML(name, data)
	if ferr != nil {
		return nil, nil, Errors{ferr}
	}
	var secrets []secretNode
	secretNodes(root, reflect.TypeFor[Config](), "", &secrets)
	lines := strings.Split(string(data), "\n")
	for _, s := range secrets {
		oneLine := false
		if s.n.Kind == yaml.ScalarNode && s.n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 && s.n.Line >= 1 && s.n.Line <= len(lines) {
			_, oneLine = scalarOnLine(lines[s.n.Line-1], s.n)
		}
		if !oneLine {
			return nil, nil, &FieldError{Pos: Pos{File: name, Line: s.n.Line, Column: s.n.Column}, Path: s.path,
				Msg: "a secret written over several lines cannot be shown redacted: put it in a *_file"}
		}
	}
	return lines, secrets, nil
}

// replaceTail replaces the scalar n that starts on line (at n.Column) with value, keeping a
// comment after it.
func replaceTail(line string, n *yaml.Node, value string) string {
	col := n.Column - 1
	if col < 0 || col > len(line) {
		return line
	}
	rest := ""
	if n.LineComment != "" {
		rest = " " + n.LineComment
	}
	return line[:col] + value + rest
}

// rawScalar returns the one-line scalar n as written on line: the plain text, or the quoted
// text with its quotes and escapes.
func rawScalar(line string, n *yaml.Node) string {
	raw, _ := scalarOnLine(line, n)
	return raw
}

// scalarOnLine returns the scalar n as written on line and whether it ends on that line.
func scalarOnLine(line string, n *yaml.Node) (string, bool) {
	col := n.Column - 1
	if col < 0 || col >= len(line) {
		return n.Value, n.Value == ""
	}
	rest := line[col:]
	switch {
	case n.Style&yaml.DoubleQuotedStyle != 0 && rest[0] == '"':
		for i := 1; i < len(rest); i++ {
			switch rest[i] {
			case '\\':
				i++
			case '"':
				return rest[:i+1], true
			}
		}
	case n.Style&yaml.SingleQuotedStyle != 0 && rest[0] == '\'':
		for i := 1; i < len(rest); i++ {
			if rest[i] == '\'' {
				if i+1 < len(rest) && rest[i+1] == '\'' {
					i++
					continue
				}
				return rest[:i+1], true
			}
		}
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 && strings.HasPrefix(rest, n.Value):
		after := strings.TrimLeft(rest[len(n.Value):], " \t")
		return n.Value, after == "" || after[0] == '#'
	}
	return n.Value, false
}
