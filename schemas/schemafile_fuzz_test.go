package schemas_test

import (
	"encoding/json"

	"github.com/sluice-dev/sluice/schemas"
	"testing"
)

// FuzzParseSchema: a schema file of any content parses or fails without a
// panic; one that parses is valid, and reads back the same from its JSON.
func FuzzParseSchema(f *testing.F) {
	for _, seed := range []string{
		`{"columns":[{"name":"ts","type":"timestamp"},{"name":"m","type":"map<string,list<decimal(10,2)>>"}],"time_column":"ts"}`,
		"columns:\n  - name: a\n    type: struct<x:int32, y:list<string>>\npartition_by: [day(ts)]\n",
		`{"columns":[{"name":"a","type":"int64"},{"name":"a","type":"int64"}]}`,
		"columns: [{name: x, type: 'list<list<list<'}]",
		"{", "- - - -", "columns: *a",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := schemas.ParseSchema(data)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ParseSchema accepted an invalid schema: %v", err)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := schemas.ParseSchema(out)
		if err != nil {
			t.Fatalf("the schema's own JSON does not parse: %v\n%s", err, out)
		}
		if back, _ := json.Marshal(again); string(back) != string(out) {
			t.Fatalf("round trip changed the schema:\n%s\n%s", out, back)
		}
	})
}
