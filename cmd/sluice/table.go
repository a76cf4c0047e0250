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
)

// column is one column of a human table: a header and how to render it
// from a decoded JSON object.
type column struct {
	header string
	value  func(obj map[string]any) string
}

// field renders the value at a dotted path ("schema.time_column").
func field(header, path string) column {
	return column{header, func(obj map[string]any) string { return text(lookup(obj, path)) }}
}

// count renders the length of the list or object at path.
func count(header, path string) column {
	return column{header, func(obj map[string]any) string {
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
	return column{header, func(obj map[string]any) string {
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

// printTable renders the JSON list data (or the list under key, for an
// object) as aligned columns.
func printTable(out io.Writer, data []byte, key string, cols []column) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var rows []map[string]any
	if key == "" {
		if err := dec.Decode(&rows); err != nil {
			return fmt.Errorf("cannot read the server's answer: %w", err)
		}
	} else {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return fmt.Errorf("cannot read the server's answer: %w", err)
		}
		for _, r := range lookupList(obj, key) {
			if m, ok := r.(map[string]any); ok {
				rows = append(rows, m)
			}
		}
	}
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

// outputFlag adds -o to c: table (aligned columns) or json (the API's answer).
func outputFlag(c command) *string {
	return c.fs.String("o", "table", "output: table, or json (the API's answer as it is)")
}

// show prints the answer of GET path as a table of kind's columns, or as
// JSON (-o json).
func (a admin) show(path, output, kind, key string) error {
	data, err := a.do("GET", path, nil)
	if err != nil {
		return err
	}
	switch output {
	case "json":
		_, err = stdout.Write(data)
		return err
	case "table":
		return printTable(stdout, data, key, listColumns[kind])
	}
	return fmt.Errorf("-o %q: want table or json", output)
}
