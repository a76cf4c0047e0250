package pgwire

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/query"
)

type fixedCatalog []query.Table

func (c fixedCatalog) Tables() []query.Table { return c }

// Files lists the table's Parquet files under its directory (a test's
// stand-in for the manifests).
func (c fixedCatalog) Files(ctx context.Context, table string, keep func(query.FileStats) bool) (query.Files, error) {
	var out query.Files
	for _, t := range c {
		if t.Name != table {
			continue
		}
		err := filepath.WalkDir(t.Dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
				out.Paths = append(out.Paths, p)
			}
			return err
		})
		return out, err
	}
	return out, nil
}

// logsFixture is the "logs" table the tests query: ids 1..100, with id 1
// holding known values of every type the tests check and id 2 NULLs.
const logsFixture = `
SELECT i::BIGINT AS id,
       CASE WHEN i = 2 THEN NULL ELSE 'msg ' || i END AS msg,
       i % 2 = 1 AS odd,
       i / 4 AS score,
       TIMESTAMPTZ '2026-11-22 03:04:05.123456+00' + to_seconds(i - 1) AS ts,
       ('{"i":' || i || ',"tag":"t<' || i || '>"}')::JSON AS payload,
       (i * 1.5)::DECIMAL(18,3) AS amount,
       [i, i + 1]::INTEGER[] AS pair
FROM range(1, 101) t(i)`

// logsColumns are logsFixture's columns, as the catalog declares them.
var logsColumns = []query.Column{{Name: "id", Type: "BIGINT"}, {Name: "msg", Type: "VARCHAR"}, {Name: "odd", Type: "BOOLEAN"},
	{Name: "score", Type: "DOUBLE"}, {Name: "ts", Type: "TIMESTAMP WITH TIME ZONE"}, {Name: "payload", Type: "JSON"},
	{Name: "amount", Type: "DECIMAL(18,3)"}, {Name: "pair", Type: "INTEGER[]"}}

// startServer serves an engine over a logs table on 127.0.0.1:0 and
// returns the connection string.
func startServer(t testing.TB, cfg query.Config, srv *Server) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		t.Fatal(err)
	}
	w := sql.OpenDB(connector)
	defer w.Close()
	if _, err := w.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec("COPY (" + logsFixture + ") TO '" + filepath.Join(dir, "part-0.parquet") + "' (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	cfg.AllowedDirs = []string{root}
	cfg.Threads = 2
	cfg.SetupSQL = CatalogSQL()
	e, err := query.New(cfg, fixedCatalog{{Name: "logs", Dir: dir, Columns: logsColumns}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv == nil {
		srv = &Server{}
	}
	// A test may give an Engine that wraps the real one.
	if w, ok := srv.Engine.(engineWrapper); ok {
		w.wrap(e)
	} else {
		srv.Engine = e
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		e.Close()
	})
	return fmt.Sprintf("postgres://analyst@%s/sluice?sslmode=disable", ln.Addr())
}

var modes = map[string]pgx.QueryExecMode{
	"extended": pgx.QueryExecModeCacheStatement,
	"describe": pgx.QueryExecModeDescribeExec,
	"simple":   pgx.QueryExecModeSimpleProtocol,
}

func connect(t *testing.T, url string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestTypesRoundTrip(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			ctx := context.Background()
			var (
				id      int64
				msg     string
				odd     bool
				score   float64
				ts      time.Time
				payload map[string]any
				amount  pgtype.Numeric
				pair    string
			)
			err := c.QueryRow(ctx, "select id, msg, odd, score, ts, payload, amount, pair from logs where id = 1").
				Scan(&id, &msg, &odd, &score, &ts, &payload, &amount, &pair)
			if err != nil {
				t.Fatal(err)
			}
			wantTS := time.Date(2026, 11, 22, 3, 4, 5, 123456000, time.UTC)
			if id != 1 || msg != "msg 1" || !odd || score != 0.25 || !ts.Equal(wantTS) || pair != "[1,2]" {
				t.Fatalf("got id=%d msg=%q odd=%v score=%v ts=%v pair=%q", id, msg, odd, score, ts, pair)
			}
			if payload["i"] != float64(1) || payload["tag"] != "t<1>" {
				t.Fatalf("payload = %v", payload)
			}
			if f, _ := amount.Float64Value(); f.Float64 != 1.5 || amount.Exp != -3 {
				t.Fatalf("amount = %+v", amount)
			}

			// NULL, int4, float4, date, interval, uuid, bytea, text of every kind.
			var (
				null     *string
				small    int32
				f4       float32
				day      time.Time
				iv       pgtype.Interval
				uuid     pgtype.UUID
				blob     []byte
				big      pgtype.Numeric
				bigfloat float64
				nan      float64
			)
			err = c.QueryRow(ctx, `select msg, 7::INTEGER, 0.1::FLOAT, DATE '2026-01-31', INTERVAL '1 year 2 months 3 days 04:05:06.5',
				'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID, '\xDE\xAD'::BLOB, 170141183460469231731687303715884105727::HUGEINT,
				1e300::DOUBLE, 'NaN'::DOUBLE from logs where id = 2`).
				Scan(&null, &small, &f4, &day, &iv, &uuid, &blob, &big, &bigfloat, &nan)
			if err != nil {
				t.Fatal(err)
			}
			if null != nil || small != 7 || f4 != 0.1 || !day.Equal(time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)) {
				t.Fatalf("got null=%v small=%v f4=%v day=%v", null, small, f4, day)
			}
			if iv.Months != 14 || iv.Days != 3 || iv.Microseconds != 14706500000 {
				t.Fatalf("interval = %+v", iv)
			}
			if fmt.Sprintf("%x", uuid.Bytes) != "6ba7b8109dad11d180b400c04fd430c8" || string(blob) != "\xde\xad" {
				t.Fatalf("uuid=%x blob=%x", uuid.Bytes, blob)
			}
			if big.Int.String() != "170141183460469231731687303715884105727" || bigfloat != 1e300 || nan == nan {
				t.Fatalf("big=%v bigfloat=%v nan=%v", big.Int, bigfloat, nan)
			}

			// Many rows, and an aggregate.
			rows, err := c.Query(ctx, "select id from logs order by id")
			if err != nil {
				t.Fatal(err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil || len(ids) != 100 || ids[99] != 100 {
				t.Fatalf("ids: %v (%d rows)", err, len(ids))
			}
			var n int64
			if err := c.QueryRow(ctx, "select count(*) from logs").Scan(&n); err != nil || n != 100 {
				t.Fatalf("count = %d, %v", n, err)
			}
		})
	}
}

func TestTextRepresentation(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	// A raw text-format read shows the exact text psql prints.
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	rr := c.PgConn().ExecParams(context.Background(),
		`select ts, odd, 1e20::DOUBLE, 123456.5::DOUBLE, 1234567::FLOAT, {'a': 1}, DATE '2026-01-02', TIMESTAMP '2026-01-02 03:04:05' from logs where id = 2`,
		nil, nil, nil, nil)
	res := rr.Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var got []string
	for _, v := range res.Rows[0] {
		got = append(got, string(v))
	}
	want := []string{"2026-11-22 03:04:06.123456+00", "f", "1e+20", "123456.5", "1.234567e+06", `{"a":1}`, "2026-01-02", "2026-01-02 03:04:05"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("text values\n got %q\nwant %q", got, want)
	}
	oids := []uint32{1184, 16, 701, 701, 700, 25, 1082, 1114}
	for i, f := range res.FieldDescriptions {
		if f.DataTypeOID != oids[i] {
			t.Errorf("column %d: OID %d, want %d", i, f.DataTypeOID, oids[i])
		}
	}
	if string(res.CommandTag.String()) != "SELECT 1" {
		t.Errorf("command tag %q", res.CommandTag)
	}
}

func TestErrors(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			ctx := context.Background()
			for _, tc := range []struct{ sql, code, msg string }{
				{"selec 1", "42601", "syntax error"},
				{"select * from nope", "42P01", "nope"},
				{"select nope from logs", "42000", "nope"},
				{"copy logs to '/tmp/x.csv'", "0A000", "TO STDOUT"},
				{"set threads = 1", "0A000", "SET/RESET statements are not allowed"},
				{"create table x (i int)", "0A000", "not allowed"},
				{"select 1; select 2", "0A000", "one SQL statement"},
				{"select 'abc'::int", "22P02", "abc"},
			} {
				var x any
				err := c.QueryRow(ctx, tc.sql).Scan(&x)
				if pgCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("%q: got %v (code %q), want code %s with %q", tc.sql, err, pgCode(err), tc.code, tc.msg)
				}
				// The session goes on.
				var n int64
				if err := c.QueryRow(ctx, "select count(*) from logs where id <= 3").Scan(&n); err != nil || n != 3 {
					t.Fatalf("after %q: %d, %v", tc.sql, n, err)
				}
			}
		})
	}
}

func TestParameters(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			ctx := context.Background()
			var n int64
			if err := c.QueryRow(ctx, "select count(*) from logs where id > $1 and msg <> $2", 90, "msg 95").Scan(&n); err != nil || n != 9 {
				t.Fatalf("count = %d, %v", n, err)
			}
			since := time.Date(2026, 11, 22, 3, 5, 0, 0, time.UTC)
			if err := c.QueryRow(ctx, "select count(*) from logs where ts >= $1 and odd = $2", since, true).Scan(&n); err != nil || n != 22 {
				t.Fatalf("count by time = %d, %v", n, err)
			}
			// Values that look like SQL stay values.
			for _, s := range []string{"it's", "x'); select 1; --", `$1 \' "q" $$d$$`, "日本"} {
				var got string
				if err := c.QueryRow(ctx, "select $1::text || '' /* $2 */ -- $3\n", s).Scan(&got); err != nil || got != s {
					t.Fatalf("%q came back as %q, %v", s, got, err)
				}
			}
			var sum int64
			if err := c.QueryRow(ctx, "select $1::bigint + $2::bigint", int64(1)<<40, -5).Scan(&sum); err != nil || sum != 1<<40-5 {
				t.Fatalf("sum = %d, %v", sum, err)
			}
			var isNull bool
			if err := c.QueryRow(ctx, "select $1::text is null", nil).Scan(&isNull); err != nil || !isNull {
				t.Fatalf("null param: %v, %v", isNull, err)
			}
		})
	}
}

func TestTransactionsAndSet(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	c := connect(t, url, pgx.QueryExecModeCacheStatement)
	ctx := context.Background()
	if _, err := c.Exec(ctx, "SET application_name = 'report'"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SET memory_limit = '10GB'"); pgCode(err) == "" {
		t.Fatalf("SET memory_limit: %v", err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.PgConn().TxStatus() != 'T' {
		t.Fatalf("status %c after BEGIN", c.PgConn().TxStatus())
	}
	var n int64
	if err := tx.QueryRow(ctx, "select count(*) from logs").Scan(&n); err != nil || n != 100 {
		t.Fatalf("count in tx: %d, %v", n, err)
	}
	if _, err := tx.Exec(ctx, "select * from nope"); pgCode(err) != "42P01" {
		t.Fatalf("error in tx: %v", err)
	}
	if _, err := tx.Exec(ctx, "select 1"); pgCode(err) != "25P02" {
		t.Fatalf("query in failed tx: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "select count(*) from logs").Scan(&n); err != nil || n != 100 {
		t.Fatalf("count after rollback: %d, %v", n, err)
	}
}

func TestCancelRequest(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	c := connect(t, url, pgx.QueryExecModeCacheStatement)
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "select sum(i) from range(1000000000000) t(i)")
		errc <- err
	}()
	// Cancel until the query ends: a cancel that arrives before the query
	// starts is a no-op, as in Postgres.
	start := time.Now()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-errc:
			if pgCode(err) != "57014" || !strings.Contains(err.Error(), "user request") {
				t.Fatalf("canceled query: %v", err)
			}
			t.Logf("canceled after %v", time.Since(start))
			done = true
		case <-tick.C:
			if time.Since(start) > 10*time.Second {
				t.Fatal("query not canceled within 10s")
			}
			if err := c.PgConn().CancelRequest(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	var n int64
	if err := c.QueryRow(ctx, "select count(*) from logs").Scan(&n); err != nil || n != 100 {
		t.Fatalf("after cancel: %d, %v", n, err)
	}
}

func TestTimeout(t *testing.T) {
	url := startServer(t, query.Config{Timeout: 300 * time.Millisecond}, nil)
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	_, err := c.Exec(context.Background(), "select sum(i) from range(1000000000000) t(i)")
	if pgCode(err) != "57014" || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("timed out query: %v", err)
	}
}

// TestTruncatedResultFails: a result past the engine's row limit is an
// ERROR the driver raises (54000), in every protocol, never a short result
// with a notice drivers drop; a result that fits is whole.
func TestTruncatedResultFails(t *testing.T) {
	url := startServer(t, query.Config{MaxRows: 10}, nil)
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			c := connect(t, url, mode)
			rows, _ := c.Query(context.Background(), "select id from logs")
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if pgCode(err) != "54000" || !strings.Contains(err.Error(), "10-row limit") || len(ids) != 0 {
				t.Fatalf("%d rows, %v", len(ids), err)
			}
			rows, _ = c.Query(context.Background(), "select id from logs order by id limit 10")
			if ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(ids) != 10 {
				t.Fatalf("at the limit: %d rows, %v", len(ids), err)
			}
		})
	}
}

func TestMaxConns(t *testing.T) {
	url := startServer(t, query.Config{}, &Server{MaxConns: 1})
	c1 := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	_, err := pgx.Connect(context.Background(), url)
	if pgCode(err) != "53300" {
		t.Fatalf("second connection: %v", err)
	}
	c1.Close(context.Background())
	// The slot is freed when the session ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2, err := pgx.Connect(context.Background(), url)
		if err == nil {
			c2.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBrokenClientDoesNotAffectOthers(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	c := connect(t, url, pgx.QueryExecModeCacheStatement)
	addr := strings.TrimSuffix(strings.SplitN(url, "@", 2)[1], "/sluice?sslmode=disable")
	for _, junk := range [][]byte{
		{0, 0, 0, 8, 4, 210, 22, 47},        // SSLRequest, then hang up
		{0, 0, 0, 3},                        // a bad length
		[]byte("GET / HTTP/1.1\r\n\r\n"),    // not Postgres at all
		{0, 0, 0, 8, 0, 3, 0, 0, 'Q', 0, 0}, // startup cut short
	} {
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		raw.Write(junk)
		raw.Close()
	}
	var n int64
	if err := c.QueryRow(context.Background(), "select count(*) from logs").Scan(&n); err != nil || n != 100 {
		t.Fatalf("count: %d, %v", n, err)
	}
}

func TestEmptyQuery(t *testing.T) {
	url := startServer(t, query.Config{}, nil)
	c := connect(t, url, pgx.QueryExecModeSimpleProtocol)
	for _, q := range []string{"", " ; ", "-- nothing\n"} {
		res := c.PgConn().Exec(context.Background(), q)
		if _, err := res.ReadAll(); err != nil {
			t.Fatalf("%q: %v", q, err)
		}
	}
}

// TestIdleTimeout: a session that sends nothing between queries for
// IdleTimeout is ended with FATAL 57P05 and frees its slot, so idle clients
// cannot lock every other one out.
func TestIdleTimeout(t *testing.T) {
	url := startServer(t, query.Config{}, &Server{MaxConns: 1, IdleTimeout: 300 * time.Millisecond})
	r := rawConnect(t, url)
	r.exchange("a query", "Row(?column?:23/0) Data(31) Complete(SELECT 1) ReadyForQuery(I)", &pgproto3.Query{String: "select 1"})
	// Then nothing: the server ends the session (the raw connection's
	// deadline is 30 s).
	msg, err := r.fe.Receive()
	e, ok := msg.(*pgproto3.ErrorResponse)
	if err != nil || !ok || e.Code != "57P05" || e.Severity != "FATAL" {
		t.Fatalf("idle session got %T %+v, %v", msg, msg, err)
	}
	c2 := connect(t, url, pgx.QueryExecModeSimpleProtocol) // the slot is free again
	c2.Close(context.Background())
}
