package gatewaytest

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// MergeYAML merges YAML documents in order: mappings merge key by key, recursively; any other
// value (a scalar, a sequence) of a later document replaces the earlier one. Comments of the
// first document that has a key are kept.
func MergeYAML(docs ...string) (string, error) {
	var out *yaml.Node
	for i, d := range docs {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(d), &n); err != nil {
			return "", fmt.Errorf("gatewaytest: YAML layer %d: %w", i, err)
		}
		if n.Kind == 0 { // empty document
			continue
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
			return "", fmt.Errorf("gatewaytest: YAML layer %d is not a mapping", i)
		}
		if out == nil {
			out = n.Content[0]
			continue
		}
		mergeMapping(out, n.Content[0])
	}
	if out == nil {
		return "", nil
	}
	b, err := yaml.Marshal(out)
	return string(b), err
}

func mergeMapping(dst, src *yaml.Node) {
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		found := false
		for j := 0; j+1 < len(dst.Content); j += 2 {
			if dst.Content[j].Value != k.Value {
				continue
			}
			found = true
			if dst.Content[j+1].Kind == yaml.MappingNode && v.Kind == yaml.MappingNode {
				mergeMapping(dst.Content[j+1], v)
			} else {
				dst.Content[j+1] = v
			}
		}
		if !found {
			dst.Content = append(dst.Content, k, v)
		}
	}
}
