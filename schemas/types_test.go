package schemas_test

import (
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/schemas"
)

func TestNestedTypes(t *testing.T) {
	// f checks a valid type's DuckDB and Arrow types.
	f := func(kind, duck, arrow string) {
		t.Helper()
		s := &schemas.Schema{Columns: []schemas.Column{{Name: "c", Type: schemas.Kind(kind)}}}
		if err := s.Validate(); err != nil {
			t.Fatalf("Validate(%q): %v", kind, err)
		}
		if got := schemas.DuckDBType(schemas.Kind(kind)); got != duck {
			t.Errorf("DuckDBType(%q) = %s, want %s", kind, got, duck)
		}
		if got := s.ArrowSchema().Field(0).Type.String(); arrow != "" && got != arrow {
			t.Errorf("arrow type of %q = %s, want %s", kind, got, arrow)
		}
	}
	f("decimal(10,2)", "DECIMAL(10,2)", "decimal(10, 2)")
	f(" decimal ( 38 , 0 ) ", "DECIMAL(38,0)", "decimal(38, 0)")
	f("decimal(1,1)", "DECIMAL(1,1)", "decimal(1, 1)")
	f("list<string>", "VARCHAR[]", "list<element: utf8, nullable>")
	f("list< list<int32> >", "INTEGER[][]", "list<element: list<element: int32, nullable>, nullable>")
	f("map<string,int64>", "MAP(VARCHAR, BIGINT)", "map<utf8, int64, items_nullable>")
	f("map< string , list<timestamp> >", "MAP(VARCHAR, TIMESTAMP WITH TIME ZONE[])",
		"map<utf8, list<element: timestamp[us, tz=UTC], nullable>, items_nullable>")
	f("struct<a:int32, b : string>", `STRUCT("a" INTEGER, "b" VARCHAR)`, "struct<a: int32 nullable, b: utf8 nullable>")
	f("struct<order:decimal(5,1),tags:map<string,json>,\n\tbin:binary>", `STRUCT("order" DECIMAL(5,1), "tags" MAP(VARCHAR, JSON), "bin" BLOB)`,
		"struct<order: decimal(5, 1) nullable, tags: map<utf8, extension<arrow.json[storage_type=utf8]>, items_nullable> nullable, bin: binary nullable>")
	f("list<struct<d:date,f:float32,b:bool>>", `STRUCT("d" DATE, "f" FLOAT, "b" BOOLEAN)[]`,
		"list<element: struct<d: date32 nullable, f: float32 nullable, b: bool nullable>, nullable>")
	// 32 levels deep (31 lists around a scalar) is the most.
	f(strings.Repeat("list<", 31)+"int64"+strings.Repeat(">", 31), "BIGINT"+strings.Repeat("[]", 31), "")
}

func TestInvalidTypes(t *testing.T) {
	f := func(kind, want string) {
		t.Helper()
		s := &schemas.Schema{Columns: []schemas.Column{{Name: "n", Type: schemas.Kind(kind)}}}
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("Validate(%q) = %v, want one problem containing %q", kind, err, want)
		}
		if !strings.HasPrefix(err.Error(), `column 0 ("n"): `) {
			t.Fatalf("Validate(%q) = %v, want it to name the column", kind, err)
		}
	}
	f("int", `unknown type "int" (one of string, bool, int32, int64, float32, float64, timestamp, date, json, binary, decimal(p,s), list<T>, map<string,T>, struct<name:T,...>)`)
	f("decimal", `unknown type "decimal" (decimal needs a precision and scale, like decimal(18,2))`)
	f("list", `unknown type "list" (list needs its element types`)
	f("decimal(39,2)", `invalid type "decimal(39,2)": decimal precision 39 is out of range (1 to 38)`)
	f("decimal(0,0)", "decimal precision 0 is out of range")
	f("decimal(5,6)", "decimal scale 6 is larger than its precision 5")
	f("decimal(10)", `invalid type "decimal(10)": at offset 10: expected ','`)
	f("decimal(10,-1)", "at offset 11: expected a number")
	f("decimal(99999999999,1)", "expected a number")
	f("list<int>", `invalid type "list<int>": unknown type "int" (one of`)
	f("list<string", `invalid type "list<string": at offset 11: expected '>'`)
	f("list<string>>", `unexpected ">" after the type`)
	f("list<>", `unknown type ">"`)
	f("map<int32,string>", "map keys must be string, not int32 (JSON object keys are strings)")
	f("map<string>", "expected ','")
	f("struct<>", "expected a struct field name")
	f("struct<a:int32,A:string>", `duplicate struct field "A" (names are case-insensitive in SQL)`)
	f("struct<a int32>", "expected ':'")
	f("struct<a:int32,>", "expected a struct field name")
	f("struct<1a:int32>", "expected a struct field name")
	f("struct<a-b:int32>", "expected ':'")
	f("List<string>", `unknown type "List"`)
	f("float16", `column 0 ("n"): unknown type "float16" (one of`)
	f("int 32", `invalid type "int 32": unknown type "int"`)
	f(strings.Repeat("list<", 32)+"int64"+strings.Repeat(">", 32), "types nest more than 32 deep")
}

// Metadata, time and rest columns compare parsed types, so spaces are fine.
func TestTypesWithSpaces(t *testing.T) {
	s := &schemas.Schema{Columns: []schemas.Column{
		{Name: "ts", Type: " timestamp "}, {Name: "rest", Type: "json\n"}, {Name: "_offset", Type: " int64"},
	}, TimeColumn: "ts", RestColumn: "rest"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := s.Convert([]byte(`{"ts":1795316645,"x":1}`), testMeta, schemas.Strict)
	if err != nil || r.Values[0] != int64(1795316645e6) || r.Values[1] != `{"x":1}` || r.Values[2] != int64(42) {
		t.Fatalf("Convert = %v, %v", r.Values, err)
	}
}
