package query

import (
	"context"
	"strings"
	"testing"
)

// TestStream: a result far past MaxRows streams whole, in pages, in
// order; MaxStreamRows is an error at its edge, not a cut.
func TestStream(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{MaxRows: 10, MaxStreamRows: 50000})
	var n, pages int
	var last int64 = -1
	res, err := e.Stream(context.Background(), "select i from range(50000) t(i) order by i", func(p *Result) error {
		pages++
		if len(p.Columns) != 1 || p.Columns[0].Name != "i" {
			t.Fatalf("columns %+v", p.Columns)
		}
		for _, r := range p.Rows {
			if v := r[0].(int64); v != last+1 {
				t.Fatalf("row %d after %d", v, last)
			} else {
				last = v
			}
			n++
		}
		return nil
	})
	if err != nil || n != 50000 || res.RowCount != 50000 || pages < 2 {
		t.Fatalf("streamed %d rows in %d pages (%+v), %v", n, pages, res, err)
	}
	_, err = e.Stream(context.Background(), "select i from range(50001) t(i)", func(p *Result) error {
		if len(p.Rows) > 0 {
			t.Fatal("a stream past MaxStreamRows handed out rows")
		}
		return nil
	})
	if err == nil || !IsUserError(err) {
		t.Fatalf("past MaxStreamRows: %v", err)
	}
	calls := 0
	if _, err := e.Stream(context.Background(), "select 1 where false", func(p *Result) error { calls++; return nil }); err != nil || calls != 1 {
		t.Fatalf("empty stream: %d calls, %v", calls, err)
	}
}

// TestSetupSQLFailsNew: a SetupSQL statement that fails fails New, naming
// it, rather than leaving an engine without what the statement makes.
func TestSetupSQLFailsNew(t *testing.T) {
	e, err := New(Config{Threads: 1, SetupSQL: []string{"CREATE VIEW v AS SELECT * FROM no_such_table"}}, &testCatalog{})
	if err == nil {
		e.Close()
		t.Fatal("New succeeded")
	}
	if !strings.Contains(err.Error(), "cannot set up query engine: CREATE VIEW v") {
		t.Fatalf("New: %v", err)
	}
}
