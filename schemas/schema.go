// Package schemas defines table schemas: their column types, how a JSON row is
// converted to typed values, and how those types map to Arrow, Parquet and
// DuckDB. It is shared by ingest (validation), sink (Parquet schema) and query
// (catalog), so every mapping between type systems lives here, in one place.
package schemas

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Kind is a column type, as written in a schema: one of the constants below,
// or a parameterized or nested type:
//
//	decimal(p,s)           exact decimal, p ≤ 38 digits, s of them after the point
//	list<T>                a JSON array of T
//	map<string,T>          a JSON object with any keys and T values
//	struct<name:T, ...>    a JSON object with these fields
//
// with any type inside (spaces between tokens are allowed). Nested values are
// always nullable. The string is parsed once per distinct Kind (see types.go).
type Kind string

// The column types a table may declare.
const (
	String    Kind = "string"
	Bool      Kind = "bool"
	Int32     Kind = "int32"
	Int64     Kind = "int64"
	Float32   Kind = "float32"
	Float64   Kind = "float64"
	Timestamp Kind = "timestamp" // microseconds, UTC
	Date      Kind = "date"
	JSON      Kind = "json"
	Binary    Kind = "binary" // base64 in JSON input
)

// Metadata columns are filled from the record's source position rather than
// from its data. A schema declares the ones it wants, with these names and
// types; any other column name starting with "_" is refused so that new
// metadata columns can be added later without colliding with user columns.
var metaColumns = map[string]Kind{
	"_stream":    String,
	"_partition": Int32,
	"_offset":    Int64,
	"_key":       String,
	"_timestamp": Timestamp,
}

// Column is one column of a table.
type Column struct {
	Name string `json:"name" yaml:"name"`
	Type Kind   `json:"type" yaml:"type"`
	// NotNull makes a missing or null value an error. Columns are nullable by
	// default, which is what log data needs: fields come and go.
	NotNull bool `json:"not_null,omitempty" yaml:"not_null,omitempty"`
}

// Schema is a table's schema.
type Schema struct {
	Columns []Column `json:"columns" yaml:"columns"`
	// TimeColumn names the timestamp column that holds the event time. A row
	// without it takes the record's Kafka timestamp. With the default
	// PartitionBy it decides the row's dt=/hour= partition; without a time
	// column rows are partitioned by record time.
	TimeColumn string `json:"time_column,omitempty" yaml:"time_column,omitempty"`
	// RestColumn names a json column that collects, as one JSON object, every
	// field of the data that no other column names, so nothing is dropped.
	RestColumn string `json:"rest_column,omitempty" yaml:"rest_column,omitempty"`
	// PartitionBy lays the table's files out in Hive partitions, outermost
	// first: "day(col)" (dt=YYYY-MM-DD), "hour(col)" (dt=YYYY-MM-DD/hour=HH)
	// or a plain column name (col=value). Empty: hour of the time column, or
	// of the record time without one. See PartitionPath.
	PartitionBy []string `json:"partition_by,omitempty" yaml:"partition_by,omitempty"`
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// ValidName reports whether name may name a stream, table, pipeline or column:
// a letter or underscore, then letters, digits and underscores, 128 at most.
func ValidName(name string) bool { return identRe.MatchString(name) }

// Validate checks the schema and reports every problem at once.
func (s *Schema) Validate() error {
	var errs []error
	if len(s.Columns) == 0 {
		errs = append(errs, errors.New("schema has no columns"))
	}
	seen := map[string]bool{}
	for i, c := range s.Columns {
		where := fmt.Sprintf("column %d (%q)", i, c.Name)
		lower := strings.ToLower(c.Name)
		switch {
		case !ValidName(c.Name):
			errs = append(errs, fmt.Errorf("%s: name must match %s", where, identRe))
		case seen[lower]:
			errs = append(errs, fmt.Errorf("%s: duplicate column name (names are case-insensitive in SQL)", where))
		case lower == "dt" || lower == "hour":
			errs = append(errs, fmt.Errorf("%s: %q is reserved for the Hive partition column", where, c.Name))
		}
		seen[lower] = true
		t, err := parseKind(c.Type)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if strings.HasPrefix(c.Name, "_") {
			if want, ok := metaColumns[c.Name]; !ok {
				errs = append(errs, fmt.Errorf("%s: names starting with _ are reserved for metadata columns (_stream, _partition, _offset, _key, _timestamp)", where))
			} else if t != nil && t.canon != want {
				errs = append(errs, fmt.Errorf("%s: metadata column must have type %s", where, want))
			}
		}
	}
	if s.TimeColumn != "" && s.columnTag(s.TimeColumn) != tTimestamp {
		errs = append(errs, fmt.Errorf("time_column %q must name a timestamp column", s.TimeColumn))
	}
	if s.RestColumn != "" && s.columnTag(s.RestColumn) != tJSON {
		errs = append(errs, fmt.Errorf("rest_column %q must name a json column", s.RestColumn))
	}
	if _, err := s.partitionKeys(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// columnTag is the type constructor of the column named name, 0 if there is
// no such column or its type does not parse.
func (s *Schema) columnTag(name string) tag {
	c, ok := s.Column(name)
	if !ok {
		return 0
	}
	t, err := parseKind(c.Type)
	if err != nil {
		return 0
	}
	return t.tag
}

// Column returns the column named name.
func (s *Schema) Column(name string) (Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// LogSchema is the built-in schema of log tables: the well-known log fields as
// columns, everything else kept as JSON in attrs, and the record's source
// position.
func LogSchema() *Schema {
	return &Schema{
		Columns: []Column{
			{Name: "ts", Type: Timestamp, NotNull: true},
			{Name: "level", Type: String},
			{Name: "service", Type: String},
			{Name: "host", Type: String},
			{Name: "message", Type: String},
			{Name: "attrs", Type: JSON},
			{Name: "_partition", Type: Int32},
			{Name: "_offset", Type: Int64},
		},
		TimeColumn: "ts",
		RestColumn: "attrs",
	}
}
