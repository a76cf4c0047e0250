package schemas_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/schemas"
)

// ordersYAML and ordersJSON are the example of docs/schemas.md.
const ordersYAML = `# An orders table: money as decimals, line items as a list of structs.
columns:
  - name: ts
    type: timestamp
    not_null: true
  - name: order_id
    type: string
    not_null: true
  - name: total
    type: decimal(12,2)
  - name: items
    type: "list<struct<sku: string, qty: int32, price: decimal(10,2)>>"
  - name: labels
    type: map<string,string>
  - name: region
    type: string
  - name: attrs
    type: json
time_column: ts
rest_column: attrs
partition_by: [region, day(ts)]
`

const ordersJSON = `{
	"columns": [
		{"name": "ts", "type": "timestamp", "not_null": true},
		{"name": "order_id", "type": "string", "not_null": true},
		{"name": "total", "type": "decimal(12,2)"},
		{"name": "items", "type": "list<struct<sku: string, qty: int32, price: decimal(10,2)>>"},
		{"name": "labels", "type": "map<string,string>"},
		{"name": "region", "type": "string"},
		{"name": "attrs", "type": "json"}
	],
	"time_column": "ts",
	"rest_column": "attrs",
	"partition_by": ["region", "day(ts)"]
}`

func TestParseSchema(t *testing.T) {
	want := &schemas.Schema{Columns: []schemas.Column{
		{Name: "ts", Type: schemas.Timestamp, NotNull: true},
		{Name: "order_id", Type: schemas.String, NotNull: true},
		{Name: "total", Type: "decimal(12,2)"},
		{Name: "items", Type: "list<struct<sku: string, qty: int32, price: decimal(10,2)>>"},
		{Name: "labels", Type: "map<string,string>"},
		{Name: "region", Type: schemas.String},
		{Name: "attrs", Type: schemas.JSON},
	}, TimeColumn: "ts", RestColumn: "attrs", PartitionBy: []string{"region", "day(ts)"}}
	for _, doc := range []string{ordersYAML, ordersJSON, "\n  " + ordersJSON + "\n"} {
		s, err := schemas.ParseSchema([]byte(doc))
		if err != nil {
			t.Fatalf("ParseSchema: %v\n%s", err, doc)
		}
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("ParseSchema\n got %+v\nwant %+v", s, want)
		}
	}
	// The minimal file, and flow style.
	if _, err := schemas.ParseSchema([]byte("columns: [{name: x, type: string}]")); err != nil {
		t.Fatal(err)
	}
}

func TestParseSchemaErrors(t *testing.T) {
	f := func(doc, want string) {
		t.Helper()
		_, err := schemas.ParseSchema([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("ParseSchema(%q) = %v, want %q", doc, err, want)
		}
	}
	const col = "columns:\n  - name: x\n    type: string\n"
	// YAML.
	f("colums:\n  - name: x\n", "line 1: field colums not found in type schemas.Schema")
	f(col+"    nullable: true\n", "line 4: field nullable not found in type schemas.Column")
	f(col+"    not_null: maybe\n", "line 4: cannot unmarshal !!str `maybe` into bool")
	f(col+"    name: y\n", `line 4: mapping key "name" already defined at line 2`)
	f(col+"  - name: s\n    type: struct<a: int32>\n", "line 5: mapping values are not allowed in this context")
	f(col+"---\ncolumns: []\n", "the schema file holds more than one YAML document")
	f("", "the schema file is empty")
	f("# only a comment\n", "the schema file is empty")
	f("- a\n- b\n", "cannot unmarshal !!seq into schemas.Schema")
	f(col+"partition_by: hour(ts)\n", "line 4: cannot unmarshal !!str `hour(ts)` into []string")
	// Validate runs after parsing.
	f("columns:\n  - name: x\n    type: int\n", `column 0 ("x"): unknown type "int"`)
	f(col+"partition_by: [nope]\n", `partition_by[0] "nope": no column "nope"`)
	// JSON.
	f("{\"columns\": [{\"name\": \"x\", \"type\": \"string\"}],\n \"colour\": 1}", `line 2: json: unknown field "colour"`)
	f("{\"columns\": [\n{\"name\": \"x\", \"type\": \"string\", \"not_null\": \"yes\"}]}", "line 2: json: cannot unmarshal string into Go struct field")
	f("{\"columns\": [\n\n{\"name\": \"x\" \"type\": \"string\"}]}", "line 3: invalid character '\"' after object key:value pair")
	f("{\"columns\": [{\"name\": \"x\", \"type\": \"string\"}]} {}", "unexpected data after the schema object")
	f("{\"columns\": [{\"name\": \"x\",\n \"name\": \"y\", \"type\": \"string\"}]}", `line 2: key "name" is repeated`)
	f("{\"columns\": [],\n\"columns\": [{\"name\": \"x\", \"type\": \"string\"}]}", `line 2: key "columns" is repeated`)
}
