package query

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestBindParams(t *testing.T) {
	f := func(sqlText string, values map[string]any, want string, wantNames ...string) {
		t.Helper()
		got, names, err := bindParams(sqlText, values)
		if err != nil || got != want || !slices.Equal(names, wantNames) {
			t.Errorf("bindParams(%q) = %q %v %v, want %q %v", sqlText, got, names, err, want, wantNames)
		}
	}
	f("select {{n}} + 1", map[string]any{"n": json.Number("41")}, "select 41 + 1", "n")
	f("select {{ s }}, {{s}}", map[string]any{"s": "it's"}, "select 'it''s', 'it''s'", "s")
	f("select '{{s}}', \"{{s}}\" -- {{s}}\n, /* {{s}} */ {{b}}", map[string]any{"b": true},
		"select '{{s}}', \"{{s}}\" -- {{s}}\n, /* {{s}} */ true", "b")
	f("select {{x}} is null", map[string]any{"x": nil}, "select NULL is null", "x")
	for _, c := range []struct {
		sql    string
		values map[string]any
	}{
		{"select {{n}}", map[string]any{}},                              // missing
		{"select 1", map[string]any{"n": json.Number("1")}},             // not in the query
		{"select {{n}}", map[string]any{"n": json.Number("1; drop x")}}, // not a number
		{"select {{n}}", map[string]any{"n": []any{1}}},                 // not a scalar
		{"select {{n", map[string]any{}},                                // not closed
		{"select {{a b}}", map[string]any{}},                            // bad name
	} {
		if _, _, err := bindParams(c.sql, c.values); !errors.Is(err, ErrBadNamedQuery) {
			t.Errorf("bindParams(%q, %v): %v, want ErrBadNamedQuery", c.sql, c.values, err)
		}
	}
}
