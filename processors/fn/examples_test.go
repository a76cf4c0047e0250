package fn

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// sampleBatch makes envelopes from the data lines of an NDJSON file.
func sampleBatch(t *testing.T, path string) []Envelope {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var datas []string
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		datas = append(datas, string(line))
	}
	return batch(0, datas...)
}

func TestExampleAccesslog(t *testing.T) {
	h := newHost(t)
	f := load(t, h, Config{Runtime: RuntimeWasm, Code: buildCode(t, "../../examples/accesslog", targetWarm), Memory: 64 << 20, Timeout: 5 * time.Second})
	if f.Mode() != ModeWarm {
		t.Fatalf("mode %s", f.Mode())
	}
	inst := newInstance(t, f)
	b := sampleBatch(t, "../../examples/accesslog/sample.ndjson")
	for round := 0; round < 2; round++ {
		res := invokeOK(t, inst, b)
		if len(res.Rows) != 4 {
			t.Fatalf("got %d rows, want 4: %q", len(res.Rows), res.Rows)
		}
		var first, last map[string]any
		_ = json.Unmarshal(res.Rows[0], &first)
		_ = json.Unmarshal(res.Rows[3], &last)
		if first["ts"] != "2026-11-22T08:30:00Z" || first["status"] != 200.0 || first["user_agent"] != "Mozilla/5.0 (X11; Linux x86_64)" {
			t.Fatalf("row 0: %s", res.Rows[0])
		}
		if last["parse_error"] == nil || last["raw"] != "this is not an access log line" {
			t.Fatalf("row 3: %s", res.Rows[3])
		}
	}
}

func TestExampleRedact(t *testing.T) {
	code, err := os.ReadFile("../../examples/redact/redact.py")
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t)
	inst := newInstance(t, load(t, h, Config{Runtime: RuntimeExec, Code: code, Memory: 256 << 20, Timeout: 5 * time.Second}))
	b := batch(0, `{"user":{"email":"alice@example.com","n":1},"list":["bob@example.org","plain"]}`, `"carol@example.net"`)
	res := invokeOK(t, inst, b)
	want := []string{
		`{"user":{"email":"a***@example.com","n":1},"list":["b***@example.org","plain"]}`,
		`{"value":"c***@example.net"}`,
	}
	if len(res.Rows) != len(want) {
		t.Fatalf("rows %q", res.Rows)
	}
	for i := range want {
		if string(res.Rows[i]) != want[i] {
			t.Fatalf("row %d: %s, want %s", i, res.Rows[i], want[i])
		}
	}
}
