package config

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Reference renders the key reference of docs/configuration.md from the embedded example: one
// entry per key with its default, its environment variable, whether it is reloadable and its
// comment, followed by the complete example. A test keeps docs/configuration.md equal to it.
func Reference() (string, error) {
	root, perr := parseYAML(ExampleFileName, exampleYAML)
	if perr != nil {
		return "", perr
	}
	hot := HotKeys()
	var b strings.Builder
	var walk func(path string, m *yaml.Node, level int) error
	walk = func(path string, m *yaml.Node, level int) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			p := join(path, k.Value)
			comment := commentText(k.HeadComment)
			if v.Kind == yaml.MappingNode {
				fmt.Fprintf(&b, "%s `%s`\n\n", strings.Repeat("#", min(level, 6)), p)
				if comment != "" {
					b.WriteString(comment + "\n\n")
				}
				if err := walk(p, v, level+1); err != nil {
					return err
				}
				continue
			}
			def, err := flow(v)
			if err != nil {
				return err
			}
			reload := "restart"
			if isHot(p, hot) {
				reload = "reloadable"
			}
			fmt.Fprintf(&b, "- **`%s`**: default `%s`; env `%s`; %s.", p, def, EnvName(p), reload)
			if comment == "" {
				b.WriteString("\n")
			} else {
				b.WriteString("\n\n" + indent(comment, "  ") + "\n")
			}
			b.WriteString("\n")
		}
		return nil
	}
	b.WriteString("## Keys\n\n")
	if err := walk("", root.Content[0], 3); err != nil {
		return "", err
	}
	b.WriteString("## The complete example\n\n`mimi-gateway config example` prints it:\n\n```yaml\n")
	b.Write(exampleYAML)
	b.WriteString("```\n")
	return b.String(), nil
}

// commentText turns a YAML head comment into Markdown: the comment lines as a paragraph, and lines
// indented further (examples) as a code block.
func commentText(c string) string {
	if c == "" {
		return ""
	}
	var out []string
	inCode := false
	for _, line := range strings.Split(c, "\n") {
		line = strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ")
		code := strings.HasPrefix(line, "  ")
		switch {
		case code && !inCode:
			out = append(out, "", "```yaml")
			inCode = true
		case !code && inCode:
			out = append(out, "```", "")
			inCode = false
		}
		if code {
			line = strings.TrimPrefix(line, "  ")
		}
		out = append(out, line)
	}
	if inCode {
		out = append(out, "```")
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// flow renders a node as one line of YAML.
func flow(n *yaml.Node) (string, error) {
	c := *n
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	c.Style = yaml.FlowStyle
	if c.Kind == yaml.ScalarNode {
		if c.Value == "" {
			return `""`, nil
		}
		return c.Value, nil
	}
	out, err := yaml.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("config: rendering default: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func isHot(path string, hot []string) bool {
	return slices.ContainsFunc(hot, func(h string) bool { return path == h || isUnder(path, h) })
}
