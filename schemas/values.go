package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// MapEntry is one entry of a map value, which a Row holds as []MapEntry in
// the order of the JSON object's keys (a repeated key keeps its first
// position and its last value, as encoding/json does).
type MapEntry struct {
	Key   string
	Value any
}

// parseValue converts one JSON value (not null at the top level) to type t.
// On failure the FieldError's Column is the path below the column, like
// "[2].price" or "" for the value itself; the caller prefixes the column.
func parseValue(t *typ, raw []byte) (any, *FieldError) {
	switch t.tag {
	case tList:
		return parseList(t, raw)
	case tMap:
		return parseMap(t, raw)
	case tStruct:
		return parseStruct(t, raw)
	}
	v, reason := parseScalar(t, raw)
	if reason != "" {
		return nil, misfit(t, raw, reason)
	}
	return v, nil
}

func misfit(t *typ, raw []byte, reason string) *FieldError {
	return &FieldError{Type: t.canon, Value: shorten(raw), Reason: reason}
}

// nested converts a value inside a list, map or struct, where null is
// always allowed; on failure it prefixes the error's path with step.
func nested(t *typ, raw []byte, step func() string) (any, *FieldError) {
	if string(raw) == "null" {
		return nil, nil
	}
	v, fe := parseValue(t, raw)
	if fe != nil {
		fe.Column = step() + fe.Column
	}
	return v, fe
}

func parseList(t *typ, raw []byte) (any, *FieldError) {
	if raw[0] != '[' {
		return nil, misfit(t, raw, "not a JSON array")
	}
	vals := []any{}
	for e := range elements(raw) {
		i := len(vals)
		v, fe := nested(t.elem, e, func() string { return "[" + strconv.Itoa(i) + "]" })
		if fe != nil {
			return nil, fe
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func parseMap(t *typ, raw []byte) (any, *FieldError) {
	if raw[0] != '{' {
		return nil, misfit(t, raw, "not a JSON object")
	}
	entries := []MapEntry{}
	var index map[string]int // key → entry, once there are many
	for q, rv := range members(raw) {
		key, _ := unquote(q)
		v, fe := nested(t.elem, rv, func() string { return "[" + strconv.Quote(key) + "]" })
		if fe != nil {
			return nil, fe
		}
		if i, dup := findEntry(entries, index, key); dup {
			entries[i].Value = v
			continue
		}
		entries = append(entries, MapEntry{Key: key, Value: v})
		if index == nil && len(entries) > 16 {
			index = make(map[string]int, 2*len(entries))
			for i, e := range entries {
				index[e.Key] = i
			}
		} else if index != nil {
			index[key] = len(entries) - 1
		}
	}
	return entries, nil
}

// findEntry finds key among entries: by index when there is one, else by a
// scan (cheaper for the usual small map).
func findEntry(entries []MapEntry, index map[string]int, key string) (int, bool) {
	if index != nil {
		i, ok := index[key]
		return i, ok
	}
	for i := range entries {
		if entries[i].Key == key {
			return i, true
		}
	}
	return 0, false
}

// parseStruct converts a JSON object to one value per declared field (nil
// when absent). A field the struct does not declare makes the value not fit:
// a struct has no rest column to keep it in, and dropping it silently would
// lose data. Declare it (adding a nullable struct field is an allowed
// schema change) or use a json or map type for open-ended objects.
func parseStruct(t *typ, raw []byte) (any, *FieldError) {
	if raw[0] != '{' {
		return nil, misfit(t, raw, "not a JSON object")
	}
	vals := make([]any, len(t.fields))
	for q, rv := range members(raw) {
		key := decodeKey(q)
		i := fieldIndex(t.fields, key)
		if i < 0 {
			return nil, misfit(t, raw, fmt.Sprintf("has field %s, which the struct does not declare", q))
		}
		name := t.fields[i].name
		v, fe := nested(t.fields[i].typ, rv, func() string { return "." + name })
		if fe != nil {
			return nil, fe
		}
		vals[i] = v
	}
	return vals, nil
}

func fieldIndex(fs []field, key []byte) int {
	for i := range fs {
		if fs[i].name == string(key) {
			return i
		}
	}
	return -1
}

// parseScalar converts one JSON value to a scalar or decimal type t; a
// non-empty reason says why it cannot.
func parseScalar(t *typ, raw []byte) (any, string) {
	switch t.tag {
	case tString:
		if s, ok := unquote(raw); ok {
			return s, ""
		}
		return nil, "not a JSON string"
	case tBool:
		switch string(raw) {
		case "true":
			return true, ""
		case "false":
			return false, ""
		}
		return nil, "not true or false"
	case tInt32, tInt64:
		return parseInt(t.tag, raw)
	case tFloat32, tFloat64:
		return parseFloat(t.tag, raw)
	case tTimestamp:
		return parseTimestamp(raw)
	case tDate:
		s, _ := unquote(raw)
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return nil, "not a YYYY-MM-DD string"
		}
		return int32(d.Unix() / 86400), ""
	case tJSON:
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, "not JSON"
		}
		return cleanJSON(buf.Bytes()), ""
	case tBinary:
		s, ok := unquote(raw)
		b, err := base64.StdEncoding.DecodeString(s)
		if !ok || err != nil {
			return nil, "not a base64 string"
		}
		return b, ""
	case tDecimal:
		return parseDecimal(t, raw)
	}
	return nil, "BUG: not a scalar type"
}

func parseInt(tg tag, raw []byte) (any, string) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return nil, "not an integer"
	}
	if tg == tInt32 {
		if n < math.MinInt32 || n > math.MaxInt32 {
			return nil, "out of int32 range"
		}
		return int32(n), ""
	}
	return n, ""
}

func parseFloat(tg tag, raw []byte) (any, string) {
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return nil, "not a number"
	}
	if tg == tFloat32 {
		if math.IsInf(float64(float32(f)), 0) {
			return nil, "out of float32 range"
		}
		return float32(f), ""
	}
	return f, ""
}
