package schemas_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/sluice-dev/sluice/schemas"
)

// everyType has a column of every type, nested ones included.
func everyType() *schemas.Schema {
	return &schemas.Schema{Columns: []schemas.Column{
		{Name: "s", Type: schemas.String, NotNull: true},
		{Name: "b", Type: schemas.Bool},
		{Name: "i32", Type: schemas.Int32},
		{Name: "i64", Type: schemas.Int64},
		{Name: "f32", Type: schemas.Float32},
		{Name: "f64", Type: schemas.Float64},
		{Name: "t", Type: schemas.Timestamp},
		{Name: "d", Type: schemas.Date},
		{Name: "j", Type: schemas.JSON},
		{Name: "bin", Type: schemas.Binary},
		{Name: "dec", Type: "decimal(38,10)"},
		{Name: "small", Type: "decimal(5,2)"},
		{Name: "l", Type: "list<int64>"},
		{Name: "ls", Type: "list<string>"},
		{Name: "m", Type: "map<string,float64>"},
		{Name: "st", Type: "struct<a:int32, b:list<json>, c:struct<t:timestamp, d:decimal(10,2)>>"},
		{Name: "lm", Type: "list<map<string,date>>"},
		{Name: "rest", Type: schemas.JSON},
		{Name: "_offset", Type: schemas.Int64},
	}, TimeColumn: "t", RestColumn: "rest"}
}

var everyTypeRows = []string{
	`{"s":"x","b":true,"i32":-7,"i64":9007199254740993,"f32":1.5,"f64":-2.25,"t":"2026-11-22T03:04:05.123456Z","d":"2026-11-22",` +
		`"j":{"a":[1,2.50]},"bin":"aGkA","dec":"-1234567890123456789012345678.0123456789","small":"999.99","l":[1,null,-3],` +
		`"ls":["a","é,\"q\""],"m":{"k":1.5,"n":null},"st":{"a":1,"b":[{"x":1},null,"s"],"c":{"t":0,"d":"1.50"}},` +
		`"lm":[{"day":"2026-01-02"},null,{}],"other":true}`,
	`{"s":""}`,
	`{"s":"e","l":[],"ls":[null],"m":{},"st":{},"lm":[],"small":0}`,
}

// writeEveryType converts everyTypeRows, builds them into one record with a
// checked allocator and writes it to a Parquet file (zstd); it returns the
// path and the rows.
func writeEveryType(t *testing.T) (string, *schemas.Schema, []schemas.Row) {
	s := everyType()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	var rows []schemas.Row
	for _, l := range everyTypeRows {
		r, err := s.Convert([]byte(l), testMeta, schemas.Strict)
		if err != nil {
			t.Fatalf("Convert(%s): %v", l, err)
		}
		rows = append(rows, r)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	b := s.NewBuilder(mem)
	defer b.Release()
	for _, r := range rows {
		b.Append(r)
	}
	rec := b.NewRecord()
	defer rec.Release()
	checkRecord(t, s, rec, rows)
	path := filepath.Join(t.TempDir(), "every.parquet")
	writeParquet(t, path, rec)
	return path, s, rows
}

// checkRecord checks that rec has s's Arrow schema and holds rows' values.
func checkRecord(t *testing.T, s *schemas.Schema, rec arrow.RecordBatch, rows []schemas.Row) {
	t.Helper()
	if !rec.Schema().Equal(s.ArrowSchema()) {
		t.Fatalf("schema\n%v\nwant\n%v", rec.Schema(), s.ArrowSchema())
	}
	if int(rec.NumRows()) != len(rows) {
		t.Fatalf("%d rows, want %d", rec.NumRows(), len(rows))
	}
	for c, col := range s.Columns {
		for i, r := range rows {
			if got := arrowValue(t, rec.Column(c), i); !reflect.DeepEqual(got, r.Values[c]) {
				t.Errorf("row %d column %s: arrow has %#v, row has %#v", i, col.Name, got, r.Values[c])
			}
		}
	}
}

func TestRoundTripDuckDB(t *testing.T) {
	path, s, _ := writeEveryType(t)
	db := openDuckDB(t)
	from := "read_parquet('" + filepath.ToSlash(path) + "')"
	types := columnTypes(t, db, "SELECT * FROM "+from)
	for _, c := range s.Columns {
		if want := duckNormalize(t, db, schemas.DuckDBType(c.Type)); types[c.Name] != want {
			t.Errorf("column %s reads as %s, want %s", c.Name, types[c.Name], want)
		}
	}
	var casts []string
	for _, c := range s.Columns {
		casts = append(casts, `"`+c.Name+`"::VARCHAR`)
	}
	got := queryStrings(t, db, "SELECT "+strings.Join(casts, ", ")+" FROM "+from+" ORDER BY s")
	want := [][]string{
		{"", "NULL", "NULL", "NULL", "NULL", "NULL", "2026-11-22 09:00:00.5+00", "NULL", "NULL", "NULL", "NULL", "NULL",
			"NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "42"},
		{"e", "NULL", "NULL", "NULL", "NULL", "NULL", "2026-11-22 09:00:00.5+00", "NULL", "NULL", "NULL", "NULL", "0.00",
			"[]", "[NULL]", "{}", "{'a': NULL, 'b': NULL, 'c': NULL}", "[]", "NULL", "42"},
		{"x", "true", "-7", "9007199254740993", "1.5", "-2.25", "2026-11-22 03:04:05.123456+00", "2026-11-22",
			`{"a":[1,2.50]}`, `hi\x00`, "-1234567890123456789012345678.0123456789", "999.99",
			"[1, NULL, -3]", `[a, 'é,"q"']`, "{k=1.5, n=NULL}",
			`{'a': 1, 'b': [{"x":1}, NULL, "s"], 'c': {'t': '1970-01-01 00:00:00+00', 'd': 1.50}}`,
			"[{day=2026-01-02}, NULL, {}]", `{"other":true}`, "42"},
	}
	if !reflect.DeepEqual(got, want) {
		for i := range got {
			if i < len(want) && !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("row %d\n got %q\nwant %q", i, got[i], want[i])
			}
		}
		t.Fatalf("DuckDB read %d rows, want %d", len(got), len(want))
	}
	// JSON inside a struct stays JSON: DuckDB can query into it.
	if v := queryStrings(t, db, "SELECT st.b[1]->>'x' FROM "+from+" WHERE s = 'x'"); v[0][0] != "1" {
		t.Fatalf("st.b[1]->>'x' = %v", v)
	}
}

// TestRoundTripArrow reads the file back with arrow-go's own Parquet reader:
// the same types and values, except that arrow-go maps Parquet's JSON
// logical type to binary (holding the same JSON text), also inside nested
// types and even when the file stores its Arrow schema (pqarrow cannot
// apply a stored extension type whose storage it inferred differently).
func TestRoundTripArrow(t *testing.T) {
	path, s, rows := writeEveryType(t)
	readParquet(t, path, func(rec arrow.RecordBatch) {
		want := s.ArrowSchema()
		for i, f := range rec.Schema().Fields() {
			if w := jsonAsBinary(want.Field(i).Type); f.Name != want.Field(i).Name || !arrow.TypeEqual(f.Type, w) || f.Nullable != want.Field(i).Nullable {
				t.Errorf("column %d: %s %s (nullable %v), want %s %s", i, f.Name, f.Type, f.Nullable, want.Field(i).Name, w)
			}
		}
		for c, col := range s.Columns {
			for i, r := range rows {
				w := jsonBytes(r.Values[c], want.Field(c).Type)
				if got := arrowValue(t, rec.Column(c), i); !reflect.DeepEqual(got, w) {
					t.Errorf("row %d column %s: read %#v, want %#v", i, col.Name, got, w)
				}
			}
		}
	})
}

// jsonAsBinary is dt with every JSON extension type replaced by binary.
func jsonAsBinary(dt arrow.DataType) arrow.DataType {
	switch dt := dt.(type) {
	case arrow.ExtensionType:
		return arrow.BinaryTypes.Binary
	case *arrow.MapType:
		return arrow.MapOf(dt.KeyType(), jsonAsBinary(dt.ItemType()))
	case *arrow.ListType:
		return arrow.ListOfField(arrow.Field{Name: dt.ElemField().Name, Type: jsonAsBinary(dt.Elem()), Nullable: true})
	case *arrow.StructType:
		fs := slices.Clone(dt.Fields())
		for i := range fs {
			fs[i].Type = jsonAsBinary(fs[i].Type)
		}
		return arrow.StructOf(fs...)
	}
	return dt
}

// jsonBytes is the row value v of Arrow type dt with JSON text as []byte.
func jsonBytes(v any, dt arrow.DataType) any {
	if v == nil {
		return nil
	}
	switch dt := dt.(type) {
	case arrow.ExtensionType:
		return []byte(v.(string))
	case *arrow.MapType:
		var out []schemas.MapEntry
		for _, e := range v.([]schemas.MapEntry) {
			out = append(out, schemas.MapEntry{Key: e.Key, Value: jsonBytes(e.Value, dt.ItemType())})
		}
		if out == nil {
			out = []schemas.MapEntry{}
		}
		return out
	case *arrow.ListType:
		out := []any{}
		for _, e := range v.([]any) {
			out = append(out, jsonBytes(e, dt.Elem()))
		}
		return out
	case *arrow.StructType:
		out := []any{}
		for i, e := range v.([]any) {
			out = append(out, jsonBytes(e, dt.Field(i).Type))
		}
		return out
	}
	return v
}

// readParquet reads the Parquet file at path with arrow-go's pqarrow reader
// and passes its one record to check.
func readParquet(t *testing.T, path string, check func(arrow.RecordBatch)) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, mem)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, -1)
	defer tr.Release()
	if !tr.Next() {
		t.Fatal("no record")
	}
	check(tr.RecordBatch())
}

// TestRoundTripPyArrow reads the file with pyarrow, an independent Parquet
// implementation (Arrow C++), when it is installed.
func TestRoundTripPyArrow(t *testing.T) {
	if exec.Command("python3", "-c", "import pyarrow").Run() != nil {
		t.Skip("pyarrow is not installed (python3 -c 'import pyarrow' fails): skipping the second-reader check; arrow-go's reader and DuckDB are checked by the other round-trip tests")
	}
	path, _, _ := writeEveryType(t)
	script := `
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(json.dumps({"types": {f.name: str(f.type) for f in t.schema},
                  "rows": t.to_pylist()}, default=str, sort_keys=True))
`
	out, err := exec.Command("python3", "-c", script, path).Output()
	if err != nil {
		t.Fatalf("pyarrow: %v", err)
	}
	var got struct {
		Types map[string]string
		Rows  []map[string]any
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	wantTypes := map[string]string{
		"s": "string", "b": "bool", "i32": "int32", "i64": "int64", "f32": "float", "f64": "double",
		"t": "timestamp[us, tz=UTC]", "d": "date32[day]", "j": "extension<arrow.json>", "bin": "binary",
		"dec": "decimal128(38, 10)", "small": "decimal128(5, 2)", "l": "list<element: int64>", "ls": "list<element: string>",
		"m": "map<string, double>", "st": "struct<a: int32, b: list<element: extension<arrow.json>>, c: struct<t: timestamp[us, tz=UTC], d: decimal128(10, 2)>>",
		"lm": "list<element: map<string, date32[day]>>", "rest": "extension<arrow.json>", "_offset": "int64",
	}
	// pyarrow names a map's entries field when it is not "entries", as in
	// map<string, double ('m')>; the name does not matter to readers.
	entriesName := regexp.MustCompile(` \('[^']*'\)`)
	for name, want := range wantTypes {
		if entriesName.ReplaceAllString(got.Types[name], "") != want {
			t.Errorf("pyarrow type of %s = %s, want %s", name, got.Types[name], want)
		}
	}
	if len(got.Rows) != len(everyTypeRows) {
		t.Fatalf("pyarrow read %d rows", len(got.Rows))
	}
	x := got.Rows[0]
	for name, want := range map[string]any{
		"s": "x", "i64": 9007199254740993.0, "dec": "-1234567890123456789012345678.0123456789", "small": "999.99",
		"l": []any{1.0, nil, -3.0}, "m": []any{[]any{"k", 1.5}, []any{"n", nil}}, "j": `{"a":[1,2.50]}`,
	} {
		if !reflect.DeepEqual(x[name], want) {
			t.Errorf("pyarrow row 0 %s = %#v, want %#v", name, x[name], want)
		}
	}
	if os.Getenv("SLUICE_VERBOSE") != "" {
		t.Logf("%s", out)
	}
}
