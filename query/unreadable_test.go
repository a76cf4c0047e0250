package query

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnreadableFileStaysLocal: a committed file that cannot be read (0
// bytes) fails only the queries that read it, with an error naming it and
// what to do, which is the server's problem (not a 400); a query that
// prunes it works; so for half a file. With SkipUnreadable the queries leave it out and list
// it in every answer that would have read it.
func TestUnreadableFileStaysLocal(t *testing.T) {
	for _, c := range []struct {
		skip      bool
		truncated bool // half a file, else 0 bytes
	}{{false, false}, {true, false}, {false, true}, {true, true}} {
		skip := c.skip
		e, _, dir := newTestEngine(t, Config{SkipUnreadable: skip})
		writeParquet(t, filepath.Join(dir, "dt=2026-11-22", "hour=03", "logs-0-0-9.parquet"), logRows(0, 10))
		bad := filepath.Join(dir, "dt=2026-11-22", "hour=04", "logs-0-10-19.parquet")
		writeParquet(t, bad, logRows(10, 10))
		data, err := os.ReadFile(bad)
		if err != nil {
			t.Fatal(err)
		}
		keep := 0
		if c.truncated {
			keep = len(data) / 2
		}
		if err := os.WriteFile(bad, data[:keep], 0o644); err != nil {
			t.Fatal(err)
		}
		if got := scalar(t, e, "select count(*) from logs where hour = 3"); got != int64(10) {
			t.Fatalf("skip=%v: the readable hour counts %v", skip, got)
		}
		for range 2 { // the second time from what the first learnt
			res, err := e.Query(context.Background(), "select count(*) from logs")
			if !skip {
				var ue *UnreadableFileError
				if !errors.As(err, &ue) || ue.File != bad || ue.Table != "logs" || IsUserError(err) || statusFor(err) != 500 ||
					!strings.Contains(publicMessage(err), "--query-skip-unreadable") {
					t.Fatalf("count(*) over a 0-byte file: %v (user error: %v)", err, IsUserError(err))
				}
				continue
			}
			if err != nil {
				t.Fatalf("skip: %v", err)
			}
			if res.Rows[0][0] != int64(10) || len(res.SkippedFiles) != 1 || res.SkippedFiles[0].File != bad || res.SkippedFiles[0].Error == "" {
				t.Fatalf("skip: %v rows, skipped %+v", res.Rows, res.SkippedFiles)
			}
		}
		if res := mustQuery(t, e, "select count(*) from logs where hour = 3"); len(res.SkippedFiles) != 0 {
			t.Fatalf("skip=%v: a query that prunes the file lists it: %+v", skip, res.SkippedFiles)
		}
	}
}
