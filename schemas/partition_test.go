package schemas_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/schemas"
)

// partSchema has a column of every kind a partition can use.
func partSchema(partitionBy ...string) *schemas.Schema {
	return &schemas.Schema{Columns: []schemas.Column{
		{Name: "ts", Type: schemas.Timestamp},
		{Name: "region", Type: schemas.String},
		{Name: "n", Type: schemas.Int32},
		{Name: "big", Type: schemas.Int64},
		{Name: "ok", Type: schemas.Bool},
		{Name: "d", Type: schemas.Date},
		{Name: "ev", Type: schemas.Timestamp},
		{Name: "msg", Type: schemas.String},
		{Name: "rest", Type: schemas.JSON},
		{Name: "_partition", Type: schemas.Int32},
	}, TimeColumn: "ts", RestColumn: "rest", PartitionBy: partitionBy}
}

func TestPartitionPath(t *testing.T) {
	f := func(s *schemas.Schema, data, want string) {
		t.Helper()
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		r, err := s.Convert([]byte(data), testMeta, schemas.Strict)
		if err != nil {
			t.Fatalf("Convert(%s): %v", data, err)
		}
		if got := s.PartitionPath(r); got != want {
			t.Fatalf("PartitionPath(%s) with %q = %s, want %s", data, s.PartitionBy, got, want)
		}
	}
	// The default: hour of the time column, in UTC; late rows go to their
	// own hour. Spelling the default out changes nothing.
	for _, s := range []*schemas.Schema{schemas.LogSchema(), partSchema(), partSchema("hour(ts)"), partSchema(" hour ( ts ) ")} {
		f(s, `{"ts":"2026-01-02T23:59:59-01:00"}`, "dt=2026-01-03/hour=00")
		f(s, `{"ts":"1999-12-31T09:00:00Z"}`, "dt=1999-12-31/hour=09")
		f(s, `{}`, "dt=2026-11-22/hour=09") // the record time (testMeta)
	}
	// Without a time column: the record time.
	f(&schemas.Schema{Columns: []schemas.Column{{Name: "x", Type: schemas.String}}}, `{"x":"a"}`, "dt=2026-11-22/hour=09")
	f(partSchema("day(ts)"), `{"ts":"2026-01-02T23:59:59-01:00"}`, "dt=2026-01-03")
	f(partSchema("region", "day(ts)"), `{"ts":"2026-01-02T10:00:00Z","region":"eu"}`, "region=eu/dt=2026-01-02")
	// Another timestamp column: null is the default partition.
	f(partSchema("hour(ev)"), `{"ev":"2026-01-02T10:00:00Z"}`, "dt=2026-01-02/hour=10")
	f(partSchema("hour(ev)"), `{}`, "dt=__HIVE_DEFAULT_PARTITION__/hour=__HIVE_DEFAULT_PARTITION__")
	f(partSchema("day(ev)"), `{}`, "dt=__HIVE_DEFAULT_PARTITION__")
	f(partSchema("day(d)"), `{"d":"2026-02-03"}`, "dt=2026-02-03")
	// Plain columns of every allowed kind, and nulls.
	all := partSchema("region", "n", "big", "ok", "d")
	f(all, `{"region":"eu","n":-7,"big":9007199254740993,"ok":true,"d":"2026-02-03"}`,
		"region=eu/n=-7/big=9007199254740993/ok=true/d=2026-02-03")
	f(all, `{"ok":false}`, "region=__HIVE_DEFAULT_PARTITION__/n=__HIVE_DEFAULT_PARTITION__/big=__HIVE_DEFAULT_PARTITION__/ok=false/d=__HIVE_DEFAULT_PARTITION__")
	// Hive escaping; an empty string is its own partition; the default
	// partition's name as a value is escaped so it does not read as NULL.
	r := partSchema("region")
	f(r, `{"region":"a/b=c%d e:\u0001é\u2028#?*[]{}^'\"\\"}`, `region=a%2Fb%3Dc%25d e%3A%01é%E2%80%A8%23%3F%2A%5B%5D%7B}%5E%27%22%5C`)
	f(r, `{"region":""}`, "region=__HIVE_DEFAULT_PARTITION__") // Hive's and Spark's way: they refuse "region="
	f(r, `{"region":"__HIVE_DEFAULT_PARTITION__"}`, "region=%5F_HIVE_DEFAULT_PARTITION__")
	f(r, `{"region":"..","ts":1}`, "region=..")
}

func TestPartitionValidate(t *testing.T) {
	f := func(want string, partitionBy ...string) {
		t.Helper()
		err := partSchema(partitionBy...).Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Validate(partition_by %q) = %v, want %q", partitionBy, err, want)
		}
	}
	f(`partition_by[0] "hour(msg)": hour() needs a timestamp column, "msg" is string`, "hour(msg)")
	f(`partition_by[0] "day(n)": day() needs a timestamp or date column, "n" is int32`, "day(n)")
	f(`partition_by[1] "day(x)": no column "x"`, "region", "day(x)")
	f(`partition_by[0] "week(ts)": expected "day(column)", "hour(column)" or a column name`, "week(ts)")
	f(`expected "day(column)"`, "hour(ts")
	f(`column "rest" is json; a plain partition column must be string, int32, int64, bool or date`, "rest")
	f(`column "ts" is timestamp; a plain partition column must be string, int32, int64, bool or date (use day() or hour() for a timestamp)`, "ts")
	f(`column "_partition" cannot be a partition key: Hive, Spark and Athena skip directories whose names start with _`, "_partition")
	f(`partition_by[1] "day(ev)": only one day() or hour() entry is allowed`, "hour(ts)", "day(ev)")
	f(`partition_by[1] "region": the column is already a partition key`, "region", "region")
	f(`no column "Region"`, "Region")
	// Every problem at once.
	err := partSchema("nope", "region", "hour(region)").Validate()
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Fatalf("want two problems, got %v", err)
	}
}

func TestPartitionColumns(t *testing.T) {
	f := func(s *schemas.Schema, want string) {
		t.Helper()
		var got []string
		for _, c := range s.PartitionColumns() {
			got = append(got, c.Name+" "+string(c.Type))
		}
		if strings.Join(got, ", ") != want {
			t.Fatalf("PartitionColumns(%q) = %s, want %s", s.PartitionBy, strings.Join(got, ", "), want)
		}
	}
	f(schemas.LogSchema(), "dt date, hour int32")
	f(&schemas.Schema{Columns: []schemas.Column{{Name: "x", Type: schemas.String}}}, "dt date, hour int32")
	f(partSchema("day(ts)"), "dt date")
	f(partSchema("region", "n", "hour(ev)", "big", "ok", "d"), "region string, n int32, dt date, hour int32, big int64, ok bool, d date")

	// Plain partition columns are not in the files.
	s := partSchema("region", "day(ts)")
	var names []string
	for _, c := range s.FileColumns() {
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "ts,n,big,ok,d,ev,msg,rest,_partition" {
		t.Fatalf("FileColumns = %v", names)
	}
	as := s.ArrowSchema()
	if as.NumFields() != 9 || as.HasField("region") {
		t.Fatalf("ArrowSchema = %v", as)
	}
	if !reflect.DeepEqual(schemas.LogSchema().FileColumns(), schemas.LogSchema().Columns) {
		t.Fatal("LogSchema's FileColumns differ from its Columns")
	}
}

// A string too long to be a directory name does not fit its column.
func TestPartitionValueTooLong(t *testing.T) {
	s := partSchema("region")
	long := strings.Repeat("x", 249) // "region=" + 249 = 256 bytes
	_, err := s.Convert([]byte(`{"region":"`+long+`"}`), testMeta, schemas.Strict)
	var fe *schemas.FieldError
	if !errors.As(err, &fe) || fe.Column != "region" || !strings.Contains(fe.Reason, "too long for a partition key: its directory name would have 256 bytes, more than 255") {
		t.Fatalf("Convert = %v", err)
	}
	if _, err := s.Convert([]byte(`{"region":"`+long[1:]+`"}`), testMeta, schemas.Strict); err != nil {
		t.Fatalf("255 bytes: %v", err)
	}
	// Escaping counts: 83 slashes are 249 bytes escaped.
	if _, err := s.Convert([]byte(`{"region":"`+strings.Repeat("/", 83)+`"}`), testMeta, schemas.Strict); err == nil {
		t.Fatal("83 escaped slashes fit")
	}
	// Keep: kept in the rest column, the row goes to the default partition.
	r, err := s.Convert([]byte(`{"region":"`+long+`"}`), testMeta, schemas.Keep)
	if err != nil || r.Values[1] != nil || r.Values[8] != `{"region":"`+long+`"}` {
		t.Fatalf("Keep: %v, %v", r.Values, err)
	}
	if got := s.PartitionPath(r); got != "region=__HIVE_DEFAULT_PARTITION__" {
		t.Fatalf("PartitionPath = %s", got)
	}
}

// TestPartitionsInDuckDB writes rows into their partitions as the sink does
// and reads them back with DuckDB's hive_partitioning, with hive_types from
// PartitionColumns: every partition value, escaped or null, comes back.
func TestPartitionsInDuckDB(t *testing.T) {
	s := partSchema("region", "n", "ok", "d", "hour(ts)")
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	rows := []string{
		`{"ts":"2026-01-02T03:04:05Z","region":"eu","n":1,"ok":true,"d":"2026-01-02","msg":"a"}`,
		`{"ts":"2026-01-02T04:00:00Z","region":"a/b=c%d e:\u0001é\u2028#?*[]{}^'\"\\","n":-2,"ok":false,"d":"1999-12-31","msg":"b"}`,
		`{"ts":"2026-01-02T05:00:00Z","msg":"c"}`,
		`{"ts":"2026-01-02T06:00:00Z","region":"","msg":"d"}`,
		`{"ts":"2026-01-02T07:00:00Z","region":"__HIVE_DEFAULT_PARTITION__","msg":"e"}`,
	}
	dir := t.TempDir()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	for i, l := range rows {
		r, err := s.Convert([]byte(l), testMeta, schemas.Strict)
		if err != nil {
			t.Fatal(err)
		}
		b := s.NewBuilder(mem)
		b.Append(r)
		rec := b.NewRecord()
		writeParquet(t, filepath.Join(dir, filepath.FromSlash(s.PartitionPath(r)), fmt.Sprintf("f%d.parquet", i)), rec)
		rec.Release()
		b.Release()
	}
	var hive []string
	for _, c := range s.PartitionColumns() {
		hive = append(hive, fmt.Sprintf("'%s': '%s'", c.Name, schemas.DuckDBType(c.Type)))
	}
	from := fmt.Sprintf("read_parquet('%s/**/*.parquet', hive_partitioning = true, union_by_name = true, hive_types = {%s})",
		filepath.ToSlash(dir), strings.Join(hive, ", "))
	db := openDuckDB(t)
	got := queryStrings(t, db, "SELECT msg, region, n, ok, d::VARCHAR, dt::VARCHAR, hour FROM "+from+" ORDER BY msg")
	want := [][]string{
		{"a", "eu", "1", "true", "2026-01-02", "2026-01-02", "3"},
		{"b", "a/b=c%d e:\x01é\u2028#?*[]{}^'\"\\", "-2", "false", "1999-12-31", "2026-01-02", "4"},
		{"c", "NULL", "NULL", "NULL", "NULL", "2026-01-02", "5"},
		{"d", "NULL", "NULL", "NULL", "NULL", "2026-01-02", "6"},
		{"e", "__HIVE_DEFAULT_PARTITION__", "NULL", "NULL", "NULL", "2026-01-02", "7"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DuckDB read\n%q\nwant\n%q", got, want)
	}
	types := columnTypes(t, db, "SELECT * FROM "+from)
	for name, typ := range map[string]string{"region": "VARCHAR", "n": "INTEGER", "ok": "BOOLEAN", "d": "DATE", "dt": "DATE", "hour": "INTEGER"} {
		if types[name] != typ {
			t.Errorf("column %s is %s, want %s", name, types[name], typ)
		}
	}
	// The files themselves do not hold the plain partition columns.
	fileCols := columnTypes(t, db, fmt.Sprintf("SELECT * FROM read_parquet('%s/**/*.parquet', hive_partitioning = false)", filepath.ToSlash(dir)))
	if _, ok := fileCols["region"]; ok || len(fileCols) != 6 {
		t.Fatalf("file columns %v", fileCols)
	}
}

func TestPartitionPathAllocs(t *testing.T) {
	s := schemas.LogSchema()
	r := schemas.Row{Values: make([]any, len(s.Columns)), Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if n := testing.AllocsPerRun(100, func() { s.PartitionPath(r) }); n > 1 {
		t.Fatalf("PartitionPath allocates %v times, want 1 (the string)", n)
	}
}
