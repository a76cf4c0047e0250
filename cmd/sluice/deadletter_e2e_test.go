package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// buildPoison builds the processors' test function (fails a batch holding a
// record with "poison": true while FAIL_POISON=1) as a warm wasm module.
func buildPoison(t *testing.T) string {
	return buildWarmWasm(t, "github.com/sluice-dev/sluice/processors/testdata/poison")
}

// TestDeadLetterTableCLI: a pipeline created with --dead-letter-table and
// --max-attempts 2 gives the marked record up after two attempts; `sluice
// sql` shows it as a row of the dead-letter table (created by sluice), with
// the error and the record as sent, and every other record in the main
// table. The internal pipeline shows in `pipeline list`, and asking for both
// dead-letter destinations is refused with what to do, as are records sent
// over HTTP to the internal stream.
func TestDeadLetterTableCLI(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	create := createOrders(t, s)
	_, stderr, err := e2e.Run(t, t.Context(), nil, append(create, "--dead-letter", "orders", "--dead-letter-table", "failed_orders", "--server", s.URL())...)
	if err == nil || !strings.Contains(stderr, "cannot give records up to both") || !strings.Contains(stderr, "keep one") {
		t.Fatalf("both dead-letter destinations: %v\n%s", err, stderr)
	}
	cli(t, s, append(create, "--dead-letter-table", "failed_orders")...)
	putOrders(t, s)
	s.WaitCount("select count(*) from orders", 4, 60*time.Second)
	s.WaitCount("select count(*) from failed_orders", 1, 60*time.Second)
	if n, err := s.Count("select count(*) from orders where message = 'm3'"); err != nil || n != 0 {
		t.Fatalf("the poison record is in the main table: %d %v", n, err)
	}
	out := cli(t, s, "sql", "--format", "json", `select pipeline, stream, "offset", data, error, attempts, function, function_version, failed_at is not null as dated from failed_orders`)
	var row struct {
		Pipeline, Stream, Data, Error, Function string
		FunctionVersion                         string `json:"function_version"`
		Offset                                  int64
		Attempts                                int
		Dated                                   bool
	}
	if err := json.Unmarshal([]byte(out), &row); err != nil {
		t.Fatalf("sluice sql output %q: %v", out, err)
	}
	if row.Pipeline != "orders" || row.Stream != "orders" || row.Data != poisonOrder || row.Attempts != 2 || row.Function != "poison" ||
		row.FunctionVersion != "$LATEST" || !row.Dated || !strings.Contains(row.Error, "poison pill at offset") {
		t.Fatalf("dead-letter row: %s", out)
	}
	if list := cli(t, s, "pipeline", "list", "-o", "json"); !strings.Contains(list, `"name": "_dlq_failed_orders"`) || !strings.Contains(list, `"internal": "dead_letters"`) {
		t.Fatalf("pipeline list does not show the internal pipeline:\n%s", list)
	}
	if status, body := s.Post("/v1/streams/_dlq_failed_orders/records", "application/x-ndjson", []byte(`{"forged":true}`+"\n"), nil); status != 403 || !strings.Contains(body, "internal to sluice") {
		t.Fatalf("HTTP ingest into the internal dead-letter stream: %d %s", status, body)
	}
}

// TestDeadLetterTableSurvivesCrash kills the server right after it sent a
// given-up record to the internal dead-letter stream, before it recorded
// that: the restarted server reads the batch again, gives it up again and
// sends it again, and the dead-letter table still holds it once.
func TestDeadLetterTableSurvivesCrash(t *testing.T) {
	data := t.TempDir()
	s := e2e.UpEnv(t, data, []string{"SLUICE_FAILPOINT=processors.after-dead-letter"})
	cli(t, s, append(createOrders(t, s), "--dead-letter-table", "failed_orders")...)
	putOrders(t, s)
	if !s.Exited(60 * time.Second) {
		t.Fatal("the server did not reach the failpoint after sending the dead letter")
	}
	s = e2e.Up(t, data)
	s.WaitCount("select count(*) from orders", 4, 60*time.Second)
	s.WaitCount("select count(*) from failed_orders", 1, 60*time.Second)
	e2e.WaitFor(t, 30*time.Second, "the dead letter sent again", func() error {
		if n, err := s.Count("select count(*) from failed_orders"); err != nil || n != 1 {
			return fmt.Errorf("%d rows (%v)", n, err)
		}
		var st struct {
			Partitions []struct {
				Committed int64
				EndOffset int64 `json:"end_offset"`
			}
		}
		if _, body := s.Get("/v1/pipelines/_dlq_failed_orders/status", &st); len(st.Partitions) != 1 {
			return fmt.Errorf("status: %s", body)
		}
		if p := st.Partitions[0]; p.EndOffset != 2 || p.Committed != 2 {
			return fmt.Errorf("internal pipeline at %d of %d, want both dead letters (the first and the one sent again) read", p.Committed, p.EndOffset)
		}
		return nil
	})
	if n, err := s.Count("select count(*) from failed_orders"); err != nil || n != 1 {
		t.Fatalf("dead-letter rows after the resend: %d %v", n, err)
	}
}

const poisonOrder = `{"message":"m3","poison":true,"n":3}`

// createOrders deploys the poison function and creates stream and table
// orders; it returns the `pipeline create` arguments of a pipeline between
// them that gives a record up after two attempts, to which the caller adds
// the dead-letter destination.
func createOrders(t *testing.T, s *e2e.Server) []string {
	t.Helper()
	cli(t, s, "fn", "deploy", "poison", "--runtime", "wasm", "--code", buildPoison(t), "--timeout", "10s", "--env", "FAIL_POISON=1")
	cli(t, s, "stream", "create", "orders", "--partitions", "2")
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"columns":[{"name":"message","type":"string"},{"name":"src_offset","type":"int64","not_null":true}]}`), 0o644)
	cli(t, s, "table", "create", "orders", "--schema", schema, "--file-age", "1s")
	return []string{"pipeline", "create", "orders", "--stream", "orders", "--function", "poison", "--table", "orders",
		"--batch-size", "1", "--max-attempts", "2"}
}

// putOrders sends five orders, the fourth one poison.
func putOrders(t *testing.T, s *e2e.Server) {
	t.Helper()
	lines := `{"message":"m0"}` + "\n" + `{"message":"m1"}` + "\n" + `{"message":"m2"}` + "\n" + poisonOrder + "\n" + `{"message":"m4"}` + "\n"
	if _, stderr, err := e2e.Run(t, t.Context(), strings.NewReader(lines), "put", "orders", "-", "--server", s.URL()); err != nil {
		t.Fatalf("sluice put: %v\n%s", err, stderr)
	}
}
