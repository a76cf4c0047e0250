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
	dir := t.TempDir()
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
		{`\copy (select level, count(*) from logs group by level order by level) to '` + filepath.Join(dir, "levels.csv") + `' with csv header`, []string{"COPY 4"}},
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
	if b, err := os.ReadFile(filepath.Join(dir, "levels.csv")); err != nil || string(b) != "level,count\ndebug,5\nerror,5\ninfo,5\nwarn,5\n" {
		t.Fatalf("\\copy wrote %q, %v", b, err)
	}
}

// cachedTool is $env, or the path under ${SLUICE_CACHE:-$HOME/.cache/sluice}
// where the scripts put a test tool.
func cachedTool(env string, path ...string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	cache := os.Getenv("SLUICE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "sluice")
	}
	return filepath.Join(append([]string{cache}, path...)...)
}

// pythonClients returns the python of the venv scripts/pyenv makes
// (SQLAlchemy, psycopg, pandas): $SLUICE_PYTHON, or the cache's. Without
// it the test is skipped, unless SLUICE_REQUIRE_PY is set.
func pythonClients(t *testing.T) string {
	t.Helper()
	py := cachedTool("SLUICE_PYTHON", "py", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("SLUICE_REQUIRE_PY") != "" {
			t.Fatalf("no Python clients at %s but SLUICE_REQUIRE_PY is set (scripts/pyenv install)", py)
		}
		t.Skipf("no Python clients at %s: scripts/pyenv install makes them", py)
	}
	return py
}

// runPython runs script with arg and returns its output; failing is fatal.
func runPython(t *testing.T, py, script, arg string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", script, arg).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return out
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
	out := runPython(t, py, sqlalchemyScript, "postgresql+psycopg://"+auth.IDOf(e2e.AdminKey)+":"+e2e.AdminKey+"@"+s.PGAddr+"/sluice")
	for _, w := range []string{"tables logs,sluice_audit", "columns ts:TIMESTAMP,level:TEXT", "attrs:JSON", "rows 40 levels debug,error,info,warn", "version PostgreSQL 14.0 (sluice)"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
}

// psycopgScript reads 1,000,000 rows through a named (server-side) cursor,
// copies a query out with cursor.copy, and runs a plain query past the row
// limit, which must raise.
const psycopgScript = `
import sys, psycopg
conn = psycopg.connect(sys.argv[1])
with conn.cursor(name="big") as cur:
    cur.itersize = 5000
    cur.execute("select i, repeat('x', 900) as pad from range(1000000) t(i) order by i")
    n = s = 0
    for row in cur:
        n += 1
        s += row[0]
print("cursor", n, s)
conn.commit()
with conn.cursor() as cur:
    with cur.copy("COPY (select i, 'a,b' as t from range(3) t(i) order by i) TO STDOUT WITH (FORMAT csv)") as copy:
        data = b"".join(bytes(b) for b in copy)
print("copy", data.decode().replace("\n", "|"))
try:
    rows = conn.execute("select i from range(10004) t(i)").fetchall()
    print("cap none", len(rows))
except psycopg.Error as e:
    print("cap", e.sqlstate)
`

// TestPostgresFacePsycopg: a psycopg named cursor reads 1,000,000 rows
// (about 900 MB) past the 10,000-row limit while the server's peak RSS
// stays bounded by --query-memory plus its fixed overhead (the result
// spills to disk); cursor.copy works; a plain query past the limit raises
// 54000 instead of returning 10,000 rows.
func TestPostgresFacePsycopg(t *testing.T) {
	py := pythonClients(t)
	s := e2e.Up(t, t.TempDir(), "--query-memory", "256MB")
	out := runPython(t, py, psycopgScript, "postgresql://"+auth.IDOf(e2e.AdminKey)+":"+e2e.AdminKey+"@"+s.PGAddr+"/sluice")
	for _, w := range []string{"cursor 1000000 499999500000", `copy 0,"a,b"|1,"a,b"|2,"a,b"|`, "cap 54000"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
	const bound = 768 << 20
	if peak := s.PeakRSS(); peak <= 0 || peak > bound {
		t.Fatalf("peak RSS %d MiB, want at most %d MiB", peak>>20, bound>>20)
	} else {
		t.Logf("peak RSS %d MiB", peak>>20)
	}
}

// jdbcClasspath returns the classpath of pgjdbc and JdbcMeta that
// scripts/jdbc makes: $SLUICE_JDBC, or the cache's. Without it the test is
// skipped, unless SLUICE_REQUIRE_JDBC is set.
func jdbcClasspath(t *testing.T) string {
	t.Helper()
	dir := cachedTool("SLUICE_JDBC", "jdbc-42.7.8")
	_, err := os.Stat(filepath.Join(dir, "JdbcMeta.class"))
	if _, jerr := exec.LookPath("java"); err != nil || jerr != nil {
		if os.Getenv("SLUICE_REQUIRE_JDBC") != "" {
			t.Fatalf("no pgjdbc at %s (or no java) but SLUICE_REQUIRE_JDBC is set (scripts/jdbc install)", dir)
		}
		t.Skipf("no pgjdbc at %s (or no java): scripts/jdbc install makes it", dir)
	}
	return dir + string(os.PathListSeparator) + filepath.Join(dir, "*")
}

// TestPostgresFaceJDBC: pgjdbc 42.7's DatabaseMetaData, as JDBC tools use
// it, lists every table and every column of logs with its type, and
// getPrimaryKeys, getIndexInfo, getTypeInfo and getFunctions answer.
func TestPostgresFaceJDBC(t *testing.T) {
	cp := jdbcClasspath(t)
	s := e2e.Up(t, t.TempDir())
	putHTTP(t, s, logLines("jdbc", 30))
	s.WaitCount("select count(*) from logs", 30, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "java", "-cp", cp, "JdbcMeta", "jdbc:postgresql://"+s.PGAddr+"/sluice", auth.IDOf(e2e.AdminKey), e2e.AdminKey).CombinedOutput()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, out)
	}
	for _, w := range []string{"product PostgreSQL 14.0", "table main.logs\n", "table main.sluice_audit\n",
		"column ts timestamptz 93\n", "column level text 12\n", "column attrs json 1111\n", "column _offset int8 -5\n", "column dt date 91\n", "column hour int4 4\n",
		"primary keys 0\n", "indexes 0\n", "types some\n", "functions ok\n", "count 30 as count\n"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
}
