package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// setting is one global DuckDB option applied by applySandbox.
type setting struct{ name, value string }

// sandboxSettings lists, in order, the global options New applies. The order
// matters: temp_directory and allowed_directories can no longer be changed
// once enable_external_access is false, and nothing can be changed once
// lock_configuration is true (this is what makes user SET, RESET and PRAGMA
// on options fail).
//
//   - parquet_metadata_cache=true: Parquet files are immutable here (written
//     once, renamed into place), so caching footers is safe and makes the
//     per-query bind of union_by_name views cheap.
//   - TimeZone='UTC': timestamps are stored as UTC instants (TIMESTAMP WITH
//     TIME ZONE); date_trunc, hour(), casts to DATE and the printed form then
//     agree with the dt=/hour= partitions whatever the server's local zone.
//   - allowed_directories: the only paths readable once external access is
//     off. DuckDB adds the temp directory itself.
//   - enable_external_access=false: no file outside allowed_directories (no
//     read_csv('/etc/passwd'), COPY TO /tmp, ATTACH of a file, INSTALL), and
//     no LOAD of extensions.
//   - autoinstall/autoload_known_extensions=false, allow_community_extensions
//     =false: nothing beyond the built-in parquet, json and icu.
func (e *Engine) sandboxSettings() []setting {
	dirs := append([]string(nil), e.allowed...)
	if e.cfg.TempDir != "" {
		dirs = append(dirs, e.cfg.TempDir)
	}
	return []setting{
		{"memory_limit", sqlString(e.cfg.MemoryLimit)},
		{"threads", strconv.Itoa(e.cfg.Threads)},
		{"temp_directory", sqlString(e.cfg.TempDir)},
		{"parquet_metadata_cache", "true"},
		{"TimeZone", "'UTC'"},
		{"allowed_directories", sqlStringList(dirs)},
		{"enable_external_access", "false"},
		{"autoinstall_known_extensions", "false"},
		{"autoload_known_extensions", "false"},
		{"allow_community_extensions", "false"},
		{"lock_configuration", "true"},
	}
}

// lockedSettings are read back after applySandbox to make sure the sandbox
// really is in force.
var lockedSettings = map[string]string{
	"enable_external_access":       "false",
	"autoinstall_known_extensions": "false",
	"autoload_known_extensions":    "false",
	"lock_configuration":           "true",
}

// applySandbox applies sandboxSettings on one connection (the options are
// global, so they hold for every connection of the pool) and verifies them.
func (e *Engine) applySandbox(ctx context.Context) error {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("cannot connect to duckdb: %w", err)
	}
	defer conn.Close()
	for _, s := range e.sandboxSettings() {
		stmt := "SET GLOBAL " + s.name + " = " + s.value
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("cannot apply duckdb setting %s: %w", s.name, err)
		}
	}
	for name, want := range lockedSettings {
		if err := checkSetting(ctx, conn, name, want); err != nil {
			return err
		}
	}
	return nil
}

func checkSetting(ctx context.Context, conn *sql.Conn, name, want string) error {
	var got string
	row := conn.QueryRowContext(ctx, "SELECT CAST(current_setting("+sqlString(name)+") AS VARCHAR)")
	if err := row.Scan(&got); err != nil {
		return fmt.Errorf("cannot read duckdb setting %s: %w", name, err)
	}
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("cannot apply duckdb setting %s: is %q, want %q", name, got, want)
	}
	return nil
}

// absDirs cleans dirs into absolute paths.
func absDirs(dirs []string) ([]string, error) {
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if d == "" {
			return nil, errors.New("empty directory in AllowedDirs")
		}
		a, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve allowed dir %q: %w", d, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// isAllowed reports whether dir lies inside one of the allowed directories.
// Like DuckDB's own check it is lexical: symlinks are not resolved.
func (e *Engine) isAllowed(dir string) bool {
	for _, a := range e.allowed {
		rel, err := filepath.Rel(a, dir)
		if err != nil {
			continue
		}
		if rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))) {
			return true
		}
	}
	return false
}

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// sqlStringList renders a DuckDB list literal of strings.
func sqlStringList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = sqlString(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// sqlIdent quotes s as a SQL identifier.
func sqlIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
