package main

import (
	"context"
	"net"
	"os"
	"os/exec"
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
