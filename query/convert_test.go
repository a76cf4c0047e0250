package query

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONEncoding(t *testing.T) {
	e, _, _ := newTestEngine(t, Config{})
	res := mustQuery(t, e, `select
		TIMESTAMP '2026-11-22 03:04:05.123456' as ts,
		TIMESTAMPTZ '2026-11-22 03:04:05+02' as tstz,
		TIMESTAMP_NS '2026-11-22 03:04:05.123456789' as tsns,
		DATE '2026-11-22' as d,
		TIME '12:34:56.5' as tm,
		'\x00\xFFhi'::BLOB as b,
		[1, 2, NULL] as l,
		{'a': 1, 'b': 'x', 'd': DATE '2026-01-02'} as s,
		MAP {'k': 1} as m,
		NULL as n,
		'{"x":[1,true,null]}'::JSON as j,
		'f47ac10b-58cc-4372-a567-0e02b2c3d479'::UUID as u,
		12.345::DECIMAL(10,3) as dec,
		170141183460469231731687303715884105727::HUGEINT as h,
		'nan'::DOUBLE as nan,
		'-inf'::DOUBLE as ninf,
		0.1::FLOAT as f,
		1.5::DOUBLE as dbl,
		INTERVAL 1 DAY as iv,
		[DATE '2026-01-01'] as dl,
		true as bo,
		9007199254740993::BIGINT as big,
		'<tag> & "q"' as str`)
	got, err := json.Marshal(res.Rows)
	if err != nil {
		t.Fatal(err)
	}
	want := `[["2026-11-22T03:04:05.123456Z","2026-11-22T01:04:05Z","2026-11-22T03:04:05.123456789Z",` +
		`"2026-11-22","12:34:56.5","AP9oaQ==",[1,2,null],{"a":1,"b":"x","d":"2026-01-02"},{"k":1},null,` +
		`{"x":[1,true,null]},"f47ac10b-58cc-4372-a567-0e02b2c3d479",12.345,170141183460469231731687303715884105727,` +
		`"NaN","-Infinity",0.1,1.5,{"days":1,"micros":0,"months":0},["2026-01-01"],true,9007199254740993,` +
		`"\u003ctag\u003e \u0026 \"q\""]]`
	if string(got) != want {
		t.Fatalf("rows JSON\n got %s\nwant %s", got, want)
	}
	var types []string
	for _, c := range res.Columns {
		types = append(types, c.Name+":"+c.Type)
	}
	wantTypes := "ts:TIMESTAMP tstz:TIMESTAMPTZ tsns:TIMESTAMP_NS d:DATE tm:TIME b:BLOB l:INTEGER[] " +
		"s:STRUCT(\"a\" INTEGER, \"b\" VARCHAR, \"d\" DATE) m:MAP(VARCHAR, INTEGER) n:INTEGER j:JSON u:UUID dec:DECIMAL(10,3) " +
		"h:HUGEINT nan:DOUBLE ninf:DOUBLE f:FLOAT dbl:DOUBLE iv:INTERVAL dl:DATE[] bo:BOOLEAN big:BIGINT str:VARCHAR"
	if g := strings.Join(types, " "); g != wantTypes {
		t.Fatalf("column types\n got %s\nwant %s", g, wantTypes)
	}
}
