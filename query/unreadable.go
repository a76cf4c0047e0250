package query

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// SkippedFile is a committed file a query left out because it cannot be
// read (Config.SkipUnreadable), as the answer lists it.
type SkippedFile struct {
	Table string `json:"table"`
	File  string `json:"file"`
	Error string `json:"error"`
}

// UnreadableFileError is a query that failed because one committed file of
// a table it reads cannot be read (a 0-byte or truncated Parquet file, a
// disk error). It is the server's problem, not the statement's: IsUserError
// is false for it. The table's other files stay readable.
type UnreadableFileError struct {
	Table, File string
	Err         error // DuckDB's error, as text: not unwrapped on purpose
}

func (e *UnreadableFileError) Error() string {
	return fmt.Sprintf("cannot read file %s of table %q: %v; the table's other files are readable (a query whose predicates prune this file works); "+
		"restore or delete the file, or start the server with --query-skip-unreadable to leave unreadable files out of queries (each answer then lists them in skipped_files)",
		e.File, e.Table, e.Err)
}

// fileErrorTypes are the DuckDB error types a file that cannot be read
// raises (a 0-byte file is "too small to be a Parquet file", an Invalid
// Input; a short read an IO error).
var fileErrorTypes = map[duckdb.ErrorType]bool{
	duckdb.ErrorTypeIO:            true,
	duckdb.ErrorTypeInvalidInput:  true,
	duckdb.ErrorTypeInternal:      true,
	duckdb.ErrorTypeSerialization: true,
	duckdb.ErrorTypeInvalid:       true,
}

// maxSkips bounds how many unreadable files one query discovers and
// leaves out (each costs one more run) before it fails with the next one.
const maxSkips = 16

// unreadableIn finds, in a failed statement's error, the bound file it
// names (paths: file → table), if that file exists: a missing one has been
// retired meanwhile (Query reads the manifests again), not broken.
func unreadableIn(err error, paths map[string]string) (*UnreadableFileError, bool) {
	if err == nil || len(paths) == 0 {
		return nil, false
	}
	var ue *userError
	if errors.As(err, &ue) {
		return nil, false
	}
	var de *duckdb.Error
	if errors.As(err, &de) && !fileErrorTypes[de.Type] {
		return nil, false // the statement's own fault (a cast, a bind) even if a file is named
	}
	msg := err.Error()
	// The longest match first: one path may be a prefix of another.
	cands := make([]string, 0, 4)
	for p := range paths {
		if strings.Contains(msg, p) {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil, false
	}
	slices.SortFunc(cands, func(a, b string) int { return len(b) - len(a) })
	p := cands[0]
	if _, statErr := os.Stat(p); statErr != nil {
		return nil, false
	}
	return &UnreadableFileError{Table: paths[p], File: p, Err: errors.New(firstLine(msg))}, true
}

// markUnreadable remembers f as unreadable: with SkipUnreadable, later
// queries leave it out and list it (files are immutable once committed, so
// it stays so until the process restarts or the file leaves the manifest).
func (e *Engine) markUnreadable(f *UnreadableFileError) {
	e.skipMu.Lock()
	defer e.skipMu.Unlock()
	if _, ok := e.unreadable[f.File]; ok {
		return
	}
	if e.unreadable == nil {
		e.unreadable = map[string]string{}
	}
	e.unreadable[f.File] = f.Err.Error()
	e.cfg.Log.Error("leaving an unreadable table file out of queries (--query-skip-unreadable)", "table", f.Table, "file", f.File, "err", f.Err)
}

// skipUnreadable removes the files known unreadable from paths, returning
// what is left and what was left out.
func (e *Engine) skipUnreadable(table string, paths []string) ([]string, []SkippedFile) {
	if !e.cfg.SkipUnreadable {
		return paths, nil
	}
	e.skipMu.Lock()
	defer e.skipMu.Unlock()
	if len(e.unreadable) == 0 {
		return paths, nil
	}
	var kept []string
	var skipped []SkippedFile
	for _, p := range paths {
		if why, bad := e.unreadable[p]; bad {
			skipped = append(skipped, SkippedFile{Table: table, File: p, Error: why})
			continue
		}
		kept = append(kept, p)
	}
	return kept, skipped
}
