package console

import (
	"context"
	"strings"
	"time"
)

// ConfigEditor reads, checks and changes the gateway's configuration file. Every text it hands
// out has secret values replaced by a placeholder (ConfigFile.Placeholder); every text it takes
// back may keep that placeholder, which stands for the secret's current value.
type ConfigEditor interface {
	// Effective returns the running configuration (defaults, file, environment) as YAML with
	// secrets redacted.
	Effective() ([]byte, error)
	// File returns the configuration file, redacted. ErrNoConfigFile: the gateway runs without one.
	File() (ConfigFile, error)
	// Check validates an edited text as `config validate` would and, if valid, compares it with
	// the running configuration.
	Check(text []byte) (ConfigCheck, error)
	// Apply checks text, writes it atomically (keeping the previous file as a version) if the
	// file is still at baseVersion, and reloads it through the same path as SIGHUP.
	Apply(ctx context.Context, text []byte, baseVersion string) (ConfigApply, error)
	// Versions lists the kept earlier versions, newest first.
	Versions() ([]ConfigVersion, error)
	// Rollback makes version id the configuration file again (keeping the current one as a
	// version) and reloads.
	Rollback(ctx context.Context, id string) (ConfigApply, error)
}

// ConfigFile is the configuration file as the console shows it.
type ConfigFile struct {
	// Name is the file's path.
	Name string
	// Text is the file with secret values replaced by Placeholder.
	Text []byte
	// Placeholder is what stands for a secret's value in Text.
	Placeholder string
	// Version identifies the file's current content (a hash of the real text).
	Version string
}

// ConfigError is one validation error.
type ConfigError struct {
	// Line is the 1-based line it points at (0: none).
	Line int
	// Text is the whole error as `config validate` prints it: file:line:col: key: message.
	Text string
}

// ConfigCheck is the outcome of ConfigEditor.Check.
type ConfigCheck struct {
	// Errors are the validation errors; empty means valid.
	Errors []ConfigError
	// Diff compares the current file with the edited text (both redacted).
	Diff []DiffLine
	// Applied are the changed keys that take effect at once; Restart those that need a restart.
	Applied []string
	Restart []string
}

// ConfigApply is the outcome of ConfigEditor.Apply and Rollback.
type ConfigApply struct {
	ConfigCheck
	// Version is the new file's version.
	Version string
	// ReloadError is set when the file was written but the reload failed (the running
	// configuration is unchanged then).
	ReloadError string
}

// ConfigVersion is a kept earlier configuration file.
type ConfigVersion struct {
	ID   string
	Time time.Time
	Size int
}

// ErrNoConfigFile is returned by ConfigEditor.File when the gateway was started without a
// configuration file.
var ErrNoConfigFile = errorString("the gateway runs without a configuration file: start it with --config FILE to edit the configuration here")

// ErrConfigChanged is returned by Apply when the file changed since the edit began.
var ErrConfigChanged = errorString("the configuration file changed since you started editing: reload the page and edit again")

type errorString string

func (e errorString) Error() string { return string(e) }

// DiffLine is one line of a line diff.
type DiffLine struct {
	// Op is ' ' (same), '-' (only in the old text) or '+' (only in the new text).
	Op   byte
	Text string
	// Old and New are the line numbers in the old and new text (0 where it has none).
	Old, New int
}

// maxDiffLines bounds the texts Diff compares exactly (beyond it, the whole text is shown as
// replaced).
const maxDiffLines = 4000

// Diff returns the line diff of a and b (longest common subsequence).
func Diff(a, b []byte) []DiffLine {
	al, bl := splitLines(a), splitLines(b)
	if len(al) > maxDiffLines || len(bl) > maxDiffLines {
		var out []DiffLine
		for i, l := range al {
			out = append(out, DiffLine{Op: '-', Text: l, Old: i + 1})
		}
		for i, l := range bl {
			out = append(out, DiffLine{Op: '+', Text: l, New: i + 1})
		}
		return out
	}
	n, m := len(al), len(bl)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []DiffLine
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && al[i] == bl[j]:
			out = append(out, DiffLine{Op: ' ', Text: al[i], Old: i + 1, New: j + 1})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, DiffLine{Op: '+', Text: bl[j], New: j + 1})
			j++
		default:
			out = append(out, DiffLine{Op: '-', Text: al[i], Old: i + 1})
			i++
		}
	}
	return out
}

// Changed reports whether a diff has any change.
func Changed(d []DiffLine) bool {
	for _, l := range d {
		if l.Op != ' ' {
			return true
		}
	}
	return false
}

// diffText renders only the changed lines with a line of context, for the audit log.
func diffText(d []DiffLine) string {
	var b strings.Builder
	for i, l := range d {
		near := l.Op != ' ' || (i > 0 && d[i-1].Op != ' ') || (i+1 < len(d) && d[i+1].Op != ' ')
		if near {
			b.WriteByte(l.Op)
			b.WriteByte(' ')
			b.WriteString(l.Text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func splitLines(b []byte) []string {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
