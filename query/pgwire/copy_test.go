package pgwire

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/query"
)

// TestCopyToStdout: COPY (query) TO STDOUT streams past the row limit in
// text and CSV, with Postgres's escapes and NULLs; COPY to a file is
// refused.
func TestCopyToStdout(t *testing.T) {
	url := startServer(t, query.Config{MaxRows: 10}, nil)
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	ctx := context.Background()
	for _, tc := range []struct{ sql, want string }{
		{"COPY (select id, msg from logs where id <= 3 order by id) TO STDOUT", "1\tmsg 1\n2\t\\N\n3\tmsg 3\n"},
		{"copy (select 'a\tb\\c' as x, 'l1\nl2' as y) to stdout", "a\\tb\\\\c\tl1\\nl2\n"},
		{"COPY (select id, msg, '' as e from logs where id <= 2 order by id) TO STDOUT WITH (FORMAT csv, HEADER)", "id,msg,e\n1,msg 1,\"\"\n2,,\"\"\n"},
		{"COPY (select 'x,y' as a, 'q\"' as b) TO STDOUT CSV", "\"x,y\",\"q\"\"\"\n"},
	} {
		var buf bytes.Buffer
		tag, err := c.PgConn().CopyTo(ctx, &buf, tc.sql)
		if err != nil || buf.String() != tc.want {
			t.Errorf("%s: %q (%v), %v; want %q", tc.sql, buf.String(), tag, err, tc.want)
		}
	}
	var buf bytes.Buffer
	tag, err := c.PgConn().CopyTo(ctx, &buf, "COPY (select i from range(100000) t(i)) TO STDOUT")
	if err != nil || tag.String() != "COPY 100000" || strings.Count(buf.String(), "\n") != 100000 || !strings.HasSuffix(buf.String(), "\n99999\n") {
		t.Fatalf("100,000 rows past a 10-row limit: %v, %v, %d lines", tag, err, strings.Count(buf.String(), "\n"))
	}
	if _, err := c.PgConn().CopyTo(ctx, &buf, "COPY logs TO '/tmp/x.csv'"); pgCode(err) != "0A000" {
		t.Fatalf("COPY to a file: %v", err)
	}
}

// TestCursors: DECLARE/FETCH/CLOSE in a transaction stream a result past
// the row limit in pieces, in every protocol; a bad query fails DECLARE;
// COMMIT closes the cursor.
func TestCursors(t *testing.T) {
	url := startServer(t, query.Config{MaxRows: 10}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			ctx := context.Background()
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "DECLARE cur CURSOR FOR select i from range(25000) t(i) order by i"); err != nil {
				t.Fatal(err)
			}
			next := int64(0)
			for {
				rows, _ := tx.Query(ctx, "FETCH FORWARD 3000 FROM cur")
				got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range got {
					if v != next {
						t.Fatalf("got %d, want %d", v, next)
					}
					next++
				}
				if len(got) < 3000 {
					break
				}
			}
			if next != 25000 {
				t.Fatalf("fetched %d rows", next)
			}
			if _, err := tx.Exec(ctx, "CLOSE cur"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "DECLARE bad CURSOR FOR select * from no_such_table"); pgCode(err) != "42P01" {
				t.Fatalf("bad cursor: %v", err)
			}
			tx.Rollback(ctx)
			tx, _ = c.Begin(ctx)
			if _, err := tx.Exec(ctx, "DECLARE c2 CURSOR FOR select 1"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, "FETCH 1 FROM c2"); pgCode(err) != "34000" {
				t.Fatalf("fetch after commit: %v", err)
			}
		})
	}
}

// TestCursorLimit: a session opens maxCursors cursors, and the next
// DECLARE fails with 54000 until one is closed.
func TestCursorLimit(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	ctx := context.Background()
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for i := range maxCursors {
		if _, err := tx.Exec(ctx, fmt.Sprintf("DECLARE c%d CURSOR FOR select %d", i, i)); err != nil {
			t.Fatalf("cursor %d: %v", i, err)
		}
	}
	if _, err := tx.Exec(ctx, "DECLARE one_more CURSOR FOR select 1"); pgCode(err) != "54000" {
		t.Fatalf("cursor %d: %v", maxCursors+1, err)
	}
	tx.Rollback(ctx)
	tx, _ = c.Begin(ctx)
	if _, err := tx.Exec(ctx, "DECLARE again CURSOR FOR select 1"); err != nil {
		t.Fatalf("after the block ended: %v", err)
	}
}
