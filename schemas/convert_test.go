package schemas_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/schemas"
)

// allKinds has a column of every Kind, a rest column and every metadata
// column.
func allKinds() *schemas.Schema {
	return &schemas.Schema{Columns: []schemas.Column{
		{Name: "s", Type: schemas.String},
		{Name: "b", Type: schemas.Bool},
		{Name: "i32", Type: schemas.Int32},
		{Name: "i64", Type: schemas.Int64},
		{Name: "f32", Type: schemas.Float32},
		{Name: "f64", Type: schemas.Float64},
		{Name: "t", Type: schemas.Timestamp},
		{Name: "d", Type: schemas.Date},
		{Name: "j", Type: schemas.JSON},
		{Name: "bin", Type: schemas.Binary},
		{Name: "rest", Type: schemas.JSON},
		{Name: "_stream", Type: schemas.String},
		{Name: "_partition", Type: schemas.Int32},
		{Name: "_offset", Type: schemas.Int64},
		{Name: "_key", Type: schemas.String},
		{Name: "_timestamp", Type: schemas.Timestamp},
	}, TimeColumn: "t", RestColumn: "rest"}
}

// testMeta is the source position every conversion in these tests gets; its
// timestamp has nanoseconds, which rows keep only to the microsecond.
var testMeta = schemas.Meta{
	Stream: "logs", Partition: 3, Offset: 42,
	Timestamp: time.Date(2026, 11, 22, 10, 0, 0, 500_000_999, time.FixedZone("CET", 3600)),
}

const metaTime = "2026-11-22T09:00:00.500000Z" // testMeta.Timestamp in UTC, in µs

// render shows a row as "@<row time> col=value ..." (null columns left out),
// and fails the test if a value's Go type is not the one Row documents for
// its column's kind.
func render(t *testing.T, s *schemas.Schema, r schemas.Row) string {
	t.Helper()
	if len(r.Values) != len(s.Columns) {
		t.Fatalf("row has %d values for %d columns", len(r.Values), len(s.Columns))
	}
	out := []string{"@" + fmtMicros(r.Time.UnixMicro())}
	if r.Time.Location() != time.UTC {
		t.Errorf("row time %v is not UTC", r.Time)
	}
	for i, c := range s.Columns {
		v := r.Values[i]
		if v == nil {
			continue
		}
		var text string
		ok := true
		switch c.Type {
		case schemas.String:
			var x string
			x, ok = v.(string)
			text = fmt.Sprintf("%q", x)
		case schemas.JSON:
			text, ok = v.(string)
		case schemas.Bool:
			_, ok = v.(bool)
		case schemas.Int32:
			_, ok = v.(int32)
		case schemas.Int64:
			_, ok = v.(int64)
		case schemas.Float32:
			_, ok = v.(float32)
		case schemas.Float64:
			_, ok = v.(float64)
		case schemas.Timestamp:
			var us int64
			us, ok = v.(int64)
			text = fmtMicros(us)
		case schemas.Date:
			var days int32
			days, ok = v.(int32)
			text = time.Unix(int64(days)*86400, 0).UTC().Format(time.DateOnly)
		case schemas.Binary:
			var b []byte
			b, ok = v.([]byte)
			text = fmt.Sprintf("%q", b)
		}
		if !ok {
			t.Errorf("column %s (%s) holds a %T", c.Name, c.Type, v)
		}
		if text == "" {
			text = fmt.Sprint(v)
		}
		out = append(out, c.Name+"="+text)
	}
	return strings.Join(out, " ")
}

func fmtMicros(us int64) string {
	return time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z")
}

func TestConvertLogSchema(t *testing.T) {
	s := schemas.LogSchema()
	f := func(mode schemas.Mode, data, want string) {
		t.Helper()
		r, err := s.Convert([]byte(data), testMeta, mode)
		if err != nil {
			t.Fatalf("Convert(%s): %v", data, err)
		}
		if got := render(t, s, r); got != want {
			t.Fatalf("Convert(%s)\n got %s\nwant %s", data, got, want)
		}
	}
	const pos = " _partition=3 _offset=42"
	for _, mode := range []schemas.Mode{schemas.Strict, schemas.Keep} {
		// Every well-known field.
		f(mode, `{"ts":"2026-11-22T03:04:05.123456Z","level":"info","service":"api","host":"h1","message":"hello"}`,
			`@2026-11-22T03:04:05.123456Z ts=2026-11-22T03:04:05.123456Z level="info" service="api" host="h1" message="hello"`+pos)
		// RFC 3339 with offsets is stored as UTC; nanoseconds are cut to µs.
		f(mode, `{"ts":"2026-11-22T05:04:05.5+02:00"}`, `@2026-11-22T03:04:05.500000Z ts=2026-11-22T03:04:05.500000Z`+pos)
		f(mode, `{"ts":"2026-11-21T22:04:05-05:00"}`, `@2026-11-22T03:04:05.000000Z ts=2026-11-22T03:04:05.000000Z`+pos)
		f(mode, `{"ts":"2026-11-22T03:04:05.123456789Z"}`, `@2026-11-22T03:04:05.123456Z ts=2026-11-22T03:04:05.123456Z`+pos)
		// Epoch numbers: the unit follows from the magnitude.
		f(mode, `{"ts":1795316645}`, `@2026-11-22T03:04:05.000000Z ts=2026-11-22T03:04:05.000000Z`+pos)
		f(mode, `{"ts":1795316645.123456}`, `@2026-11-22T03:04:05.123456Z ts=2026-11-22T03:04:05.123456Z`+pos)
		f(mode, `{"ts":1795316645.5}`, `@2026-11-22T03:04:05.500000Z ts=2026-11-22T03:04:05.500000Z`+pos)
		f(mode, `{"ts":1795316645123}`, `@2026-11-22T03:04:05.123000Z ts=2026-11-22T03:04:05.123000Z`+pos)
		f(mode, `{"ts":1795316645123.5}`, `@2026-11-22T03:04:05.123500Z ts=2026-11-22T03:04:05.123500Z`+pos)
		f(mode, `{"ts":1795316645123456}`, `@2026-11-22T03:04:05.123456Z ts=2026-11-22T03:04:05.123456Z`+pos)
		f(mode, `{"ts":1795316645123456000}`, `@2026-11-22T03:04:05.123456Z ts=2026-11-22T03:04:05.123456Z`+pos)
		f(mode, `{"ts":1.795316645e9}`, `@2026-11-22T03:04:05.000000Z ts=2026-11-22T03:04:05.000000Z`+pos)
		f(mode, `{"ts":0}`, `@1970-01-01T00:00:00.000000Z ts=1970-01-01T00:00:00.000000Z`+pos)
		f(mode, `{"ts":-1.5}`, `@1969-12-31T23:59:58.500000Z ts=1969-12-31T23:59:58.500000Z`+pos)
		// A missing or null event time takes the record time.
		f(mode, `{"message":"m"}`, `@`+metaTime+` ts=`+metaTime+` message="m"`+pos)
		f(mode, `{"ts":null,"level":null}`, `@`+metaTime+` ts=`+metaTime+pos)
		f(mode, `{}`, `@`+metaTime+` ts=`+metaTime+pos)
		// Unknown fields land in attrs, whatever their type.
		f(mode, `{"message":"m","user":"u1","n":1.50,"ok":true,"tags":["a", "b"],"nested":{"x":null}}`,
			`@`+metaTime+` ts=`+metaTime+` message="m" attrs={"n":1.50,"nested":{"x":null},"ok":true,"tags":["a","b"],"user":"u1"}`+pos)
		// A data attrs object is merged in, not nested; a top-level field wins.
		f(mode, `{"attrs":{"a":1,"b":"x"},"user":"u"}`, `@`+metaTime+` ts=`+metaTime+` attrs={"a":1,"b":"x","user":"u"}`+pos)
		f(mode, `{"attrs":{"k":1},"k":2}`, `@`+metaTime+` ts=`+metaTime+` attrs={"k":2}`+pos)
		f(mode, `{"attrs":{"level":"debug"},"level":"info"}`, `@`+metaTime+` ts=`+metaTime+` level="info" attrs={"level":"debug"}`+pos)
		// A non-object attrs is kept under its name; null and {} add nothing.
		f(mode, `{"attrs":"str"}`, `@`+metaTime+` ts=`+metaTime+` attrs={"attrs":"str"}`+pos)
		f(mode, `{"attrs":[1,2]}`, `@`+metaTime+` ts=`+metaTime+` attrs={"attrs":[1,2]}`+pos)
		f(mode, `{"attrs":null}`, `@`+metaTime+` ts=`+metaTime+pos)
		f(mode, `{"attrs":{}}`, `@`+metaTime+` ts=`+metaTime+pos)
		// Strings are decoded, escapes and all.
		f(mode, `{"message":"a\"b\u00e9\n<>"}`, `@`+metaTime+` ts=`+metaTime+` message="a\"bé\n<>"`+pos)
		f(mode, ` {"message" : "spaced"} `, `@`+metaTime+` ts=`+metaTime+` message="spaced"`+pos)
	}

	// Keep: a field that does not fit its column leaves it null and is kept,
	// as it was, in attrs; an unusable time falls back to the record time.
	f(schemas.Keep, `{"level":5,"message":"m"}`, `@`+metaTime+` ts=`+metaTime+` message="m" attrs={"level":5}`+pos)
	f(schemas.Keep, `{"ts":"yesterday","host":"h"}`, `@`+metaTime+` ts=`+metaTime+` host="h" attrs={"ts":"yesterday"}`+pos)
	f(schemas.Keep, `{"ts":true}`, `@`+metaTime+` ts=`+metaTime+` attrs={"ts":true}`+pos)
	f(schemas.Keep, `{"ts":"2026-11-22 03:04:05"}`, `@`+metaTime+` ts=`+metaTime+` attrs={"ts":"2026-11-22 03:04:05"}`+pos)
	f(schemas.Keep, `{"message":{"text":"m"},"service":["a"],"x":1}`,
		`@`+metaTime+` ts=`+metaTime+` attrs={"message":{"text":"m"},"service":["a"],"x":1}`+pos)
	// The misfit wins over a same-named key of the data's own attrs.
	f(schemas.Keep, `{"attrs":{"level":"a"},"level":7}`, `@`+metaTime+` ts=`+metaTime+` attrs={"level":7}`+pos)
	// Keep: data that is not an object is kept whole as attrs._data.
	f(schemas.Keep, `[1, 2]`, `@`+metaTime+` ts=`+metaTime+` attrs={"_data":[1,2]}`+pos)
	f(schemas.Keep, ` "plain text" `, `@`+metaTime+` ts=`+metaTime+` attrs={"_data":"plain text"}`+pos)
	f(schemas.Keep, `42`, `@`+metaTime+` ts=`+metaTime+` attrs={"_data":42}`+pos)
	f(schemas.Keep, `null`, `@`+metaTime+` ts=`+metaTime+` attrs={"_data":null}`+pos)
}

// convertErr converts data and returns the error, failing if there is none.
func convertErr(t *testing.T, s *schemas.Schema, mode schemas.Mode, data string) error {
	t.Helper()
	r, err := s.Convert([]byte(data), testMeta, mode)
	if err == nil {
		t.Fatalf("Convert(%s) = %v, want an error", data, r.Values)
	}
	return err
}

func TestConvertFieldErrors(t *testing.T) {
	// f checks that data fails with a FieldError for column, type, value and
	// a reason containing reason, and that the message names all of them.
	f := func(s *schemas.Schema, mode schemas.Mode, data, column string, kind schemas.Kind, value, reason string) {
		t.Helper()
		err := convertErr(t, s, mode, data)
		var fe *schemas.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("Convert(%s): want a *FieldError, got %T: %v", data, err, err)
		}
		if fe.Column != column || fe.Type != kind || fe.Value != value || !strings.Contains(fe.Reason, reason) {
			t.Fatalf("Convert(%s): got %+v, want column %q type %s value %s reason ~%q", data, *fe, column, kind, value, reason)
		}
		want := fmt.Sprintf("column %q: expected %s, got %s (", column, kind, value)
		if !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Convert(%s): error %q does not start with %q", data, err, want)
		}
	}
	log, all := schemas.LogSchema(), allKinds()
	strict := schemas.Strict
	f(log, strict, `{"level":5}`, "level", schemas.String, "5", "not a JSON string")
	f(log, strict, `{"message":{"a":1}}`, "message", schemas.String, `{"a":1}`, "not a JSON string")
	f(log, strict, `{"ts":"yesterday"}`, "ts", schemas.Timestamp, `"yesterday"`, "RFC 3339")
	f(log, strict, `{"ts":true}`, "ts", schemas.Timestamp, "true", "RFC 3339")
	f(log, strict, `{"ts":"2026-11-22"}`, "ts", schemas.Timestamp, `"2026-11-22"`, "RFC 3339")
	f(log, strict, `{"ts":[1]}`, "ts", schemas.Timestamp, "[1]", "RFC 3339")
	long := strings.Repeat("x", 100)
	f(log, strict, `{"host":["`+long+`"]}`, "host", schemas.String, `["`+long[:62]+"…", "not a JSON string")

	f(all, strict, `{"b":"true"}`, "b", schemas.Bool, `"true"`, "not true or false")
	f(all, strict, `{"b":1}`, "b", schemas.Bool, "1", "not true or false")
	f(all, strict, `{"i32":2147483648}`, "i32", schemas.Int32, "2147483648", "out of int32 range")
	f(all, strict, `{"i32":-2147483649}`, "i32", schemas.Int32, "-2147483649", "out of int32 range")
	f(all, strict, `{"i32":1.5}`, "i32", schemas.Int32, "1.5", "not an integer")
	f(all, strict, `{"i64":"5"}`, "i64", schemas.Int64, `"5"`, "not an integer")
	f(all, strict, `{"i64":1e3}`, "i64", schemas.Int64, "1e3", "not an integer")
	f(all, strict, `{"i64":9223372036854775808}`, "i64", schemas.Int64, "9223372036854775808", "not an integer")
	f(all, strict, `{"f32":"1.5"}`, "f32", schemas.Float32, `"1.5"`, "not a number")
	f(all, strict, `{"f64":1e400}`, "f64", schemas.Float64, "1e400", "not a number")
	f(all, strict, `{"d":"2026-13-01"}`, "d", schemas.Date, `"2026-13-01"`, "YYYY-MM-DD")
	f(all, strict, `{"d":"2026-11-22T00:00:00Z"}`, "d", schemas.Date, `"2026-11-22T00:00:00Z"`, "YYYY-MM-DD")
	f(all, strict, `{"d":20779}`, "d", schemas.Date, "20779", "YYYY-MM-DD")
	f(all, strict, `{"bin":"not base64!"}`, "bin", schemas.Binary, `"not base64!"`, "base64")
	f(all, strict, `{"bin":[1,2]}`, "bin", schemas.Binary, "[1,2]", "base64")
	f(all, strict, `{"s":1}`, "s", schemas.String, "1", "not a JSON string")

	// Not null: a missing, null or (in Keep mode too) misfit value fails.
	nn := &schemas.Schema{Columns: []schemas.Column{
		{Name: "id", Type: schemas.Int64, NotNull: true},
		{Name: "rest", Type: schemas.JSON},
	}, RestColumn: "rest"}
	for _, mode := range []schemas.Mode{schemas.Strict, schemas.Keep} {
		f(nn, mode, `{"other":1}`, "id", schemas.Int64, "null", "not null")
		f(nn, mode, `{"id":null}`, "id", schemas.Int64, "null", "not null")
	}
	f(nn, schemas.Keep, `{"id":"seven"}`, "id", schemas.Int64, "null", "not null")
	f(nn, strict, `{"id":"seven"}`, "id", schemas.Int64, `"seven"`, "not an integer")

	// Keep without a rest column has nowhere to keep a misfit.
	norest := &schemas.Schema{Columns: []schemas.Column{{Name: "n", Type: schemas.Int32}}}
	f(norest, schemas.Keep, `{"n":"x"}`, "n", schemas.Int32, `"x"`, "not an integer")
}

func TestConvertNotAnObject(t *testing.T) {
	f := func(s *schemas.Schema, mode schemas.Mode, data string) {
		t.Helper()
		err := convertErr(t, s, mode, data)
		if !strings.Contains(err.Error(), "data is not a JSON object") {
			t.Fatalf("Convert(%s): error %q does not say the data is not an object", data, err)
		}
	}
	norest := &schemas.Schema{Columns: []schemas.Column{{Name: "n", Type: schemas.Int32}}}
	for _, data := range []string{`[1]`, `"s"`, `1`, `null`, `true`, `{`, `{"a":1}x`, ``, `nope`} {
		f(schemas.LogSchema(), schemas.Strict, data)
		f(norest, schemas.Keep, data)
	}
	// Keep mode keeps non-object values, but not bytes that are not JSON.
	for _, data := range []string{`{`, `{"a":1}x`, ``, `nope`, `{"a":1}{"b":2}`} {
		f(schemas.LogSchema(), schemas.Keep, data)
	}
}

func TestConvertAllKinds(t *testing.T) {
	s := allKinds()
	f := func(mode schemas.Mode, m schemas.Meta, data, want string) {
		t.Helper()
		r, err := s.Convert([]byte(data), m, mode)
		if err != nil {
			t.Fatalf("Convert(%s): %v", data, err)
		}
		if got := render(t, s, r); got != want {
			t.Fatalf("Convert(%s)\n got %s\nwant %s", data, got, want)
		}
	}
	withKey := testMeta
	withKey.Key = []byte("user-7")
	emptyKey := testMeta
	emptyKey.Key = []byte{}
	const pos = ` _stream="logs" _partition=3 _offset=42`
	const recTime = ` _timestamp=` + metaTime
	hello := base64.StdEncoding.EncodeToString([]byte("hello\x00\xff"))
	for _, mode := range []schemas.Mode{schemas.Strict, schemas.Keep} {
		f(mode, withKey, `{"s":"x","b":true,"i32":-2147483648,"i64":9007199254740993,"f32":1.5,"f64":-2.25e10,`+
			`"t":"2026-11-22T03:04:05.000001Z","d":"2026-11-22","j":{"a": [1, 2.50, "x"]},"bin":"`+hello+`"}`,
			`@2026-11-22T03:04:05.000001Z s="x" b=true i32=-2147483648 i64=9007199254740993 f32=1.5 f64=-2.25e+10 `+
				`t=2026-11-22T03:04:05.000001Z d=2026-11-22 j={"a":[1,2.50,"x"]} bin="hello\x00\xff"`+pos+` _key="user-7"`+recTime)
		f(mode, testMeta, `{"b":false,"i32":2147483647,"i64":-9223372036854775808,"f32":0,"f64":1,"d":"1969-12-31","j":"str","bin":""}`,
			`@`+metaTime+` b=false i32=2147483647 i64=-9223372036854775808 f32=0 f64=1 t=`+metaTime+
				` d=1969-12-31 j="str" bin=""`+pos+recTime)
		// A JSON column takes any JSON value; null is SQL NULL.
		f(mode, testMeta, `{"j":[]}`, `@`+metaTime+` t=`+metaTime+` j=[]`+pos+recTime)
		f(mode, testMeta, `{"j":12.0}`, `@`+metaTime+` t=`+metaTime+` j=12.0`+pos+recTime)
		f(mode, testMeta, `{"j":null,"s":null}`, `@`+metaTime+` t=`+metaTime+pos+recTime)
		// A nil key is NULL, an empty one is "".
		f(mode, emptyKey, `{}`, `@`+metaTime+` t=`+metaTime+pos+` _key=""`+recTime)
		f(mode, testMeta, `{"d":"0001-01-01","f32":-3.25}`, `@`+metaTime+` f32=-3.25 t=`+metaTime+` d=0001-01-01`+pos+recTime)
		// Unknown fields go to the rest column.
		f(mode, testMeta, `{"zzz":1}`, `@`+metaTime+` t=`+metaTime+` rest={"zzz":1}`+pos+recTime)
	}
	// Keep: every misfit is kept in rest, the fitting fields are not.
	f(schemas.Keep, withKey, `{"s":1,"b":"yes","i32":4294967296,"i64":1.5,"f32":"x","f64":[],"t":"noon","d":"22/11/2026","bin":"%%","j":{"ok":1}}`,
		`@`+metaTime+` t=`+metaTime+` j={"ok":1} rest={"b":"yes","bin":"%%","d":"22/11/2026","f32":"x","f64":[],"i32":4294967296,"i64":1.5,"s":1,"t":"noon"}`+
			pos+` _key="user-7"`+recTime)
}

// Regression test, fixed: a JSON column or the rest column can hold bytes that are not UTF-8
// (json.Valid and json.Compact accept them inside strings, and json.Marshal
// of a RawMessage copies them) or an escaped lone surrogate like "\ud800";
// a _key column holds the Kafka key's raw bytes. DuckDB refuses such Parquet
// files ("Invalid JSON found in Parquet file ... invalid UTF-8 encoding",
// "no low surrogate in string", "value \xFF is not valid UTF8!"), so one odd
// record makes every query reading the column of that file fail. String
// columns are fine: json.Unmarshal into a string substitutes U+FFFD.
// Fix: in parseValue(JSON) and for the rest column's values, when the text is
// not utf8.Valid or contains a \u escape, normalize it (decode with
// UseNumber into any and re-encode, which substitutes U+FFFD); for _key use
// strings.ToValidUTF8(string(m.Key), "\uFFFD").
func TestConvertEmitsValidUTF8(t *testing.T) {
	s := allKinds()
	binKey := testMeta
	binKey.Key = []byte{0xff, 0x00, 'k'}
	f := func(data string, m schemas.Meta) {
		t.Helper()
		for _, mode := range []schemas.Mode{schemas.Strict, schemas.Keep} {
			r, err := s.Convert([]byte(data), m, mode)
			if err != nil {
				continue // refusing the record is fine too
			}
			for i, c := range s.Columns {
				v, ok := r.Values[i].(string)
				if ok && (!utf8.ValidString(v) || strings.Contains(strings.ToLower(v), `\ud800`)) {
					t.Errorf("Convert(%q) mode %d: column %s = %q is not valid UTF-8 text (DuckDB cannot read the file)", data, mode, c.Name, v)
				}
			}
		}
	}
	f("{\"unknown\":\"\xff\xfe\"}", testMeta)
	f("{\"j\":{\"a\":\"\xc3\x28\"}}", testMeta)
	f(`{"j":"\ud800"}`, testMeta)
	f(`{"other":"\uD800x"}`, testMeta)
	f(`{}`, binKey)
}

// Regression test, fixed: an epoch number whose microseconds do not fit an int64 (nanoseconds
// from about 9.3e21 up) is converted with int64(f/1e3), which Go leaves
// implementation-defined (on amd64 it gives math.MinInt64): the row silently
// gets a time about 290,000 years BC, which lands in a dt=-290308-... Hive
// partition. It should be refused like any other value that does not fit.
// Fix: in parseTimestamp, return "out of range" for a number whose µs value
// is not within, say, years 0001-9999 (what RFC 3339 strings can express),
// before converting the float to int64.
func TestConvertTimestampOutOfRange(t *testing.T) {
	s := schemas.LogSchema()
	f := func(data, value string) {
		t.Helper()
		r, err := s.Convert([]byte(data), testMeta, schemas.Strict)
		var fe *schemas.FieldError
		if !errors.As(err, &fe) || fe.Column != "ts" || fe.Value != value {
			t.Errorf("Strict Convert(%s) = %s, %v; want a FieldError for ts", data, fmtMicros(r.Time.UnixMicro()), err)
		}
		// Keep falls back to the record time and keeps the value in attrs.
		r, err = s.Convert([]byte(data), testMeta, schemas.Keep)
		want := `@` + metaTime + ` ts=` + metaTime + ` attrs={"ts":` + value + `} _partition=3 _offset=42`
		if err != nil {
			t.Errorf("Keep Convert(%s): %v", data, err)
		} else if got := render(t, s, r); got != want {
			t.Errorf("Keep Convert(%s)\n got %s\nwant %s", data, got, want)
		}
	}
	f(`{"ts":1e30}`, "1e30")
	f(`{"ts":-1e30}`, "-1e30")
	f(`{"ts":9300000000000000000000}`, "9300000000000000000000")
}

// Regression test, fixed: a number beyond float32's range is stored as +Inf or -Inf, while an
// int32 column refuses an out-of-range integer ("out of int32 range"); in
// Keep mode the value is lost instead of being kept in the rest column.
// Fix: in parseValue, when k == Float32 and math.IsInf(float64(float32(f)), 0),
// return "out of float32 range".
func TestConvertFloat32OutOfRange(t *testing.T) {
	s := allKinds()
	for _, v := range []string{"1e39", "-3.5e38"} {
		data := `{"f32":` + v + `}`
		r, err := s.Convert([]byte(data), testMeta, schemas.Strict)
		var fe *schemas.FieldError
		if !errors.As(err, &fe) || fe.Column != "f32" || fe.Value != v {
			t.Errorf("Strict Convert(%s) = %v, %v; want a FieldError for f32", data, r.Values, err)
		}
	}
	// In range: the largest float32 and values that merely lose precision.
	for _, v := range []string{"3.4028234663852886e38", "1e-50", "0.1"} {
		if _, err := s.Convert([]byte(`{"f32":`+v+`}`), testMeta, schemas.Strict); err != nil {
			t.Errorf("f32 %s: %v", v, err)
		}
	}
}
