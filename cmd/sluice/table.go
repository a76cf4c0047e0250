package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"
)

// column is one column of a human table: a header and how to render it
// from a decoded JSON object.
type column struct {
	header string
	path   string // the dotted path it renders: -o wide adds the top-level fields no column renders whole
	value  func(obj map[string]any) string
}

// field renders the value at a dotted path ("schema.time_column").
func field(header, path string) column {
	return column{header, path, func(obj map[string]any) string { return text(lookup(obj, path)) }}
}

// count renders the length of the list or object at path.
func count(header, path string) column {
	return column{header, path, func(obj map[string]any) string {
		switch v := lookup(obj, path).(type) {
		case []any:
			return fmt.Sprint(len(v))
		case map[string]any:
			return fmt.Sprint(len(v))
		}
		return "0"
	}}
}

// seconds renders the number of seconds at path as a duration ("1m30s"),
// empty when it is 0 or missing.
func seconds(header, path string) column {
	return column{header, path, func(obj map[string]any) string {
		n, _ := lookup(obj, path).(json.Number)
		f, err := n.Float64()
		if err != nil || f <= 0 {
			return ""
		}
		return (time.Duration(f * float64(time.Second))).Round(time.Second).String()
	}}
}

func lookup(obj map[string]any, path string) any {
	var v any = obj
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// text renders a JSON value on one line: strings as they are, lists joined
// with commas, objects as k=v, numbers as written.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return strings.ReplaceAll(x, "\n", " ")
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = text(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(x)) {
			parts = append(parts, k+"="+text(x[k]))
		}
		return strings.Join(parts, ",")
	case json.Number:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

// decodeRows reads the JSON list data, or the list under key for an object.
func decodeRows(data []byte, key string) ([]map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var rows []map[string]any
	if key == "" {
		if err := dec.Decode(&rows); err != nil {
			return nil, fmt.Errorf("cannot read the server's answer: %w", err)
		}
	} else {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return nil, fmt.Errorf("cannot read the server's answer: %w", err)
		}
		for _, r := range lookupList(obj, key) {
			if m, ok := r.(map[string]any); ok {
				rows = append(rows, m)
			}
		}
	}
	return rows, nil
}

// wide returns cols and, after them, a column for every top-level field of
// rows that no column renders whole (sorted by name): -o wide.
func wide(rows []map[string]any, cols []column) []column {
	shown := map[string]bool{}
	for _, c := range cols {
		shown[c.path] = true
	}
	extra := map[string]bool{}
	for _, r := range rows {
		for k := range r {
			if !shown[k] {
				extra[k] = true
			}
		}
	}
	cols = slices.Clip(cols)
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		cols = append(cols, field(strings.ToUpper(k), k))
	}
	return cols
}

// printTable renders rows as aligned columns.
func printTable(out io.Writer, rows []map[string]any, cols []column) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	headers := make([]string, len(cols))
	for i, c := range cols {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		vals := make([]string, len(cols))
		for i, c := range cols {
			vals[i] = c.value(r)
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
}

func lookupList(obj map[string]any, key string) []any {
	l, _ := obj[key].([]any)
	return l
}

// listColumns are the columns of `sluice KIND list` and of pipeline status.
var listColumns = map[string][]column{
	"stream":   {field("NAME", "name"), field("PARTITIONS", "partitions"), field("RETENTION", "retention")},
	"table":    {field("NAME", "name"), count("COLUMNS", "schema.columns"), field("TIME_COLUMN", "schema.time_column"), field("PARTITION_BY", "schema.partition_by"), field("FILE_AGE", "file_age")},
	"pipeline": {field("NAME", "name"), field("STREAM", "stream"), field("FUNCTION", "function"), field("TABLE", "table"), field("INTERNAL", "internal")},
	"function": {field("NAME", "name"), field("RUNTIME", "latest.runtime"), count("VERSIONS", "versions"), field("ALIASES", "aliases"), field("UPDATED", "updated")},
	"key":      {field("ID", "id"), field("NAME", "name"), field("SCOPES", "scopes"), field("EXPIRES", "expires"), field("LIMITS", "limits")},
	"status": {field("PARTITION", "partition"), field("STATE", "state"), field("WORKER", "worker"), field("COMMITTED", "committed"),
		field("END", "end_offset"), field("LAG", "lag"), seconds("LAG_AGE", "lag_age_seconds"), field("ATTEMPTS", "attempts"), field("VERSION", "function_version"), field("LAST_ERROR", "last_error")},
}

// outputFlag adds -o to c: table (aligned columns), wide (every field),
// json (the API's answer) or yaml (the same, as YAML).
func outputFlag(c command) *string {
	return c.fs.String("o", "table", "output: table, wide (a column for every field), json (the API's answer as it is) or yaml (the same as YAML)")
}

// show prints the answer of GET path (a list, or the list under key) as a
// table of kind's columns (-o table), with every field (-o wide), as JSON
// (-o json) or as YAML (-o yaml).
func (a admin) show(path, output, kind, key string) error {
	if output != "table" && output != "wide" && output != "json" && output != "yaml" {
		return fmt.Errorf("-o %q: want table, wide, json or yaml", output)
	}
	data, err := a.do("GET", path, nil)
	if err != nil {
		return err
	}
	if output == "json" || output == "yaml" {
		return printAnswer(stdout, data, output)
	}
	rows, err := decodeRows(data, key)
	if err != nil {
		return err
	}
	cols := listColumns[kind]
	if output == "wide" {
		cols = wide(rows, cols)
	}
	return printTable(stdout, rows, cols)
}

// printAnswer prints the API's JSON answer data as it is (json) or as
// YAML (yaml).
func printAnswer(out io.Writer, data []byte, output string) error {
	switch output {
	case "json":
		_, err := out.Write(data)
		return err
	case "yaml":
		return jsonToYAML(out, data)
	}
	return fmt.Errorf("-o %q: want json or yaml", output)
}

// jsonToYAML writes the JSON document data as block-style YAML, keeping the
// order of its keys and the types of its values (a JSON string "4" stays a
// quoted string). JSON is YAML 1.2 in flow style, so the YAML parser reads
// it; only the style changes.
func jsonToYAML(out io.Writer, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("cannot read the server's answer as JSON: %w", err)
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("cannot write the answer as YAML: %w", err)
	}
	return enc.Close()
}

func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
