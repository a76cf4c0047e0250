package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

var parseSeeds = []string{
	`{"ts":"2026-11-22T03:04:05Z","level":"info","user":"u1","message":"hello"}`,
	"{\"a\":1}\n\n{\"b\":[1,2]}\r\n  \n{bad\n\"s\"\n",
	"{\"user\":{\"id\":1}}\n{\"user\":7}\n{\"user\":null}\n[1]",
	`{"records":[{"data":{"a":1}},{"key":"k","data":[1]},{"key":{"x":1},"data":{}},{"key":"k"}]}`,
	`{"records":[{"data":{"user":"u"}},{"key":12.5,"data":"x"},{"data":null}]}`,
	`{"records":[]}`,
	`{"records":[{"data":{}}]} trailing`,
	`{"records": [}`,
	"\n\n\n",
	"",
}

// FuzzParseNDJSON checks that parseNDJSON never panics, answers one item per
// non-blank line, and that each item is either a record (compact valid JSON,
// the line's own content) or an error naming its line.
func FuzzParseNDJSON(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "user")
	}
	f.Fuzz(func(t *testing.T, body []byte, keyField string) {
		items, err := parseNDJSON(body, keyField)
		if err != nil {
			return // more than MaxRecords: refused whole
		}
		var lines []int // line number of each non-blank line
		for i, l := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				lines = append(lines, i+1)
			}
		}
		if len(items) != len(lines) {
			t.Fatalf("%d items for %d non-blank lines", len(items), len(lines))
		}
		raw := bytes.Split(body, []byte("\n"))
		for i, it := range items {
			checkItem(t, it, fmt.Sprintf("line %d: ", lines[i]), bytes.TrimSpace(raw[lines[i]-1]), keyField == "")
		}
	})
}

// FuzzParseJSON checks that parseJSON never panics, either refuses the body
// as a whole or answers one item per element of "records", and that each item
// is either a record or an error naming its index.
func FuzzParseJSON(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "user")
	}
	f.Fuzz(func(t *testing.T, body []byte, keyField string) {
		items, err := parseJSON(body, keyField)
		if err != nil {
			if items != nil || err.Error() == "" {
				t.Fatalf("error %v with %d items", err, len(items))
			}
			return
		}
		var b batch
		if err := json.NewDecoder(bytes.NewReader(body)).Decode(&b); err != nil {
			t.Fatalf("parseJSON accepted a body that does not decode: %v", err)
		}
		if len(items) != len(b.Records) {
			t.Fatalf("%d items for %d records", len(items), len(b.Records))
		}
		for i, it := range items {
			checkItem(t, it, fmt.Sprintf("records[%d]: ", i), b.Records[i].Data, false)
		}
	})
}

// checkItem checks one parsed item: a record holds data, compacted, and a
// key within limits (none if noKey); an error has a code, a 4xx status and a
// message that starts with where.
func checkItem(t *testing.T, it item, where string, data []byte, noKey bool) {
	t.Helper()
	if (it.value == nil) == (it.err == nil) {
		t.Fatalf("%sitem has value %q and error %v", where, it.value, it.err)
	}
	if it.err != nil {
		e := it.err
		if e.code == "" || e.status < 400 || e.status > 499 || !strings.HasPrefix(e.msg, where) {
			t.Fatalf("%sbad error %+v", where, *e)
		}
		return
	}
	if !json.Valid(it.value) || len(it.value) > len(data) {
		t.Fatalf("%svalue %q from data %q", where, it.value, data)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil || !bytes.Equal(compact.Bytes(), it.value) {
		t.Fatalf("%svalue %q is not data %q compacted (%v)", where, it.value, data, err)
	}
	if len(it.key) > MaxKeyBytes || noKey && it.key != nil {
		t.Fatalf("%skey %q", where, it.key)
	}
}

func TestDescribeJSONErrorWithoutOffset(t *testing.T) {
	_, err := parseJSON([]byte(`{"records":[{"data":{}, "what":1}]}`), "")
	if err == nil || !strings.HasPrefix(err.Error(), `invalid JSON body: json: unknown field "what"`) {
		t.Fatalf("got %v", err)
	}
}

// Regression test, fixed: parseJSON refuses data after the document with dec.More(), which is
// false when the next byte is ']' or '}', so a body with a stray closing
// bracket after the document is accepted. Fix: after Decode, refuse unless
// bytes.TrimSpace(body[dec.InputOffset():]) is empty.
func TestParseJSONTrailingData(t *testing.T) {
	for _, tail := range []string{" x", " {}", " []", "]", "}", " } ]", "\n}"} {
		body := `{"records":[{"data":{"a":1}}]}` + tail
		items, err := parseJSON([]byte(body), "")
		if err == nil || !strings.Contains(err.Error(), "data after the JSON document") {
			t.Errorf("parseJSON(%q) = %d items, %v; want it refused", body, len(items), err)
		}
	}
	if items, err := parseJSON([]byte(`{"records":[{"data":{"a":1}}]}`+" \r\n\t "), ""); err != nil || len(items) != 1 {
		t.Errorf("trailing white space: %d items, %v", len(items), err)
	}
}

func BenchmarkParseNDJSON(b *testing.B) {
	var body bytes.Buffer
	for i := range 1000 {
		fmt.Fprintf(&body, `{"ts":"2026-11-22T03:04:05.%06dZ","level":"info","service":"checkout",`+
			`"host":"web-7f9c4d-x2k8p","message":"order placed","attrs":{"order_id":"ord_%08x",`+
			`"user_id":%d,"amount":129.95,"currency":"EUR"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`+"\n", i, i, i)
	}
	data := body.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if items, err := parseNDJSON(data, "service"); err != nil || len(items) != 1000 || items[999].err != nil {
			b.Fatal("parse failed")
		}
	}
}
