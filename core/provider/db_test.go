package provider

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strings"
	"testing"
)

// sqlStatement matches the start of an SQL statement in a string literal.
var sqlStatement = regexp.MustCompile(`(?i)^\s*(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b|\bFROM\s+provider_`)

// TestNoSQLOutsideDB keeps the provider's SQL in the db_*.go files: no other non-test file of the
// package has a string literal that is (or starts) an SQL statement.
func TestNoSQLOutsideDB(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, "db_") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && sqlStatement.MatchString(strings.Trim(lit.Value, "`\"")) {
				t.Errorf("%s: SQL outside the db_*.go files: %.60s", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("checked %d files; the package has more", checked)
	}
}
