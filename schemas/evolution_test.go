package schemas_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/schemas"
)

// oldSchema is a table's schema before the changes under test.
func oldSchema() *schemas.Schema {
	return &schemas.Schema{Columns: []schemas.Column{
		{Name: "ts", Type: schemas.Timestamp, NotNull: true},
		{Name: "n", Type: schemas.Int32},
		{Name: "f", Type: schemas.Float32},
		{Name: "price", Type: "decimal(10,2)"},
		{Name: "tags", Type: "list<int32>"},
		{Name: "geo", Type: "struct<lat:float32>"},
		{Name: "m", Type: "map<string,int32>"},
		{Name: "msg", Type: schemas.String, NotNull: true},
		{Name: "rest", Type: schemas.JSON},
	}, TimeColumn: "ts", RestColumn: "rest"}
}

func TestCheckEvolution(t *testing.T) {
	// f applies change to a copy of oldSchema and checks the verdict: nil
	// for allowed, else one substring per expected problem.
	f := func(change func(s *schemas.Schema), problems ...string) {
		t.Helper()
		s := oldSchema()
		s.Columns = slices.Clone(s.Columns)
		change(s)
		err := schemas.CheckEvolution(oldSchema(), s)
		if len(problems) == 0 {
			if err != nil {
				t.Fatalf("CheckEvolution: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("CheckEvolution = nil, want %q", problems)
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(problems) {
			t.Fatalf("CheckEvolution reported %d problems, want %d:\n%v", len(lines), len(problems), err)
		}
		for i, p := range problems {
			if !strings.Contains(lines[i], p) {
				t.Fatalf("problem %d is %q, want it to contain %q", i, lines[i], p)
			}
		}
	}
	col := func(s *schemas.Schema, name string) *schemas.Column {
		return &s.Columns[slices.IndexFunc(s.Columns, func(c schemas.Column) bool { return c.Name == name })]
	}
	setType := func(name string, k schemas.Kind) func(*schemas.Schema) {
		return func(s *schemas.Schema) { col(s, name).Type = k }
	}

	// Allowed.
	f(func(s *schemas.Schema) {})
	f(func(s *schemas.Schema) {
		s.Columns = append(s.Columns, schemas.Column{Name: "extra", Type: "list<string>"}, schemas.Column{Name: "z", Type: schemas.Int64})
	})
	f(setType("n", schemas.Int64))
	f(setType("f", schemas.Float64))
	f(setType("price", "decimal(12,2)"))
	f(setType("price", "decimal(12,4)"))
	f(setType("price", "decimal( 10 , 2 )")) // the same type, spelled otherwise
	f(setType("tags", "list<int64>"))
	f(setType("geo", "struct<lat:float64, alt:int32, more:struct<x:string>>"))
	f(setType("m", "map<string,int64>"))
	f(func(s *schemas.Schema) { col(s, "msg").NotNull = false })
	f(func(s *schemas.Schema) { s.PartitionBy = []string{"hour(ts)"} }) // the default, spelled out

	// Refused.
	f(func(s *schemas.Schema) { s.Columns = slices.Delete(s.Columns, 7, 8) },
		`column "msg" was removed or renamed: old files still hold it`)
	f(func(s *schemas.Schema) { col(s, "n").Name = "count" },
		`column "n" was removed or renamed`, `new column "count" must come after the existing columns`)
	f(func(s *schemas.Schema) { col(s, "n").Name = "N" }, `column "n" was removed or renamed`, `new column "N" must come after`)
	f(func(s *schemas.Schema) { s.Columns[1], s.Columns[2] = s.Columns[2], s.Columns[1] },
		`column "f" moved before "n": existing columns keep their order`)
	f(func(s *schemas.Schema) {
		s.Columns = slices.Insert(s.Columns, 1, schemas.Column{Name: "mid", Type: schemas.String})
	},
		`new column "mid" must come after the existing columns`)
	f(func(s *schemas.Schema) {
		s.Columns = append(s.Columns, schemas.Column{Name: "req", Type: schemas.String, NotNull: true})
	},
		`new column "req" must be nullable: old files have no value for it`)
	f(func(s *schemas.Schema) { col(s, "n").NotNull = true }, `column "n" became not null: old files may hold nulls in it`)
	f(setType("n", schemas.String), `column "n" changed type from int32 to string: old files hold int32 values, which cannot be read as string (allowed: int32→int64`)
	f(setType("f", schemas.Int64), `column "f" changed type from float32 to int64`)
	f(setType("n", schemas.Float64), `column "n" changed type from int32 to float64`)
	f(setType("price", "decimal(10,3)"), `column "price" was narrowed from decimal(10,2) to decimal(10,3)`)
	f(setType("price", "decimal(9,1)"), `column "price" was narrowed from decimal(10,2) to decimal(9,1)`)
	f(setType("tags", "list<string>"), `column "tags[]" changed type from int32 to string`)
	f(setType("tags", "int32"), `column "tags" changed type from list<int32> to int32`)
	f(setType("m", "map<string,float32>"), `column "m[]" changed type from int32 to float32`)
	f(setType("geo", "struct<lon:float32>"), `column "geo": struct field "lat" was removed, renamed or moved`)
	f(setType("geo", "struct<alt:int32,lat:float32>"), `struct field "lat" was removed, renamed or moved`)
	f(setType("geo", "struct<lat:int32>"), `column "geo.lat" changed type from float32 to int32`)
	f(func(s *schemas.Schema) { s.TimeColumn = "" }, `time_column changed from "ts" to "": it decides each row's event time and hour partition`,
		`partition_by changed from [hour(ts)] to [hour(record time)]`)
	f(func(s *schemas.Schema) { s.RestColumn = "" }, `rest_column changed from "rest" to "": old rows keep their unmatched fields in the old one`)
	f(func(s *schemas.Schema) { s.PartitionBy = []string{"day(ts)"} },
		`partition_by changed from [hour(ts)] to [day(ts)]: the old files stay in the old directory layout`)
	f(func(s *schemas.Schema) { col(s, "n").Type = "int" }, `the new schema is invalid: column 1 ("n"): unknown type "int"`)
	// Several problems at once.
	f(func(s *schemas.Schema) {
		s.Columns = s.Columns[:len(s.Columns)-1]
		s.RestColumn = ""
		col(s, "n").Type = schemas.Bool
	}, "rest_column changed", `column "n" changed type`, `column "rest" was removed`)
}

// TestEvolutionInDuckDB writes a file with the old schema and one with an
// allowed new schema into one Hive directory and reads both as the query
// service does: every column has the new schema's type (the union DuckDB
// computes is the wide one), and the old rows read NULL where they lack a
// column or struct field.
func TestEvolutionInDuckDB(t *testing.T) {
	old := oldSchema()
	s := oldSchema()
	s.Columns = slices.Clone(s.Columns)
	for i, k := range map[int]schemas.Kind{1: schemas.Int64, 2: schemas.Float64, 3: "decimal(12,4)", 4: "list<int64>",
		5: "struct<lat:float64, alt:int32>", 6: "map<string,int64>"} {
		s.Columns[i].Type = k
	}
	s.Columns = append(s.Columns, schemas.Column{Name: "extra", Type: schemas.String})
	if err := schemas.CheckEvolution(old, s); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const part = "dt=2026-11-22/hour=03"
	writeRows(t, old, filepath.Join(dir, part, "old.parquet"),
		`{"ts":"2026-11-22T03:00:00Z","n":2147483647,"f":1.5,"price":"12345678.99","tags":[1,null],"geo":{"lat":0.5},"m":{"a":1},"msg":"old"}`)
	writeRows(t, s, filepath.Join(dir, part, "new.parquet"),
		`{"ts":"2026-11-22T03:30:00Z","n":9007199254740993,"f":0.1,"price":"12345678.9999","tags":[9007199254740993],"geo":{"lat":0.1,"alt":7},"m":{"b":9007199254740993},"msg":"new","extra":"x"}`)

	db := openDuckDB(t)
	from := fmt.Sprintf("read_parquet('%s/**/*.parquet', hive_partitioning = true, union_by_name = true, hive_types = {'dt': 'DATE', 'hour': 'INTEGER'})", filepath.ToSlash(dir))
	types := columnTypes(t, db, "SELECT * FROM "+from)
	for _, c := range s.Columns {
		if want := duckNormalize(t, db, schemas.DuckDBType(c.Type)); types[c.Name] != want {
			t.Errorf("column %s reads as %s, want %s (the new schema's type)", c.Name, types[c.Name], want)
		}
	}
	got := queryStrings(t, db, "SELECT msg, n, f, price::VARCHAR, tags::VARCHAR, geo::VARCHAR, m::VARCHAR, extra, hour FROM "+from+" ORDER BY msg")
	want := [][]string{
		{"new", "9007199254740993", "0.1", "12345678.9999", "[9007199254740993]", "{'lat': 0.1, 'alt': 7}", "{b=9007199254740993}", "x", "3"},
		{"old", "2147483647", "1.5", "12345678.9900", "[1, NULL]", "{'lat': 0.5, 'alt': NULL}", "{a=1}", "NULL", "3"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}
