package schemas_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/decimal128"

	"github.com/sluice-dev/sluice/schemas"
)

// nestedSchema has decimal and nested columns and a rest column.
func nestedSchema() *schemas.Schema {
	return &schemas.Schema{Columns: []schemas.Column{
		{Name: "price", Type: "decimal(10,2)"},
		{Name: "tags", Type: "list<string>"},
		{Name: "attrs", Type: "map<string, int64>"},
		{Name: "items", Type: "list<struct<sku:string, qty:int32, price:decimal(10,2)>>"},
		{Name: "geo", Type: "struct<lat:float64, lon:float64, when:timestamp>"},
		{Name: "rest", Type: "json"},
	}, RestColumn: "rest"}
}

func dec(unscaled int64) decimal128.Num { return decimal128.FromI64(unscaled) }

func TestConvertNested(t *testing.T) {
	s := nestedSchema()
	// f converts data in both modes and compares the values of the named
	// columns (others must be null).
	f := func(data string, want map[string]any) {
		t.Helper()
		for _, mode := range []schemas.Mode{schemas.Strict, schemas.Keep} {
			r, err := s.Convert([]byte(data), testMeta, mode)
			if err != nil {
				t.Fatalf("Convert(%s): %v", data, err)
			}
			for i, c := range s.Columns {
				if got := r.Values[i]; !reflect.DeepEqual(got, want[c.Name]) {
					t.Fatalf("Convert(%s) mode %d column %s = %#v, want %#v", data, mode, c.Name, got, want[c.Name])
				}
			}
		}
	}
	type m = map[string]any
	type e = schemas.MapEntry
	f(`{"price":12.5,"tags":["a",null,"b"],"attrs":{"x":1,"y":null},"geo":{"lat":1.5,"lon":-2,"when":1795316645}}`, m{
		"price": dec(1250),
		"tags":  []any{"a", nil, "b"},
		"attrs": []e{{"x", int64(1)}, {"y", nil}},
		"geo":   []any{1.5, -2.0, int64(1795316645e6)},
	})
	f(`{"items":[{"sku":"x","qty":2,"price":"9.99"},null,{"sku":"y"},{}]}`, m{
		"items": []any{[]any{"x", int32(2), dec(999)}, nil, []any{"y", nil, nil}, []any{nil, nil, nil}},
	})
	// Empty containers are not null; null is.
	f(`{"tags":[],"attrs":{},"items":[],"geo":{}}`, m{"tags": []any{}, "attrs": []e{}, "items": []any{}, "geo": []any{nil, nil, nil}})
	f(`{"price":null,"tags":null,"attrs":null,"items":null,"geo":null}`, m{})
	// A repeated map key keeps its first place and its last value, like a
	// repeated field; a map keeps its keys' order.
	f(`{"attrs":{"b":1,"a":2,"b":3}}`, m{"attrs": []e{{"b", int64(3)}, {"a", int64(2)}}})
	// Keys are decoded; spacing does not matter.
	f(` { "attrs" : { "a\u0062" : 1 , "\u00e9" : 2 } , "tags" : [ "x" , "y\n" ] } `, m{
		"attrs": []e{{"ab", int64(1)}, {"é", int64(2)}}, "tags": []any{"x", "y\n"},
	})
	// Many keys, with repeats (past the size where a map is indexed).
	var keys []string
	var entries []e
	for i := range 40 {
		keys = append(keys, fmt.Sprintf(`"k%d":%d`, i%30, i))
		if i < 30 {
			entries = append(entries, e{fmt.Sprint("k", i), int64(i)})
		} else {
			entries[i%30].Value = int64(i)
		}
	}
	f(`{"attrs":{`+strings.Join(keys, ",")+`}}`, m{"attrs": entries})
}

func TestConvertNestedErrors(t *testing.T) {
	s := nestedSchema()
	f := func(data, column string, kind schemas.Kind, value, reason string) {
		t.Helper()
		err := convertErr(t, s, schemas.Strict, data)
		var fe *schemas.FieldError
		if !errors.As(err, &fe) || fe.Column != column || fe.Type != kind || fe.Value != value || !strings.Contains(fe.Reason, reason) {
			t.Fatalf("Convert(%s) = %#v, want column %q type %s value %s reason ~%q", data, err, column, kind, value, reason)
		}
		want := fmt.Sprintf("column %q: expected %s, got %s (", column, kind, value)
		if !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Convert(%s): error %q does not start with %q", data, err, want)
		}
	}
	f(`{"items":[{"sku":"x"},{"sku":"y"},{"sku":"z","price":1.234}]}`, "items[2].price", "decimal(10,2)", "1.234",
		"has 3 digits after the point, more than the scale 2 allows; values are not rounded")
	f(`{"items":[{"qty":"2"}]}`, "items[0].qty", "int32", `"2"`, "not an integer")
	f(`{"items":[[]]}`, "items[0]", "struct<sku:string,qty:int32,price:decimal(10,2)>", "[]", "not a JSON object")
	f(`{"attrs":{"a":1,"b \"x\"":"s"}}`, `attrs["b \"x\""]`, "int64", `"s"`, "not an integer")
	f(`{"geo":{"lat":1,"alt":5}}`, "geo", "struct<lat:float64,lon:float64,when:timestamp>", `{"lat":1,"alt":5}`,
		`has field "alt", which the struct does not declare`)
	f(`{"geo":{"when":"noon"}}`, "geo.when", "timestamp", `"noon"`, "RFC 3339")
	f(`{"geo":[1]}`, "geo", "struct<lat:float64,lon:float64,when:timestamp>", "[1]", "not a JSON object")
	f(`{"tags":"a"}`, "tags", "list<string>", `"a"`, "not a JSON array")
	f(`{"tags":["a",1]}`, "tags[1]", "string", "1", "not a JSON string")
	f(`{"attrs":[1]}`, "attrs", "map<string,int64>", "[1]", "not a JSON object")
	f(`{"price":"1,5"}`, "price", "decimal(10,2)", `"1,5"`, "not a decimal number")
	f(`{"price":123456789}`, "price", "decimal(10,2)", "123456789", "has 9 digits before the point, more than decimal(10,2) allows (8)")

	// Keep: the whole top-level value goes to the rest column.
	r, err := s.Convert([]byte(`{"items":[{"sku":"z","price":1.234}],"tags":["a"],"geo":{"alt":1},"zzz":1}`), testMeta, schemas.Keep)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{nil, []any{"a"}, nil, nil, nil, `{"geo":{"alt":1},"items":[{"sku":"z","price":1.234}],"zzz":1}`}
	if !reflect.DeepEqual(r.Values, want) {
		t.Fatalf("Keep: got %#v\nwant %#v", r.Values, want)
	}
}

func TestConvertDecimal(t *testing.T) {
	// f converts value into a column of kind and checks the result, written
	// at the column's scale, or the reason it does not fit.
	f := func(kind, value, want string) {
		t.Helper()
		s := &schemas.Schema{Columns: []schemas.Column{{Name: "d", Type: schemas.Kind(kind)}}}
		var scale int32
		fmt.Sscanf(kind[strings.Index(kind, ",")+1:], "%d", &scale)
		r, err := s.Convert([]byte(`{"d":`+value+`}`), testMeta, schemas.Strict)
		got := ""
		if err != nil {
			var fe *schemas.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("%s %s: %v", kind, value, err)
			}
			got = "error: " + fe.Reason
		} else {
			got = r.Values[0].(decimal128.Num).ToString(scale)
		}
		if !strings.HasPrefix(got, want) {
			t.Fatalf("%s from %s = %q, want %q", kind, value, got, want)
		}
	}
	d := "decimal(10,2)"
	f(d, "12.34", "12.34")
	f(d, `"12.34"`, "12.34")
	f(d, "0.1", "0.10") // exact: no float rounding
	f(d, "12", "12.00")
	f(d, "-0.01", "-0.01")
	f(d, "1.50", "1.50")
	f(d, "1.230000000000000000000000000000000000000000", "1.23")
	f(d, "12345678.99", "12345678.99")
	f(d, "-12345678.99", "-12345678.99")
	f(d, "1e2", "100.00")
	f(d, "1.5E-1", "0.15")
	f(d, `"+1.5"`, "1.50")
	f(d, `".5"`, "0.50")
	f(d, `"5."`, "5.00")
	f(d, "0.000", "0.00")
	f(d, "-0", "0.00")
	f(d, "0e999999999999", "0.00")
	f(d, `"000012.3"`, "12.30")
	f(d, "1.234", "error: has 3 digits after the point, more than the scale 2 allows")
	f(d, `"1e-3"`, "error: has 3 digits after the point")
	f(d, "123456789", "error: has 9 digits before the point, more than decimal(10,2) allows (8)")
	f(d, "1e8", "error: has 9 digits before the point")
	f(d, "1e999999999999", "error: has 1000000001 digits before the point")
	f(d, "1e-999999999999", "error: has 1000000000 digits after the point")
	for _, bad := range []string{`"abc"`, "true", `"  1"`, `"."`, `"-"`, `"1.2.3"`, `"NaN"`, `"Infinity"`, "[1]", `{}`, `"1e"`, `"0x10"`, `"1_000"`, `""`} {
		f(d, bad, "error: not a decimal number")
	}
	f("decimal(38,10)", `"1234567890123456789012345678.0123456789"`, "1234567890123456789012345678.0123456789")
	f("decimal(38,0)", "-99999999999999999999999999999999999999", "-99999999999999999999999999999999999999")
	f("decimal(38,0)", "999999999999999999999999999999999999999", "error: has 39 digits before the point, more than decimal(38,0) allows (38)")
	f("decimal(38,38)", "0.12345678901234567890123456789012345678", "0.12345678901234567890123456789012345678")
	f("decimal(38,38)", "1", "error: has 1 digit before the point, more than decimal(38,38) allows (0)")
	f("decimal(5,0)", "12345.0", "12345")
}
