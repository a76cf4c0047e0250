package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestTLSEverywhere: with --tls-cert/--tls-key the HTTP API is HTTPS only,
// the CLI works against it trusting the certificate through SSL_CERT_FILE,
// and psql connects with sslmode=require.
func TestTLSEverywhere(t *testing.T) {
	cert, key := e2e.SelfSignedCert(t)
	s := e2e.Up(t, t.TempDir(), "--tls-cert", cert, "--tls-key", key)
	if !strings.HasPrefix(s.URL(), "https://") || !strings.Contains(s.Log(), "http=https://") {
		t.Fatalf("not serving HTTPS: %s", s.URL())
	}
	if code, body := s.Get("/v1/streams", nil); code != 200 {
		t.Fatalf("GET over HTTPS: %d %s", code, body)
	}
	if resp, err := http.Get("http://" + s.HTTPAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200")
		}
	}
	cmd := exec.CommandContext(t.Context(), e2e.Binary(t), "put", "logs", "--server", s.URL())
	cmd.Stdin = strings.NewReader(`{"message":"over tls"}` + "\n")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+cert, "SLUICE_KEY="+e2e.AdminKey)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sluice put over HTTPS: %v\n%s", err, out)
	}
	s.WaitCount("select count(*) from logs where message = 'over tls'", 1, time.Minute)

	psql, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_PSQL") != "" {
			t.Fatal("psql is not installed but SLUICE_REQUIRE_PSQL is set")
		}
		t.Skip("psql not installed")
	}
	host, port, _ := net.SplitHostPort(s.PGAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, mode := range []string{"require", "verify-full"} {
		pc := exec.CommandContext(ctx, psql, "-h", host, "-p", port, "-U", auth.IDOf(e2e.AdminKey), "-d", "sluice", "-At",
			"-c", "select count(*) from logs where message = 'over tls'")
		pc.Env = append(os.Environ(), "PGPASSWORD="+e2e.AdminKey, "PGSSLMODE="+mode, "PGSSLROOTCERT="+cert,
			"PSQLRC=/dev/null", "PGCONNECT_TIMEOUT=10", "PGOPTIONS=")
		out, err := pc.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Fatalf("psql sslmode=%s: %v\n%s", mode, err, out)
		}
	}
}
