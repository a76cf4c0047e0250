package schemas_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/schemas"
)

// benchLogLine is a typical structured log line (254 bytes).
const benchLogLine = `{"ts":"2026-11-22T03:04:05.123456Z","level":"info","service":"checkout",` +
	`"host":"web-7f9c4d-x2k8p","message":"order placed","attrs":{"order_id":"ord_8f3a2c91",` +
	`"user_id":48213,"amount":129.95,"currency":"EUR"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`

// FuzzConvert checks that Convert never panics, that whatever it returns fits
// the schema (the builder takes it), that Strict success implies the same row
// in Keep mode, and that in Keep mode with LogSchema any valid JSON converts
// and no field of an object is dropped.
func FuzzConvert(f *testing.F) {
	for _, seed := range []string{
		benchLogLine,
		`{"ts":1795316645.5,"level":"warn","message":"disk 91% full","disk":"/dev/sda1"}`,
		`{"ts":"2026-11-22T05:04:05+02:00","level":5,"attrs":{"a":null,"b":[1,{"c":2}]}}`,
		`{"ts":1795316645123456789,"attrs":"x","_offset":7}`,
		`{"s":"x","b":true,"i32":2147483648,"i64":-1,"f32":1e39,"f64":2.5,"t":"noon","d":"2026-02-30","j":[1],"bin":"aGk="}`,
		`[1,"two",null]`,
		`"just a string"`,
		`null`,
		`{"message":"caf\u00e9 \ud83d\ude00","ts":null}`,
		`{"a":{"b":{"c":{}}}}`,
		`{not json`,
		``,
		everyTypeRows[0],
		`{"items":[{"sku":"x","qty":2,"price":"9.99"},null],"geo":{"lat":1,"alt":2},"attrs":{"a":1,"a":"x"},"price":1e-3}`,
		`{"a":1,"a":2,"attrs":{"b":1,"b":2,"a":3},"level":[],"\u0061":4,"\ud800":5,"\ufffd":6}`,
	} {
		f.Add([]byte(seed))
	}
	log, all, nested, every := schemas.LogSchema(), allKinds(), nestedSchema(), everyType()
	every.Columns[0].NotNull = false // valid JSON always converts in Keep mode
	parted := partSchema("region", "n", "ok", "d", "hour(ev)")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, s := range []*schemas.Schema{log, all, nested, every, parted} {
			strict, serr := s.Convert(data, testMeta, schemas.Strict)
			keep, kerr := s.Convert(data, testMeta, schemas.Keep)
			for _, r := range []schemas.Row{strict, keep} {
				if r.Values == nil {
					continue
				}
				render(t, s, r) // checks every value's Go type
				b := s.NewBuilder(memory.DefaultAllocator)
				b.Append(r)
				b.NewRecord().Release()
				b.Release()
				if ti := colIndex(s, s.TimeColumn); ti >= 0 && r.Values[ti] != r.Time.UnixMicro() {
					t.Fatalf("row time %v differs from time column %v", r.Time, r.Values[ti])
				}
				checkPartitionPath(t, s.PartitionPath(r))
			}
			if serr == nil && (kerr != nil || !reflect.DeepEqual(strict, keep)) {
				t.Fatalf("Convert(%q): Strict gave %v, Keep gave %v, %v", data, strict.Values, keep.Values, kerr)
			}
			if json.Valid(data) && kerr != nil {
				t.Fatalf("Keep Convert(%q) of valid JSON: %v", data, kerr)
			}
		}
		if json.Valid(data) {
			r, _ := log.Convert(data, testMeta, schemas.Keep)
			checkNothingDropped(t, log, data, r)
			checkRestAsBefore(t, log, data, r)
		}
	})
}

// checkRestAsBefore checks the rest column of r, converted from data in Keep
// mode, against the way Convert built it before its single-pass splitter:
// decode into a map, collect the fields no column names (and those named
// like metadata columns), merge the data's own rest object without
// overriding, then override with the misfits; compared as decoded JSON.
func checkRestAsBefore(t *testing.T, s *schemas.Schema, data []byte, r schemas.Row) {
	t.Helper()
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil || fields == nil {
		fields = map[string]json.RawMessage{"_data": data}
	}
	rest := map[string]json.RawMessage{}
	for k, v := range fields {
		if i := colIndex(s, k); i < 0 || strings.HasPrefix(k, "_") {
			rest[k] = v
		}
	}
	if own, ok := fields[s.RestColumn]; ok {
		var obj map[string]json.RawMessage
		if json.Unmarshal(own, &obj) == nil && obj != nil {
			for k, v := range obj {
				if _, dup := rest[k]; !dup {
					rest[k] = v
				}
			}
		} else if string(own) != "null" {
			rest[s.RestColumn] = own
		}
	}
	for _, c := range s.Columns {
		v, ok := fields[c.Name]
		if !ok || c.Name == s.RestColumn || strings.HasPrefix(c.Name, "_") {
			continue
		}
		// A misfit: the field alone does not convert.
		if _, err := s.Convert([]byte(`{"`+c.Name+`":`+string(v)+`}`), testMeta, schemas.Strict); err != nil {
			rest[c.Name] = v
		}
	}
	var want any
	if len(rest) > 0 {
		b, _ := json.Marshal(rest)
		want = decodeJSON(t, b)
	}
	var got any
	if v := r.Values[colIndex(s, s.RestColumn)]; v != nil {
		got = decodeJSON(t, []byte(v.(string)))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Convert(%q): rest column\n got %v\nwant %v", data, got, want)
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return v
}

// checkPartitionPath checks that p is a usable object key prefix: segments
// of name=value, none empty, starting with '.', holding a backslash or
// control character, or longer than a file name may be.
func checkPartitionPath(t *testing.T, p string) {
	t.Helper()
	for _, seg := range strings.Split(p, "/") {
		name, _, ok := strings.Cut(seg, "=")
		if !ok || name == "" || strings.HasPrefix(seg, ".") || len(seg) > 255 || strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == '\\' || r == 0x7f }) {
			t.Fatalf("bad partition path %q", p)
		}
	}
}

// checkNothingDropped checks that every non-null field of data is in its
// column or in the rest column, and that the rest column is a JSON object.
func checkNothingDropped(t *testing.T, s *schemas.Schema, data []byte, r schemas.Row) {
	t.Helper()
	rest := map[string]json.RawMessage{}
	if v := r.Values[colIndex(s, s.RestColumn)]; v != nil {
		if err := json.Unmarshal([]byte(v.(string)), &rest); err != nil || rest == nil {
			t.Fatalf("Convert(%q): rest column %q is not a JSON object", data, v)
		}
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil || fields == nil {
		if _, ok := rest["_data"]; !ok {
			t.Fatalf("Convert(%q): non-object data not kept as _data: %v", data, rest)
		}
		return
	}
	for k, v := range fields {
		i := colIndex(s, k)
		switch {
		case string(v) == "null" || k == "_partition" || k == "_offset":
		case k == s.RestColumn:
			var own map[string]json.RawMessage
			if json.Unmarshal(v, &own) == nil && own != nil {
				for k2 := range own {
					if _, ok := rest[k2]; !ok {
						t.Fatalf("Convert(%q): attrs field %q dropped", data, k2)
					}
				}
			} else if _, ok := rest[k]; !ok {
				t.Fatalf("Convert(%q): non-object attrs dropped", data)
			}
		case i >= 0 && r.Values[i] != nil:
		default:
			if _, ok := rest[k]; !ok {
				t.Fatalf("Convert(%q): field %q dropped (rest %v)", data, k, rest)
			}
		}
	}
}

func colIndex(s *schemas.Schema, name string) int {
	for i, c := range s.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func BenchmarkConvertLog(b *testing.B) {
	s := schemas.LogSchema()
	data := []byte(benchLogLine)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Convert(data, testMeta, schemas.Keep); err != nil {
			b.Fatal(err)
		}
	}
}
