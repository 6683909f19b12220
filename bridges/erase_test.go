package bridges

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// TestErasure: the steps delete and rewrite the user's rows and count them, a table that does not
// exist is nothing to erase, and the first real error stops the rest and is returned.
func TestErasure(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "gw.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, q := range []string{
		`CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT)`,
		`INSERT INTO people VALUES ('1', 'alice'), ('2', 'bob'), ('3', 'alice and bob'), ('4', NULL)`,
	} {
		if _, err := st.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	e := NewErasure(st, "test: erase")
	e.Delete(ctx, "people", []string{"id"}, `name = ?`, "alice")
	e.Rewrite(ctx, "people", "id", "name", func(v string) (any, bool) {
		return strings.ReplaceAll(v, "alice", "someone"), strings.Contains(v, "alice")
	})
	e.Exec(ctx, `DELETE FROM no_such_library_table WHERE id = ?`, "1")
	e.Rewrite(ctx, "no_such_library_table", "id", "name", func(string) (any, bool) { return nil, true })
	e.Exec(ctx, `UPDATE people SET name = NULL WHERE name = ?`, "bob")
	if n, err := e.Result(); n != 3 || err != nil {
		t.Fatalf("Result = %d, %v; want 3 rows", n, err)
	}
	var name string
	if err := st.QueryRowContext(ctx, `SELECT name FROM people WHERE id = '3'`).Scan(&name); err != nil || name != "someone and bob" {
		t.Errorf("rewritten name %q, %v", name, err)
	}
	e.Exec(ctx, `DELETE FROM people WHERE no_such_column = 1`)
	e.Delete(ctx, "people", []string{"id"}, `1 = 1`)
	if n, err := e.Result(); n != 3 || err == nil || !strings.HasPrefix(err.Error(), "test: erase: ") {
		t.Errorf("after a failed step: %d, %v; want 3 and the error", n, err)
	}
}
