package schemas_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/schemas"
)

func TestValidName(t *testing.T) {
	f := func(name string, want bool) {
		t.Helper()
		if got := schemas.ValidName(name); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
	f("a", true)
	f("_", true)
	f("_stream", true)
	f("Level_2", true)
	f(strings.Repeat("a", 128), true)
	f(strings.Repeat("a", 129), false)
	f("", false)
	f("1abc", false)
	f("a-b", false)
	f("a.b", false)
	f("a b", false)
	f("é", false)
	f("a\n", false)
}

// col builds a column from "name:type".
func col(spec string) schemas.Column {
	name, kind, _ := strings.Cut(spec, ":")
	return schemas.Column{Name: name, Type: schemas.Kind(kind)}
}

func TestValidate(t *testing.T) {
	// f validates a schema of the given "name:type" columns and checks that
	// the error has exactly one line per wanted problem, each containing it.
	f := func(timeCol, restCol string, cols []string, problems ...string) {
		t.Helper()
		s := &schemas.Schema{TimeColumn: timeCol, RestColumn: restCol}
		for _, c := range cols {
			s.Columns = append(s.Columns, col(c))
		}
		err := s.Validate()
		if len(problems) == 0 {
			if err != nil {
				t.Fatalf("Validate(%v): %v", cols, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("Validate(%v) = nil, want %q", cols, problems)
		}
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(problems) {
			t.Fatalf("Validate(%v) reported %d problems, want %d:\n%v", cols, len(lines), len(problems), err)
		}
		for i, p := range problems {
			if !strings.Contains(lines[i], p) {
				t.Fatalf("Validate(%v) problem %d is %q, want it to contain %q", cols, i, lines[i], p)
			}
		}
	}
	ok := []string{"ts:timestamp", "msg:string", "attrs:json"}
	f("", "", ok)
	f("ts", "attrs", ok)
	f("", "", []string{"s:string", "b:bool", "i:int32", "l:int64", "f:float32", "d:float64", "t:timestamp", "dd:date", "j:json", "bb:binary"})
	f("", "", []string{"_stream:string", "_partition:int32", "_offset:int64", "_key:string", "_timestamp:timestamp"})
	f("_timestamp", "", []string{"_timestamp:timestamp"})
	f("", "", []string{"p:decimal(10,2)", "l:list<string>", "m:map<string,int64>", "st:struct<a:int32, b:list<json>>"})

	f("", "", nil, "schema has no columns")
	f("", "", []string{"level:string", "Level:string"}, `column 1 ("Level"): duplicate column name (names are case-insensitive in SQL)`)
	f("", "", []string{"a:string", "b:int32", "A:int64", "B:json"}, `column 2 ("A"): duplicate`, `column 3 ("B"): duplicate`)
	f("", "", []string{"dt:date"}, `column 0 ("dt"): "dt" is reserved for the Hive partition column`)
	f("", "", []string{"x:string", "HOUR:int32"}, `column 1 ("HOUR"): "HOUR" is reserved for the Hive partition column`)
	f("", "", []string{"1abc:string"}, `column 0 ("1abc"): name must match`)
	f("", "", []string{"a-b:string"}, `column 0 ("a-b"): name must match`)
	f("", "", []string{":string"}, `column 0 (""): name must match`)
	f("", "", []string{strings.Repeat("n", 129) + ":string"}, "name must match")
	f("", "", []string{"n:int"}, `column 0 ("n"): unknown type "int" (one of string, bool, int32`)
	f("", "", []string{"n:"}, `unknown type ""`)
	f("", "", []string{"n:String"}, `unknown type "String"`)
	f("", "", []string{"_x:string"}, `column 0 ("_x"): names starting with _ are reserved for metadata columns`)
	f("", "", []string{"_Stream:string"}, `names starting with _ are reserved`)
	f("", "", []string{"_offset:int32"}, `column 0 ("_offset"): metadata column must have type int64`)
	f("", "", []string{"_key:binary"}, `metadata column must have type string`)
	f("", "", []string{"_partition:int64"}, `metadata column must have type int32`)
	f("ts", "", []string{"msg:string"}, `time_column "ts" must name a timestamp column`)
	f("msg", "", []string{"msg:string"}, `time_column "msg" must name a timestamp column`)
	f("TS", "", []string{"ts:timestamp"}, `time_column "TS" must name a timestamp column`)
	f("", "attrs", []string{"msg:string"}, `rest_column "attrs" must name a json column`)
	f("", "msg", []string{"msg:string"}, `rest_column "msg" must name a json column`)

	// Every problem is reported at once.
	f("when", "extra", []string{"ok:string", "dt:string", "OK:int32", "bad name:string", "n:decimal", "_x:string", "when:string", "extra:string"},
		`column 1 ("dt"): "dt" is reserved`,
		`column 2 ("OK"): duplicate`,
		`column 3 ("bad name"): name must match`,
		`column 4 ("n"): unknown type "decimal"`,
		`column 5 ("_x"): names starting with _ are reserved`,
		`time_column "when" must name a timestamp column`,
		`rest_column "extra" must name a json column`)
	f("", "", []string{"n:list<int>"}, `column 0 ("n"): invalid type "list<int>": unknown type "int" (one of`)
	f("t", "", []string{"t:list<timestamp>"}, `time_column "t" must name a timestamp column`)
	// One column with several problems.
	f("", "", []string{"_nope:float16"}, `unknown type "float16"`, `names starting with _ are reserved`)
}

func TestLogSchemaIsValid(t *testing.T) {
	s := schemas.LogSchema()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := allKinds().Validate(); err != nil {
		t.Fatal(err)
	}
	// LogSchema returns a fresh copy: changing one does not change the next.
	s.Columns[0].Name = "changed"
	if schemas.LogSchema().Columns[0].Name != "ts" {
		t.Fatal("LogSchema shares its columns between calls")
	}
}

func TestSchemaJSON(t *testing.T) {
	var s schemas.Schema
	doc := `{"columns":[{"name":"ts","type":"timestamp","not_null":true},{"name":"a","type":"json"}],"time_column":"ts","rest_column":"a"}`
	if err := json.Unmarshal([]byte(doc), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if c, ok := s.Column("ts"); !ok || !c.NotNull || c.Type != schemas.Timestamp {
		t.Fatalf("Column(ts) = %+v, %v", c, ok)
	}
	if _, ok := s.Column("TS"); ok {
		t.Fatal("Column matched a name of another case")
	}
	out, _ := json.Marshal(&s)
	if string(out) != doc {
		t.Fatalf("round trip\n got %s\nwant %s", out, doc)
	}
	// partition_by, and types with parameters.
	doc = `{"columns":[{"name":"ts","type":"timestamp"},{"name":"r","type":"string"},{"name":"p","type":"decimal(10,2)"}],"time_column":"ts","partition_by":["r","day(ts)"]}`
	s = schemas.Schema{}
	if err := json.Unmarshal([]byte(doc), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if out, _ := json.Marshal(&s); string(out) != doc {
		t.Fatalf("round trip\n got %s\nwant %s", out, doc)
	}
}

func TestDuckDBType(t *testing.T) {
	f := func(k schemas.Kind, want string) {
		t.Helper()
		if got := schemas.DuckDBType(k); got != want {
			t.Fatalf("DuckDBType(%s) = %s, want %s", k, got, want)
		}
	}
	f(schemas.String, "VARCHAR")
	f(schemas.Bool, "BOOLEAN")
	f(schemas.Int32, "INTEGER")
	f(schemas.Int64, "BIGINT")
	f(schemas.Float32, "FLOAT")
	f(schemas.Float64, "DOUBLE")
	f(schemas.Timestamp, "TIMESTAMP WITH TIME ZONE")
	f(schemas.Date, "DATE")
	f(schemas.JSON, "JSON")
	f(schemas.Binary, "BLOB")
}
