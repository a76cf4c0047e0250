package sluicefn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const envFast = `{"stream":"logs","partition":3,"offset":17,"key":"k\"1","timestamp":"2026-11-22T09:30:00.123456789Z","headers":{"h":"v"},"data":{"a":{"b":"x\u00e9"},"n":-5,"f":1.5,"t":true}}`

func TestDecode(t *testing.T) {
	general := `{ "data-ish": 1, "offset": 17, "partition": 3, "stream": "logs", "key": "k\"1", "timestamp": "2026-11-22T10:30:00.123456789+01:00", "headers": {"h": "v"}, "data": {"a":{"b":"x\u00e9"},"n":-5,"f":1.5,"t":true} }`
	for _, line := range []string{envFast, general} {
		var d decoder
		var r Record
		if err := d.decode([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		ts := time.Date(2026, 11, 22, 9, 30, 0, 123456789, time.UTC)
		if r.Stream != "logs" || r.Partition != 3 || r.Offset != 17 || string(r.Key) != `k"1` || !r.Timestamp().Equal(ts) {
			t.Fatalf("%s: %+v %v", line, r, r.Timestamp())
		}
		if h, ok := r.Header("h"); !ok || h != "v" || r.Headers()["h"] != "v" {
			t.Fatalf("headers %q", r.headers)
		}
		if s, ok := r.String("a", "b"); !ok || s != "xé" {
			t.Fatalf("a.b = %q %v", s, ok)
		}
		if n, ok := r.Int("n"); !ok || n != -5 {
			t.Fatal("n")
		}
		if f, ok := r.Float("f"); !ok || f != 1.5 {
			t.Fatal("f")
		}
		if b, ok := r.Bool("t"); !ok || !b {
			t.Fatal("t")
		}
		if r.Get("missing") != nil || r.Get("a", "b", "c") != nil {
			t.Fatal("missing members found")
		}
		var v struct{ N int }
		if err := r.Unmarshal(&v); err != nil || v.N != -5 {
			t.Fatal(err)
		}
	}
}

func TestDecodeKeys(t *testing.T) {
	var d decoder
	var r Record
	line := `{"stream":"s","partition":0,"offset":1,"key":"\ufffdk","key_base64":"/2s=","timestamp":"2026-11-22T09:30:00.000000000Z","headers":{},"data":null}`
	if err := d.decode([]byte(line), &r); err != nil || string(r.Key) != "\xffk" || r.Headers() != nil {
		t.Fatalf("%v %q", err, r.Key)
	}
	line = strings.Replace(line, `"\ufffdk","key_base64":"/2s="`, "null", 1)
	if err := d.decode([]byte(line), &r); err != nil || r.Key != nil || string(r.Data) != "null" {
		t.Fatalf("%v %q", err, r.Key)
	}
	for _, bad := range []string{"", "{}", `{"stream":1,"data":1}`, `{"offset":"x","data":1}`, "[1]"} {
		if err := d.decode([]byte(bad), &r); err == nil && bad != "{}" {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestParseFixedUTC(t *testing.T) {
	for _, ts := range []time.Time{time.Unix(0, 0), time.Date(1600, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 12, 31, 0, 0, 0, 1, time.UTC), time.Date(2400, 3, 1, 12, 0, 0, 0, time.UTC)} {
		s := ts.UTC().Format("2006-01-02T15:04:05.000000000Z")
		got, ok := parseFixedUTC([]byte(s))
		if !ok || !got.Equal(ts) {
			t.Errorf("%s: %v %v", s, got, ok)
		}
	}
	if _, ok := parseFixedUTC([]byte("2026-13-01T00:00:00.000000000Z")); ok {
		t.Error("month 13")
	}
}

func TestUnquote(t *testing.T) {
	for raw, want := range map[string]string{`"plain"`: "plain", `"a\nb\u00e9\"\\\/"`: "a\nbé\"\\/", `"\ud83d\ude00"`: "😀"} {
		if got, ok := Unquote([]byte(raw)); !ok || got != want {
			t.Errorf("%s: %q %v", raw, got, ok)
		}
	}
	if _, ok := Unquote([]byte(`12`)); ok {
		t.Error("number unquoted")
	}
}

func TestRow(t *testing.T) {
	var r Row
	r.String("s", "a\"b\n\x01\xff").Int("i", -3).Float("f", 0.5).Float("nan", 0/zero()).Bool("b", true).
		Null("n").Raw("raw", []byte("{\n\"x\": 1}")).Raw("nil", nil).Time("t", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)))
	want := `{"s":"a\"b\n\u0001\ufffd","i":-3,"f":0.5,"nan":null,"b":true,"n":null,"raw":{"x":1},"nil":null,"t":"2026-01-02T02:04:05Z"}`
	if got := string(r.Bytes()); got != want || !json.Valid(r.Bytes()) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := string(r.Reset().Bytes()); got != "{}" {
		t.Fatal(got)
	}
}

func zero() float64 { return 0 }

func frame(lines ...string) []byte {
	sizes := make([]string, len(lines))
	for i, l := range lines {
		sizes[i] = fmt.Sprint(len(l) + 1)
	}
	return []byte(fmt.Sprintf(`{"__sluice":"batch","records":%d,"sizes":[%s]}`+"\n%s\n", len(lines), strings.Join(sizes, ","), strings.Join(lines, "\n")))
}

func TestProcessFrame(t *testing.T) {
	p := newProcessor(perRecord(func(r *Record, emit Emit) error {
		if op, _ := r.String("op"); op == "fail" {
			return errors.New("no")
		}
		if err := emit(map[string]any{"o": r.Offset}); err != nil {
			return err
		}
		if err := emit(json.RawMessage("{\"raw\":\n1}")); err != nil {
			return err
		}
		if err := emit("a string"); !errors.Is(err, errNotObject) {
			return fmt.Errorf("emit of a string: %v", err)
		}
		return nil
	}))
	ok := string(p.processFrame(frame(envFast, strings.Replace(envFast, `"offset":17`, `"offset":18`, 1))))
	want := `{"o":17}` + "\n" + `{"raw":1}` + "\n" + `{"o":18}` + "\n" + `{"raw":1}` + "\n" + `{"__sluice":"ok"}` + "\n"
	if ok != want {
		t.Fatalf("got %q", ok)
	}
	// Without sizes, with blank lines the frame still reads.
	plain := `{"__sluice":"batch","records":1}` + "\n\n" + envFast + "\n"
	if got := string(p.processFrame([]byte(plain))); !strings.HasSuffix(got, `{"__sluice":"ok"}`+"\n") {
		t.Fatalf("got %q", got)
	}
	failing := strings.Replace(envFast, `"data":{`, `"data":{"op":"fail",`, 1)
	got := string(p.processFrame(frame(envFast, failing)))
	if got != `{"__sluice":"error","message":"record at offset 17: no"}`+"\n" {
		t.Fatalf("got %q", got)
	}
	for _, bad := range []string{"", "junk\n", `{"__sluice":"batch","records":2}` + "\n" + envFast + "\n"} {
		if got := string(p.processFrame([]byte(bad))); !strings.HasPrefix(got, `{"__sluice":"error"`) {
			t.Errorf("%q: %q", bad, got)
		}
	}
}

func TestServeStdio(t *testing.T) {
	h := perRecord(func(r *Record, emit Emit) error {
		return emit(new(Row).Int("o", r.Offset))
	})
	var out bytes.Buffer
	in := append(frame(envFast), frame(envFast, envFast)...)
	if code := serveStdio(h, bytes.NewReader(in), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	want := strings.Repeat(`{"o":17}`+"\n", 1) + `{"__sluice":"ok"}` + "\n" + strings.Repeat(`{"o":17}`+"\n", 2) + `{"__sluice":"ok"}` + "\n"
	if out.String() != want {
		t.Fatalf("got %q", out.String())
	}
	out.Reset()
	if code := serveStdio(h, strings.NewReader(envFast+"\n"+envFast), &out); code != 0 || out.String() != strings.Repeat(`{"o":17}`+"\n", 2) {
		t.Fatalf("one-shot: exit %d, %q", code, out.String())
	}
	rows, err := Process(func(r *Record, emit Emit) error { return emit(new(Row).String("s", r.Stream)) }, []byte(envFast+"\n"))
	if err != nil || string(rows) != `{"s":"logs"}`+"\n" {
		t.Fatalf("Process: %q %v", rows, err)
	}
}

func BenchmarkDecode(b *testing.B) {
	var d decoder
	var r Record
	line := []byte(envFast)
	for i := 0; i < b.N; i++ {
		if err := d.decode(line, &r); err != nil {
			b.Fatal(err)
		}
	}
}
