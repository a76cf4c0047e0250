package schemas_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/schemas"
)

// arrowValue is the value of row i of arr in the Go type Row uses for it
// (nil for null).
func arrowValue(t *testing.T, arr arrow.Array, i int) any {
	t.Helper()
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Boolean:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Int64:
		return a.Value(i)
	case *array.Float32:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Date32:
		return int32(a.Value(i))
	case *extensions.JSONArray:
		return a.Storage().(*array.String).Value(i)
	case *array.Binary:
		return bytes.Clone(a.Value(i))
	case *array.Decimal128:
		return a.Value(i)
	case *array.Map: // before *array.List, which it embeds
		start, end := a.ValueOffsets(i)
		keys, items := a.Keys().(*array.String), a.Items()
		entries := []schemas.MapEntry{}
		for j := int(start); j < int(end); j++ {
			entries = append(entries, schemas.MapEntry{Key: keys.Value(j), Value: arrowValue(t, items, j)})
		}
		return entries
	case *array.List:
		start, end := a.ValueOffsets(i)
		vals := []any{}
		for j := int(start); j < int(end); j++ {
			vals = append(vals, arrowValue(t, a.ListValues(), j))
		}
		return vals
	case *array.Struct:
		vals := make([]any, a.NumField())
		for f := range vals {
			vals[f] = arrowValue(t, a.Field(f), i)
		}
		return vals
	}
	t.Fatalf("unexpected array type %T", arr)
	return nil
}

func TestBuilderRoundTrip(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)

	s := allKinds()
	s.Columns[0].NotNull = true // s
	inputs := []string{
		`{"s":"x","b":true,"i32":-7,"i64":9007199254740993,"f32":1.5,"f64":-2.25,"t":"2026-11-22T03:04:05.123456+01:00","d":"2026-11-22","j":{"a":[1,2]},"bin":"aGk=","other":1}`,
		`{"s":""}`,
		`{"s":"only","b":"not a bool","t":1795316645123,"j":null}`,
		`{"s":"é\u2028","d":"1900-01-01","bin":"","i32":2147483647}`,
	}
	var rows []schemas.Row
	for i, in := range inputs {
		m := testMeta
		m.Offset = int64(100 + i)
		if i%2 == 0 {
			m.Key = []byte(fmt.Sprint("k", i))
		}
		r, err := s.Convert([]byte(in), m, schemas.Keep)
		if err != nil {
			t.Fatalf("Convert(%s): %v", in, err)
		}
		rows = append(rows, r)
	}

	b := s.NewBuilder(mem)
	defer b.Release()
	check := func(rows []schemas.Row) {
		t.Helper()
		for _, r := range rows {
			b.Append(r)
		}
		if b.Len() != len(rows) {
			t.Fatalf("Len = %d, want %d", b.Len(), len(rows))
		}
		rec := b.NewRecord()
		defer rec.Release()
		if b.Len() != 0 {
			t.Fatalf("Len after NewRecord = %d", b.Len())
		}
		if int(rec.NumRows()) != len(rows) || int(rec.NumCols()) != len(s.Columns) {
			t.Fatalf("record is %dx%d, want %dx%d", rec.NumRows(), rec.NumCols(), len(rows), len(s.Columns))
		}
		if !rec.Schema().Equal(s.ArrowSchema()) {
			t.Fatalf("record schema %v, want %v", rec.Schema(), s.ArrowSchema())
		}
		for c := range s.Columns {
			for i, r := range rows {
				got := arrowValue(t, rec.Column(c), i)
				if !reflect.DeepEqual(got, r.Values[c]) {
					t.Errorf("row %d column %s: arrow has %#v, row has %#v", i, s.Columns[c].Name, got, r.Values[c])
				}
			}
		}
	}
	check(rows)
	// The builder is reused after NewRecord; an empty record is fine too.
	check(rows[1:3])
	check(nil)
}

func TestArrowSchema(t *testing.T) {
	s := allKinds()
	s.Columns[1].NotNull = true
	as := s.ArrowSchema()
	want := []string{
		"s: utf8", "b: bool", "i32: int32", "i64: int64", "f32: float32", "f64: float64",
		"t: timestamp[us, tz=UTC]", "d: date32", "j: extension<arrow.json[storage_type=utf8]>", "bin: binary",
		"rest: extension<arrow.json[storage_type=utf8]>", "_stream: utf8", "_partition: int32", "_offset: int64",
		"_key: utf8", "_timestamp: timestamp[us, tz=UTC]",
	}
	if as.NumFields() != len(want) {
		t.Fatalf("%d fields, want %d", as.NumFields(), len(want))
	}
	for i, f := range as.Fields() {
		if got := f.Name + ": " + f.Type.String(); got != want[i] {
			t.Errorf("field %d = %s, want %s", i, got, want[i])
		}
		if f.Nullable == s.Columns[i].NotNull {
			t.Errorf("field %s nullable = %v, column not_null = %v", f.Name, f.Nullable, s.Columns[i].NotNull)
		}
	}
	ts := as.Field(6).Type.(*arrow.TimestampType)
	if ts.Unit != arrow.Microsecond || ts.TimeZone != "UTC" {
		t.Fatalf("timestamp type %v, want µs UTC", ts)
	}
	if st := as.Field(8).Type.(arrow.ExtensionType).StorageType(); st.ID() != arrow.STRING {
		t.Fatalf("json storage type %v, want utf8", st)
	}
}

func BenchmarkBuilderAppend(b *testing.B) {
	s := schemas.LogSchema()
	r, err := s.Convert([]byte(benchLogLine), testMeta, schemas.Keep)
	if err != nil {
		b.Fatal(err)
	}
	bl := s.NewBuilder(memory.NewGoAllocator())
	defer bl.Release()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLogLine)))
	for i := 0; b.Loop(); i++ {
		bl.Append(r)
		if i%8192 == 8191 {
			bl.NewRecord().Release()
		}
	}
}
