package query

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// pruneFile is one file of the pruning tests: rows of table at the given
// times, in the dt/hour partition of each time, in partition region (nil:
// NULL). bare: the manifest knows nothing of it; noStats: no min/max time.
type pruneFile struct {
	name, table     string
	region          *string
	times           []time.Time
	bare, noStats   bool
	escapedRegion   string // the region as written in the path, if escaped
	stats           FileStats
	startRow, nRows int
}

func pruneAt(day, h, m, s, us int) time.Time {
	return time.Date(2026, 11, day, h, m, s, us*1000, time.UTC)
}

func pruneStr(s string) *string { return &s }

func pruneFiles(now time.Time) []*pruneFile {
	eu, us, ab := pruneStr("eu"), pruneStr("us"), pruneStr("a/b")
	now = now.Truncate(time.Microsecond)
	files := []*pruneFile{
		{name: "h09", table: "logs", region: eu, times: []time.Time{pruneAt(20, 9, 0, 0, 0), pruneAt(20, 9, 30, 0, 0), pruneAt(20, 9, 59, 59, 999999)}},
		{name: "h10", table: "logs", region: eu, times: []time.Time{pruneAt(20, 10, 0, 0, 0), pruneAt(20, 10, 59, 59, 999999)}},
		{name: "h10us", table: "logs", region: us, times: []time.Time{pruneAt(20, 10, 15, 0, 0), pruneAt(20, 10, 45, 0, 0)}},
		{name: "h11", table: "logs", region: eu, times: []time.Time{pruneAt(20, 11, 0, 0, 0), pruneAt(20, 11, 30, 0, 0)}},
		{name: "h11null", table: "logs", times: []time.Time{pruneAt(20, 11, 40, 0, 0)}},
		{name: "prev", table: "logs", region: eu, times: []time.Time{pruneAt(19, 23, 59, 59, 999999)}},
		{name: "next", table: "logs", region: eu, times: []time.Time{pruneAt(21, 0, 0, 0, 0)}},
		{name: "nostats", table: "logs", region: eu, noStats: true, times: []time.Time{pruneAt(20, 10, 30, 0, 0)}},
		{name: "escaped", table: "logs", region: ab, escapedRegion: "a%2Fb", times: []time.Time{pruneAt(20, 12, 5, 0, 0)}},
		{name: "bare", table: "logs", region: eu, bare: true, times: []time.Time{pruneAt(20, 10, 20, 0, 0)}},
		{name: "recent", table: "events", region: eu, times: []time.Time{now.Add(-10 * time.Minute)}},
		{name: "old", table: "events", region: eu, times: []time.Time{now.Add(-3 * time.Hour)}},
		{name: "ancient", table: "events", region: eu, times: []time.Time{now.Add(-240 * time.Hour)}},
	}
	for _, f := range files {
		if f.bare {
			continue
		}
		t0 := f.times[0]
		f.stats.Part = map[string]string{"dt": t0.Format("2006-01-02"), "hour": t0.Format("15"), "region": hiveNull}
		if f.region != nil {
			f.stats.Part["region"] = *f.region
		}
		if f.escapedRegion != "" {
			f.stats.Part["region"] = f.escapedRegion
		}
		if !f.noStats {
			lo, hi := slices.MinFunc(f.times, time.Time.Compare), slices.MaxFunc(f.times, time.Time.Compare)
			f.stats.MinTime, f.stats.MaxTime = &lo, &hi
		}
	}
	return files
}

var pruneTables = map[string]TableInfo{
	"logs":   {TimeColumn: "ts", PartitionColumns: map[string]string{"dt": "DATE", "hour": "INTEGER", "region": "VARCHAR"}},
	"events": {TimeColumn: "ts", PartitionColumns: map[string]string{"dt": "DATE", "hour": "INTEGER", "region": "VARCHAR"}},
}

// pruneDB is a DuckDB connection with tables logs_all and events_all
// holding the rows of pruneFiles, and views logs and events over them
// (see setKept).
type pruneDB struct {
	conn  *sql.Conn
	files []*pruneFile
}

func newPruneDB(t testing.TB) *pruneDB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p := &pruneDB{conn: conn, files: pruneFiles(time.Now())}
	p.exec(t, "SET TimeZone = 'UTC'")
	for _, tbl := range []string{"logs", "events"} {
		p.exec(t, "CREATE TABLE "+tbl+"_all (file VARCHAR, ts TIMESTAMPTZ, dt DATE, hour INTEGER, region VARCHAR, level VARCHAR, id INTEGER)")
	}
	p.exec(t, "CREATE TABLE other (id INTEGER, since TIMESTAMPTZ)")
	p.exec(t, "INSERT INTO other VALUES (1, TIMESTAMPTZ '2026-11-20 10:30:00+00'), (4, NULL)")
	id := 0
	for _, f := range p.files {
		for _, ts := range f.times {
			id++
			level := []string{"info", "error"}[id%2]
			p.exec(t, "INSERT INTO "+f.table+"_all SELECT ?, t, t::DATE, hour(t), ?, ?, ? FROM (SELECT CAST(? AS TIMESTAMPTZ) AS t)",
				f.name, f.region, level, id, ts.Format("2006-01-02 15:04:05.999999Z07:00"))
		}
	}
	p.setKept(t, nil)
	return p
}

func (p *pruneDB) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := p.conn.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// setKept makes the views logs and events show only the rows of files
// keep accepts (nil: all).
func (p *pruneDB) setKept(t testing.TB, keep func(*pruneFile) bool) {
	for _, tbl := range []string{"logs", "events"} {
		names := []string{"NULL"}
		for _, f := range p.files {
			if f.table == tbl && (keep == nil || keep(f)) {
				names = append(names, "'"+f.name+"'")
			}
		}
		p.exec(t, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT * EXCLUDE (file) FROM %s_all WHERE file IN (%s)", tbl, tbl, strings.Join(names, ", ")))
	}
}

// result runs q and returns its rows, sorted, or its error.
func (p *pruneDB) result(q string) (string, error) {
	rows, err := p.conn.QueryContext(context.Background(), q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		out = append(out, fmt.Sprint(vals...))
	}
	slices.Sort(out)
	return strings.Join(out, "\n"), rows.Err()
}

// dropped returns the names of the files the filters of q drop.
func (p *pruneDB) dropped(t testing.TB, q string) ([]string, map[string]Filter) {
	t.Helper()
	filters, err := filtersFor(context.Background(), p.conn, q, pruneTables)
	if err != nil {
		t.Fatalf("filtersFor(%q): %v", q, err)
	}
	var out []string
	for _, f := range p.files {
		if !filters[f.table].Keep(f.stats) {
			out = append(out, f.name)
		}
	}
	return out, filters
}

// checkSound verifies that q answers the same over all files and over
// the files its filters keep.
func (p *pruneDB) checkSound(t testing.TB, q string, filters map[string]Filter) {
	t.Helper()
	p.setKept(t, nil)
	want, wantErr := p.result(q)
	p.setKept(t, func(f *pruneFile) bool { return filters[f.table].Keep(f.stats) })
	got, gotErr := p.result(q)
	p.setKept(t, nil)
	if (wantErr != nil) != (gotErr != nil) || want != got {
		t.Errorf("%s: pruning changed the answer:\nall files: %v %v\npruned:    %v %v", q, want, wantErr, got, gotErr)
	}
}

const notDay20 = "prev next"

var pruneCases = []struct {
	sql, drop string
	random    bool // the answer is not deterministic: do not compare
}{
	{sql: "select * from logs where ts > now() - interval 1 hour or level = 'error'"},
	{sql: "select * from logs l where l.ts >= timestamp '2026-11-20 10:00' and l.ts < timestamp '2026-11-20 11:00'", drop: "h09 h11 h11null escaped " + notDay20},
	{sql: "select count(*) from logs where dt = '2026-11-20' and hour = 10", drop: "h09 h11 h11null escaped " + notDay20},
	{sql: "with x as (select * from logs where ts > timestamp '2026-11-20 11:00') select * from x union all select * from logs"},
	{sql: "with x as (select * from logs where ts > timestamp '2026-11-20 11:00') select * from x union all select * from logs where hour = 9", drop: "h10 h10us nostats prev"},
	{sql: "select * from logs where ts between timestamp '2026-11-20 09:59:59.999999' and '2026-11-20 10:00:00'", drop: "h10us h11 h11null escaped " + notDay20},
	{sql: "select * from logs where hour in (9, 10)", drop: "h11 h11null escaped " + notDay20},
	{sql: "select * from logs where ts > (select max(ts) from logs)"},
	{sql: "select * from logs join other using (id) where logs.ts > timestamp '2026-11-20 11:00'"},
	{sql: "select * from events where ts > now() - interval 1 hour", drop: "old ancient"},
	{sql: "select * from events where ts > current_timestamp - interval 1 hour", drop: "old ancient"},
	{sql: "select * from events where ts < now() - interval 1 hour"},
	{sql: "select * from events where dt >= current_date - 1", drop: "ancient"},
	{sql: "select * from events where ts >= date_trunc('hour', now()) - interval 3 day", drop: "ancient"},
	{sql: "select * from events where ts between now() - interval 5 hour and now() - interval 1 hour", drop: "ancient"},
	{sql: "select * from events where ts > timestamp '2000-01-01' - (now() - timestamp '2000-01-01')"},
	{sql: "select (select count(*) from events where dt >= current_date) from (select date '2000-01-01' as current_date)"},
	{sql: "select * from logs where dt = current_date", drop: "h09 h10 h10us h11 h11null nostats escaped " + notDay20},
	{sql: "select * from logs where region = 'us'", drop: "h09 h10 h11 h11null nostats escaped " + notDay20},
	{sql: "select * from logs where region = 'a/b'", drop: "h09 h10 h10us h11 h11null nostats " + notDay20},
	{sql: "select * from logs where region > 'f'", drop: "h09 h10 h11 h11null nostats escaped " + notDay20},
	{sql: "select * from logs where region in ('eu', 'a/b') and hour = 12", drop: "h09 h10 h10us h11 h11null nostats " + notDay20},
	{sql: "select * from logs where region is null"},
	{sql: "select * from logs where not (ts < timestamp '2026-11-20 11:00')", drop: "h09 h10 h10us nostats prev"}, // the parser makes it >=
	{sql: "SELECT * FROM \"LOGS\" WHERE \"Ts\" >= TIMESTAMPTZ '2026-11-20 11:00:00+00' ORDER BY ts LIMIT 5", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where \"hour\" = 11 and region = 'eu'", drop: "h09 h10 h10us h11null nostats escaped " + notDay20},
	{sql: "select count(*) from (select * from (select * from logs where dt = date '2026-11-19') t) u", drop: "h09 h10 h10us h11 h11null nostats escaped next"},
	{sql: "select region, count(*) from logs where ts >= '2026-11-20 11:00' group by region order by region", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where ts > timestamp '2026-11-20 11:00' and (region = 'eu' or hour = 9)", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where date_trunc('hour', ts) = timestamp '2026-11-20 10:00'"},
	{sql: "select * from logs where cast(ts as date) = date '2026-11-20'"},
	{sql: "select * from logs where ts = timestamp '2026-11-20 10:00:00'", drop: "h09 h10us h11 h11null escaped " + notDay20},
	{sql: "select * from logs where ts in (timestamp '2026-11-20 09:00', timestamp '2026-11-21 00:00')", drop: "h10 h10us h11 h11null nostats escaped prev"},
	{sql: "select * from logs where ts >= '2026-11-20 11:00' union all select * from logs where ts < '2026-11-20 09:30'", drop: "h10 h10us nostats"},
	{sql: "select * from logs where hour > 10 and hour <= 11", drop: "h09 h10 h10us nostats escaped " + notDay20},
	{sql: "with r as (select * from logs where dt = '2026-11-21') select count(*) from r", drop: "h09 h10 h10us h11 h11null nostats escaped prev"},
	{sql: "select * from other o where exists (select 1 from logs where logs.id = o.id and ts >= '2026-11-20 11:00')", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where ts >= 'not a time'"},
	{sql: "explain select * from logs where ts > timestamp '2026-11-20 11:00'", random: true},
	{sql: "describe logs"},
	{sql: "summarize logs", random: true},
	{sql: "select * from logs where ts >= '2026-11-20 11:00' union all from query_table('logs')"},
	{sql: "select * from logs where ts > timestamp '2026-11-20 11:00' - interval 1 hour", drop: "h09 prev"},
	{sql: "select * from logs where timestamp '2026-11-20 11:00' <= ts", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs t where logs.ts > timestamp '2026-11-20 11:00'"},
	{sql: "select * from logs where ts >= timestamp_ns '2026-11-20 10:59:59.9999995'", drop: "h09 h10us prev"},
	{sql: "select * from logs where ts < timestamp_ns '2026-11-20 10:00:00.0000005'", drop: "h10us h11 h11null escaped next"},
	{sql: "select * from logs where hour = '10'", drop: "h09 h11 h11null escaped " + notDay20},
	{sql: "select * from logs where dt between '2026-11-20' and '2026-11-20' and hour >= 11", drop: "h09 h10 h10us nostats " + notDay20},
	{sql: "select * from logs where dt < timestamp '2026-11-20 10:00'", drop: "next"},
	{sql: "select * from logs where dt > timestamp '2026-11-20 10:00'", drop: "prev"},
	{sql: "select * from logs where ts >= strptime('20/11/2026 11', '%d/%m/%Y %H')", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where ts < make_timestamp(2026, 11, 20, 10, 0, 0)", drop: "h10 h10us h11 h11null nostats escaped next"},
	{sql: "select * from logs where ts > now() - interval 1 hour and ts < now()", drop: "h09 h10 h10us h11 h11null nostats escaped " + notDay20},
	{sql: "select * from logs where ts > timestamp '2026-11-20 11:00' or ts < timestamp '2026-11-20 09:30'"},
	{sql: "select * from logs where hour in (select 10)"},
	{sql: "from logs where ts >= '2026-11-20 11:00' and ts is not null and level like '%'", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where ts > NULL"},
	{sql: "select * from logs where hour < 3000000000"},
	{sql: "select * from logs where ts >= TIMESTAMP '2026-11-20 11:00' and region = 'eu'", drop: "h09 h10 h10us h11null nostats escaped prev"},
	{sql: "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select * from r, logs where ts > '2026-11-20 11:00'"},
	{sql: "select * from logs where ts >= '2026-11-20 11:00' union all select * from memory.main.logs where ts < '2026-11-20 09:30'"},
	{sql: "select * from main.logs where ts >= '2026-11-20 11:00'", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs t(x, ts) where ts > '2026-11-20'"},
	{sql: "select ts + interval 1 day as ts from logs where ts > '2026-11-20 11:00'"},
	{sql: "select * from logs using sample 50% where ts > '2026-11-20 11:00'", random: true},
	{sql: "select * from logs where ts > '2026-11-20 11:00' qualify row_number() over (order by ts) = 1", drop: "h09 h10 h10us nostats prev"},
	{sql: "select (select count(*) from logs where ts >= o.since) from other o"},
	{sql: "with logs as (select * from logs where ts < '2026-11-20 10:00') select * from logs where ts > '2026-11-20 09:30'"},
	{sql: "select * from logs where ts > '2026-11-20 11:00'; select 1", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where ts > list_filter([timestamp '2026-11-20 11:00'], current_date -> true)[1]"},
	{sql: "select * from logs where ts > timestamp '2026-11-20 11:00' and ts > (select 1)", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where ts > epoch_ms(1795172400000)", drop: "h09 h10 h10us nostats prev"},
	{sql: "select * from logs where ts is not distinct from timestamp '2026-11-20 10:00'"},
	{sql: "select * from logs where ts not between timestamp '2026-11-20 10:00' and timestamp '2026-11-20 11:00'"},
	{sql: "select * from logs where ts > getvariable('x')"},
}

func TestPruneFilters(t *testing.T) {
	p := newPruneDB(t)
	for _, c := range pruneCases {
		got, filters := p.dropped(t, c.sql)
		if want := strings.Fields(c.drop); !slices.Equal(sortedNames(got), sortedNames(want)) {
			t.Errorf("%s:\n dropped %v\n    want %v", c.sql, got, want)
		}
		if pruning := filters["logs"].Pruning() || filters["events"].Pruning(); !pruning && c.drop != "" {
			t.Errorf("%s: Pruning() = %v", c.sql, pruning)
		}
		if !c.random {
			p.checkSound(t, c.sql, filters)
		}
	}
}

func sortedNames(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestFilterZeroKeepsAll(t *testing.T) {
	var f Filter
	if f.Pruning() || !f.Keep(FileStats{}) {
		t.Fatal("the zero Filter must keep every file and not prune")
	}
}

// TestFilterKeepEdges checks Keep on stats a manifest may hold.
func TestFilterKeepEdges(t *testing.T) {
	p := newPruneDB(t)
	tm := func(s string) *time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return &v }
	cases := []struct {
		sql  string
		fs   FileStats
		keep bool
	}{
		// The path says hour 10, the stats 11:xx: they disagree, trust neither.
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{MinTime: tm("2026-11-20T11:10:00Z"), MaxTime: tm("2026-11-20T11:20:00Z"), Part: map[string]string{"dt": "2026-11-20", "hour": "10"}}, true},
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{Part: map[string]string{"dt": "2026-11-20", "hour": "10"}}, false},
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{Part: map[string]string{"dt": "2026-11-20"}}, true},
		{"select * from logs where ts >= '2026-11-21 00:00'", FileStats{Part: map[string]string{"dt": "2026-11-20", "hour": "23"}}, false},
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{Part: map[string]string{"dt": "2026-11-20", "hour": "x"}}, true},
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{Part: map[string]string{"dt": "20261120", "hour": "10"}}, true},
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{Part: map[string]string{"dt": hiveNull}}, true},
		// Nanoseconds of a max time round up.
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{MaxTime: tm("2026-11-20T10:59:59.999999001Z")}, true},
		{"select * from logs where ts >= '2026-11-20 11:00'", FileStats{MaxTime: tm("2026-11-20T10:59:59.999999Z")}, false},
		{"select * from logs where hour = 9", FileStats{Part: map[string]string{"hour": "09"}}, true},
		{"select * from logs where hour = 9", FileStats{Part: map[string]string{"HOUR": "10"}}, false},
		{"select * from logs where hour = 9", FileStats{Part: map[string]string{"hour": " 9"}}, true},
		{"select * from logs where hour = 9", FileStats{Part: map[string]string{"hour": hiveNull}}, false},
		{"select * from logs where region = 'a b%'", FileStats{Part: map[string]string{"region": "a b%25"}}, true},
		{"select * from logs where region = 'a b%'", FileStats{Part: map[string]string{"region": "a b%"}}, true},
		{"select * from logs where region = 'a b%'", FileStats{Part: map[string]string{"region": "a b%2"}}, true},
		{"select * from logs where region = 'a b%'", FileStats{Part: map[string]string{"region": "a+b%25"}}, false},
		{"select * from logs where region = 'a b%'", FileStats{}, true},
	}
	for _, c := range cases {
		filters, err := filtersFor(context.Background(), p.conn, c.sql, pruneTables)
		if err != nil {
			t.Fatal(err)
		}
		if got := filters["logs"].Keep(c.fs); got != c.keep {
			t.Errorf("%s: Keep(%+v) = %v, want %v", c.sql, c.fs.Part, got, c.keep)
		}
	}
}

func TestFiltersForConnFailure(t *testing.T) {
	p := newPruneDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := filtersFor(ctx, p.conn, "select * from logs where ts > now()", pruneTables); err == nil {
		t.Fatal("filtersFor with a done context: no error")
	}
	filters, err := filtersFor(context.Background(), p.conn, "this is not SQL", pruneTables)
	if err != nil || len(filters) != 0 {
		t.Fatalf("filtersFor(not SQL) = %v, %v; want no filter, no error", filters, err)
	}
}

// FuzzFiltersFor feeds filtersFor arbitrary text: it must neither panic
// nor fail, and for a statement whose answer does not depend on the order
// or the time of reading, the files it drops must not change the answer.
func FuzzFiltersFor(f *testing.F) {
	for _, c := range pruneCases {
		f.Add(c.sql)
	}
	p := newPruneDB(f)
	p.exec(f, "SET enable_external_access = false")
	p.exec(f, "SET lock_configuration = true")
	var mu sync.Mutex
	f.Fuzz(func(t *testing.T, q string) {
		mu.Lock()
		defer mu.Unlock()
		_, filters := p.dropped(t, q)
		if filters["logs"].Pruning() || filters["events"].Pruning() {
			if orderFree(q) {
				p.checkSound(t, q, filters)
			}
		}
	})
}

// orderFree is a rough guess at whether q's answer is the same
// whichever order and time the rows are read in.
func orderFree(q string) bool {
	q = strings.ToLower(q)
	for _, w := range []string{"limit", "offset", "sample", "random", "uuid", "row_number", "rank", "first", "last",
		"any_value", "arbitrary", "list", "agg", "concat", "lag", "lead", "nth", "rowid", "now", "current", "today",
		"transaction", "qualify", "reservoir", "mode", "histogram", "approx", "filename", "explain", "setseed", "sum", "avg"} {
		if strings.Contains(q, w) {
			return false
		}
	}
	return true
}
