package schemas_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/schemas"
)

// TestDocExamples keeps docs/schemas.md honest: its example schema files
// parse (YAML and JSON alike, to the same schema as this package's tests
// use), and its Strict error messages are the ones Convert gives.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/schemas.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) != 2 {
		t.Fatalf("found %d schema examples, want 2", len(blocks))
	}
	want, err := schemas.ParseSchema([]byte(ordersYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		s, err := schemas.ParseSchema(b[2])
		if err != nil {
			t.Fatalf("%s example: %v", b[1], err)
		}
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("%s example differs from ordersYAML:\n%+v", b[1], s)
		}
	}

	// The Strict error messages, in the order the page lists them.
	inputs := []string{
		`{"total":19.999}`,
		`{"items":[{},{},{"price":"12,50"}]}`,
		`{"labels":{"env":3}}`,
		`{"items":[{"sku":"a","colour":"red"}]}`,
		`{"ts":"yesterday"}`,
	}
	section := string(doc[strings.Index(string(doc), "- **Strict**"):])
	section = section[strings.Index(section, "```\n")+4:]
	lines := strings.Split(strings.TrimSpace(section[:strings.Index(section, "```")]), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("%d error examples, want %d", len(lines), len(inputs))
	}
	for i, in := range inputs {
		_, err := want.Convert([]byte(`{"order_id":"o1",`+in[1:]), testMeta, schemas.Strict)
		if err == nil || err.Error() != strings.TrimSpace(lines[i]) {
			t.Errorf("Convert(%s) = %v\ndocs say      %s", in, err, strings.TrimSpace(lines[i]))
		}
	}
}
