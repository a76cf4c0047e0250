package schemas

import (
	"bytes"
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
// timestamps are int64 microseconds since the epoch (UTC) and dates int32
// days. A decimal(p,s) is a decimal128.Num, the value times 10^s; a list is
// []any and a struct []any with one value per declared field (nil: null),
// each in its element's representation; a map is []MapEntry.
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

// FieldError is a value that does not fit its column. For a value inside a
// list, map or struct, Column is the path to it, like items[2].price or
// tags["env"], and Type and Value are those of that inner value.
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
// matched to columns by exact name (a repeated field: the last one counts);
// metadata columns come from m. The time column, when absent or null, takes
// m.Timestamp.
func (s *Schema) Convert(data []byte, m Meta, mode Mode) (Row, error) {
	keep := mode == Keep && s.RestColumn != ""
	cols := make([][]byte, len(s.Columns))
	var rest []member
	switch start := skipSpace(data, 0); {
	case !json.Valid(data):
		return Row{}, notObject(data)
	case data[start] == '{':
		rest = s.split(data, cols)
	case keep:
		rest = []member{{key: []byte("_data"), qkey: []byte(`"_data"`), raw: bytes.TrimSpace(data)}}
	default:
		return Row{}, notObject(data)
	}
	row := Row{Values: make([]any, len(s.Columns)), Time: m.Timestamp.UTC()}
	for i, c := range s.Columns {
		if c.Name == s.RestColumn {
			continue
		}
		v, err := s.columnValue(c, cols[i], m)
		if err != nil {
			if !keep {
				return Row{}, err
			}
			rest = append(rest, member{key: []byte(c.Name), qkey: []byte(strconv.Quote(c.Name)), raw: cols[i], prio: prioMisfit})
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
	if s.RestColumn != "" && len(rest) > 0 {
		row.Values[s.index(s.RestColumn)] = encodeRest(rest)
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

func (s *Schema) columnValue(c Column, raw []byte, m Meta) (any, error) {
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
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	t, err := parseKind(c.Type)
	if err != nil {
		return nil, &FieldError{Column: c.Name, Type: c.Type, Value: shorten(raw), Reason: "the column's type is invalid: " + err.Error()}
	}
	v, fe := parseValue(t, raw)
	if fe != nil {
		fe.Column = c.Name + fe.Column
		return nil, fe
	}
	if reason := s.checkPartitionValue(c, v); reason != "" {
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
func parseTimestamp(raw []byte) (any, string) {
	if raw[0] == '"' {
		s, _ := unquote(raw)
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
