package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// psqlRunner runs psql against s as the admin key, returning stdout,
// stderr and the error; nil if psql is not installed (the test is skipped
// unless SLUICE_REQUIRE_PSQL is set).
func psqlRunner(t *testing.T, s *e2e.Server) func(args ...string) (string, string, error) {
	t.Helper()
	psql, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_PSQL") != "" {
			t.Fatal("psql is not installed but SLUICE_REQUIRE_PSQL is set")
		}
		t.Skip("psql not installed (apt-get install postgresql-client); scripts/test installs it")
	}
	host, port, _ := net.SplitHostPort(s.PGAddr)
	return func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, psql, append([]string{"-h", host, "-p", port, "-U", auth.IDOf(e2e.AdminKey), "-d", "sluice", "-X", "-v", "ON_ERROR_STOP=1"}, args...)...)
		cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "PSQLRC=/dev/null", "PGSSLMODE=prefer", "PGOPTIONS=", "PGPASSWORD="+e2e.AdminKey)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
}

// TestPostgresFacePsql: psql's describe commands (\dt, \d TABLE, \l, \dn)
// work against sluice's catalog, and \copy (query) to a file streams a
// result.
func TestPostgresFacePsql(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	run := psqlRunner(t, s)
	putHTTP(t, s, logLines("face", 20))
	s.WaitCount("select count(*) from logs where attrs->>'run' = 'face'", 20, 60*time.Second)

	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{`\dt`, []string{"main", "logs", "table", "sluice"}},
		{`\d logs`, []string{`Table "main.logs"`, "ts", "timestamp with time zone", "level", "text", "attrs", "json"}},
		{`\l`, []string{"sluice", "UTF8"}},
		{`\dn`, []string{"main", "sluice"}},
		{"select current_user, current_database(), count(*) from logs where attrs->>'run' = 'face'", []string{auth.IDOf(e2e.AdminKey), "sluice", "count", "20"}},
	} {
		out, errOut, err := run("-c", tc.cmd)
		if err != nil {
			t.Fatalf("%s: %v\nstdout %s\nstderr %s", tc.cmd, err, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in\n%s", tc.cmd, w, out)
			}
		}
	}
}

// pythonClients returns the python of the venv scripts/pyenv makes
// (SQLAlchemy, psycopg, pandas): $SLUICE_PYTHON, or the cache's. Without
// it the test is skipped, unless SLUICE_REQUIRE_PY is set.
func pythonClients(t *testing.T) string {
	t.Helper()
	py := os.Getenv("SLUICE_PYTHON")
	if py == "" {
		cache := os.Getenv("SLUICE_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "sluice")
		}
		py = filepath.Join(cache, "py", "bin", "python")
	}
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("SLUICE_REQUIRE_PY") != "" {
			t.Fatalf("no Python clients at %s but SLUICE_REQUIRE_PY is set (scripts/pyenv install)", py)
		}
		t.Skipf("no Python clients at %s: scripts/pyenv install makes them", py)
	}
	return py
}

// sqlalchemyScript connects with SQLAlchemy (psycopg v3), reads the table
// with pandas.read_sql_table, lists tables and columns with the inspector,
// and prints what it found.
const sqlalchemyScript = `
import sys, pandas, sqlalchemy
engine = sqlalchemy.create_engine(sys.argv[1])
insp = sqlalchemy.inspect(engine)
print("tables", ",".join(sorted(insp.get_table_names())))
print("columns", ",".join(c["name"] + ":" + str(c["type"]) for c in insp.get_columns("logs")))
df = pandas.read_sql_table("logs", engine)
print("rows", len(df), "levels", ",".join(sorted(set(df["level"]))))
with engine.connect() as c:
    print("version", c.execute(sqlalchemy.text("select version()")).scalar())
`

// TestPostgresFaceSQLAlchemy: SQLAlchemy 2.1 connects, its inspector lists
// the tables and their columns with their types, and pandas.read_sql_table
// reads a table whole.
func TestPostgresFaceSQLAlchemy(t *testing.T) {
	py := pythonClients(t)
	s := e2e.Up(t, t.TempDir())
	putHTTP(t, s, logLines("sqla", 40))
	s.WaitCount("select count(*) from logs", 40, 60*time.Second)
	host, port, _ := net.SplitHostPort(s.PGAddr)
	url := "postgresql+psycopg://" + auth.IDOf(e2e.AdminKey) + ":" + e2e.AdminKey + "@" + host + ":" + port + "/sluice"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", sqlalchemyScript, url).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, w := range []string{"tables logs,sluice_audit", "columns ts:TIMESTAMP,level:TEXT", "attrs:JSON", "rows 40 levels debug,error,info,warn", "version PostgreSQL 14.0 (sluice)"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
}
