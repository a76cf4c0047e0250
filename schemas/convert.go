package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Meta is a record's source position, which fills the metadata columns and
// stands in for a missing event time.
type Meta struct {
	Stream    string
	Partition int32
	Offset    int64
	Key       []byte
	Timestamp time.Time
}

// Row is one converted row: a value per schema column, in column order, and
// the row's event time. Values hold string, bool, int32, int64, float32,
// float64, string (json, as compact JSON text), []byte (binary), or nil;
// timestamps are int64 microseconds since the epoch (UTC) and dates int32 days.
type Row struct {
	Values []any
	Time   time.Time
}

// Mode says what a conversion does with a field that does not fit its column.
type Mode int

const (
	// Strict fails the row with an error that names the column, the expected
	// type and the value. Pipelines with a function use it: the function's
	// output must fit the table, or the batch fails and is retried.
	Strict Mode = iota
	// Keep never fails a row of a schema with a rest column: a field that does
	// not fit its column leaves the column null and is kept, as it was, in the
	// rest column; an unusable event time falls back to the record time.
	// Direct pipelines use it so one odd record from a Kafka producer cannot
	// stall a partition forever (there is no function to fix it with).
	Keep
)

// FieldError is a value that does not fit its column.
type FieldError struct {
	Column string
	Type   Kind
	Value  string // the JSON value, shortened
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("column %q: expected %s, got %s (%s)", e.Column, e.Type, e.Value, e.Reason)
}

// Convert turns one record's JSON data into a row of s.
//
// data must be a JSON object, except in Keep mode with a rest column, where a
// non-object value is kept in the rest column as {"_data": value}. Fields are
// matched to columns by exact name; metadata columns come from m. The time
// column, when absent or null, takes m.Timestamp.
func (s *Schema) Convert(data []byte, m Meta, mode Mode) (Row, error) {
	fields, err := decodeObject(data)
	if err != nil {
		if mode == Keep && s.RestColumn != "" && json.Valid(data) {
			fields = map[string]json.RawMessage{"_data": json.RawMessage(bytes.TrimSpace(data))}
			err = nil
		} else {
			return Row{}, err
		}
	}
	row := Row{Values: make([]any, len(s.Columns)), Time: m.Timestamp.UTC()}
	var rest map[string]json.RawMessage
	if s.RestColumn != "" {
		rest = make(map[string]json.RawMessage)
		for k, v := range fields {
			// A data field that shares a metadata column's name (say
			// "_offset") cannot go to that column; keep it in the rest.
			if _, named := s.Column(k); !named || metaColumns[k] != "" {
				rest[k] = v
			}
		}
		// The data's own rest field (say, "attrs": {...}) is merged in rather
		// than nested; a non-object value is kept under its name.
		if own, ok := fields[s.RestColumn]; ok {
			var obj map[string]json.RawMessage
			if json.Unmarshal(own, &obj) == nil && obj != nil {
				for k, v := range obj {
					if _, dup := rest[k]; !dup {
						rest[k] = v
					}
				}
			} else if string(own) != "null" {
				rest[s.RestColumn] = own
			}
		}
	}
	for i, c := range s.Columns {
		if c.Name == s.RestColumn {
			continue
		}
		v, err := s.columnValue(c, fields, m)
		if err != nil {
			if mode != Keep || rest == nil {
				return Row{}, err
			}
			rest[c.Name] = fields[c.Name]
			v = nil
		}
		if v == nil && c.Name == s.TimeColumn {
			v = row.Time.UnixMicro()
		}
		if v == nil && c.NotNull {
			return Row{}, &FieldError{Column: c.Name, Type: c.Type, Value: "null", Reason: "the column is not null"}
		}
		if c.Name == s.TimeColumn {
			row.Time = time.UnixMicro(v.(int64)).UTC()
		}
		row.Values[i] = v
	}
	if s.RestColumn != "" {
		idx := s.index(s.RestColumn)
		if len(rest) > 0 {
			b, err := json.Marshal(rest)
			if err != nil {
				return Row{}, fmt.Errorf("cannot encode column %q: %w", s.RestColumn, err)
			}
			row.Values[idx] = cleanJSON(b)
		}
	}
	return row, nil
}

func (s *Schema) index(name string) int {
	for i, c := range s.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("data is not a JSON object: %w", err)
	}
	if fields == nil {
		return nil, fmt.Errorf("data is not a JSON object: got null")
	}
	return fields, nil
}

func (s *Schema) columnValue(c Column, fields map[string]json.RawMessage, m Meta) (any, error) {
	switch c.Name {
	case "_stream":
		return m.Stream, nil
	case "_partition":
		return m.Partition, nil
	case "_offset":
		return m.Offset, nil
	case "_key":
		if m.Key == nil {
			return nil, nil
		}
		return strings.ToValidUTF8(string(m.Key), "\uFFFD"), nil
	case "_timestamp":
		return m.Timestamp.UnixMicro(), nil
	}
	raw, ok := fields[c.Name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	v, reason := parseValue(c.Type, raw)
	if reason != "" {
		return nil, &FieldError{Column: c.Name, Type: c.Type, Value: shorten(raw), Reason: reason}
	}
	return v, nil
}

func shorten(raw []byte) string {
	const max = 64
	if len(raw) <= max {
		return string(raw)
	}
	return string(raw[:max]) + "…"
}

// parseValue converts one JSON value to kind k; a non-empty reason says why it
// cannot.
func parseValue(k Kind, raw json.RawMessage) (any, string) {
	switch k {
	case String:
		var s string
		if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return nil, "not a JSON string"
		}
		return s, ""
	case Bool:
		switch string(raw) {
		case "true":
			return true, ""
		case "false":
			return false, ""
		}
		return nil, "not true or false"
	case Int32, Int64:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, "not an integer"
		}
		if k == Int32 {
			if n < math.MinInt32 || n > math.MaxInt32 {
				return nil, "out of int32 range"
			}
			return int32(n), ""
		}
		return n, ""
	case Float32, Float64:
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, "not a number"
		}
		if k == Float32 {
			if math.IsInf(float64(float32(f)), 0) {
				return nil, "out of float32 range"
			}
			return float32(f), ""
		}
		return f, ""
	case Timestamp:
		return parseTimestamp(raw)
	case Date:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, "not a YYYY-MM-DD string"
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, "not a YYYY-MM-DD string"
		}
		return int32(t.Unix() / 86400), ""
	case JSON:
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, "not JSON"
		}
		return cleanJSON(buf.Bytes()), ""
	case Binary:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, "not a base64 string"
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, "not a base64 string"
		}
		return b, ""
	}
	return nil, "BUG: unknown kind"
}

// Timestamps must lie in years 0001 to 9999, which every engine can read.
const (
	minMicros = -62135596800 * 1e6   // 0001-01-01T00:00:00Z
	maxMicros = 253402300800*1e6 - 1 // 9999-12-31T23:59:59.999999Z
)

// parseTimestamp accepts an RFC 3339 string (any offset; stored as UTC) or a
// number of seconds, milliseconds, microseconds or nanoseconds since the
// epoch. The unit of a number follows from its magnitude: below 1e11 seconds
// (up to year 5138), below 1e14 milliseconds, below 1e17 microseconds, else
// nanoseconds. Precision below the microsecond is truncated, for numbers as
// for strings; integers are converted exactly.
func parseTimestamp(raw json.RawMessage) (any, string) {
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, "not a JSON string"
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, "not RFC 3339 (like 2026-11-22T03:04:05Z) or epoch seconds/millis"
		}
		return inRange(t.UnixMicro(), float64(t.UnixMicro()))
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		a := n
		if a < 0 {
			a = -a
		}
		switch {
		case a < 1e11:
			return inRange(n*1e6, float64(n)*1e6)
		case a < 1e14:
			return inRange(n*1e3, float64(n)*1e3)
		case a < 1e17:
			return inRange(n, float64(n))
		default:
			return inRange(n/1e3, float64(n)/1e3)
		}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return nil, "not RFC 3339 or a number of epoch seconds/millis"
	}
	var us float64
	switch a := math.Abs(f); {
	case a < 1e11:
		us = f * 1e6
	case a < 1e14:
		us = f * 1e3
	case a < 1e17:
		us = f
	default:
		us = f / 1e3
	}
	return inRange(int64(math.Trunc(us)), math.Trunc(us))
}

// inRange returns us if f (the same value, computed without overflow) lies in
// years 0001 to 9999.
func inRange(us int64, f float64) (any, string) {
	if f < minMicros || f > maxMicros {
		return nil, "out of range (years 0001 to 9999)"
	}
	return us, ""
}

// cleanJSON returns compact JSON text that is valid UTF-8 with no escaped
// lone surrogates: readers of Parquet's JSON type (DuckDB among them) reject
// a whole file over one such value. Text that needs no cleaning (the usual
// case) is returned as it is, without a decode.
func cleanJSON(b []byte) string {
	if utf8.Valid(b) && !bytes.Contains(b, []byte(`\u`)) {
		return string(b)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return string(bytes.TrimRight(out.Bytes(), "\n"))
}
