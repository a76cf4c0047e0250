package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestPostgresPsql is the README's psql promise: records put over HTTP are
// counted by the real psql client over the Postgres wire protocol, and a
// bad query prints psql's ERROR line and exits with status 1. scripts/test
// installs psql (Debian's postgresql-client) and sets SLUICE_REQUIRE_PSQL=1,
// so in CI this test cannot be skipped silently.
func TestPostgresPsql(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_PSQL") != "" {
			t.Fatal("psql is not installed but SLUICE_REQUIRE_PSQL is set")
		}
		t.Skip("psql not installed (apt-get install postgresql-client); scripts/test installs it")
	}
	s := e2e.Up(t, t.TempDir())
	if !strings.Contains(s.Log(), "postgres="+s.PGAddr) {
		t.Fatalf("the startup line does not name the Postgres address %s:\n%s", s.PGAddr, s.Log())
	}
	putHTTP(t, s, logLines("pg", 250))
	s.WaitCount("select count(*) from logs where attrs->>'run' = 'pg'", 250, 60*time.Second)

	host, port, _ := net.SplitHostPort(s.PGAddr)
	run := func(sql string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, psql, "-h", host, "-p", port, "-U", auth.IDOf(e2e.AdminKey), "-d", "sluice", "-At", "-c", sql)
		// No password prompt, no user's ~/.psqlrc, no PG* settings from the
		// environment that could change the connection.
		cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "PSQLRC=/dev/null", "PGSSLMODE=prefer", "PGOPTIONS=",
			"PGPASSWORD="+e2e.AdminKey) // the user is the key's ID, the password the key
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	out, errOut, err := run("select count(*) from logs")
	if err != nil || strings.TrimSpace(out) != "250" {
		t.Fatalf("psql count: %q, stderr %q, %v", out, errOut, err)
	}
	out, errOut, err = run("select level, count(*) from logs where attrs->>'run' = 'pg' group by level order by level")
	if err != nil || out != "debug|63\nerror|62\ninfo|63\nwarn|62\n" {
		t.Fatalf("psql group by: %q, stderr %q, %v", out, errOut, err)
	}

	out, errOut, err = run("select * from no_such_table")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("bad query: want exit status 1, got %v (stdout %q, stderr %q)", err, out, errOut)
	}
	if !strings.Contains(errOut, "ERROR:") || !strings.Contains(errOut, "no_such_table") {
		t.Fatalf("bad query: psql printed %q", errOut)
	}
	s.Stop()
	if !strings.Contains(s.Log(), "stopped postgres listener") {
		t.Fatalf("shutdown did not stop the Postgres listener:\n%s", s.Log())
	}
}
