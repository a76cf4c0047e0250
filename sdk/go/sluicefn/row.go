package sluicefn

import (
	"bytes"
	stdjson "encoding/json"
	"math"
	"strconv"
	"time"
)

// Row builds one output row (a JSON object) without reflection. Methods append
// a member and return the Row, so calls chain:
//
//	row.Reset()
//	emit(row.String("method", m).Int("status", 200))
//
// Reuse one Row across records (Reset) to avoid allocating; emit copies it.
// Member names are written as given: do not repeat one.
type Row struct {
	b []byte // "{" and the members so far, without the closing brace
}

// Reset empties the row, keeping its memory.
func (r *Row) Reset() *Row {
	r.b = r.b[:0]
	return r
}

func (r *Row) name(n string) {
	if len(r.b) == 0 {
		r.b = append(r.b, '{')
	} else {
		r.b = append(r.b, ',')
	}
	r.b = appendString(r.b, n)
	r.b = append(r.b, ':')
}

// String adds a string member.
func (r *Row) String(name, v string) *Row {
	r.name(name)
	r.b = appendString(r.b, v)
	return r
}

// Int adds an integer member.
func (r *Row) Int(name string, v int64) *Row {
	r.name(name)
	r.b = strconv.AppendInt(r.b, v, 10)
	return r
}

// Float adds a number member (NaN and infinities become null).
func (r *Row) Float(name string, v float64) *Row {
	r.name(name)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.b = append(r.b, "null"...)
		return r
	}
	r.b = strconv.AppendFloat(r.b, v, 'g', -1, 64)
	return r
}

// Bool adds a boolean member.
func (r *Row) Bool(name string, v bool) *Row {
	r.name(name)
	r.b = strconv.AppendBool(r.b, v)
	return r
}

// Time adds a timestamp member as an RFC 3339 string in UTC.
func (r *Row) Time(name string, t time.Time) *Row {
	r.name(name)
	r.b = append(r.b, '"')
	r.b = t.UTC().AppendFormat(r.b, time.RFC3339Nano)
	r.b = append(r.b, '"')
	return r
}

// Null adds a null member.
func (r *Row) Null(name string) *Row {
	r.name(name)
	r.b = append(r.b, "null"...)
	return r
}

// Raw adds a member whose value is raw JSON, written as is (nil writes null).
// It must be valid JSON; a value spanning lines is compacted.
func (r *Row) Raw(name string, json []byte) *Row {
	r.name(name)
	if len(json) == 0 {
		json = []byte("null")
	}
	if bytes.IndexByte(json, '\n') >= 0 {
		var buf bytes.Buffer
		if stdjson.Compact(&buf, json) == nil {
			json = buf.Bytes()
		}
	}
	r.b = append(r.b, json...)
	return r
}

// Bytes returns the row as a JSON object (a new slice).
func (r *Row) Bytes() []byte {
	return r.appendTo(nil)
}

func (r *Row) appendTo(b []byte) []byte {
	if len(r.b) == 0 {
		return append(b, '{', '}')
	}
	b = append(b, r.b...)
	return append(b, '}')
}
