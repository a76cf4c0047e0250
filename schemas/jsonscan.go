package schemas

import (
	"bytes"
	"encoding/json"
	"iter"
	"unicode/utf8"
)

// Convert checks the whole record with json.Valid (which allocates nothing)
// and then walks it with the small splitter below, which may therefore
// assume valid JSON and needs no error handling. That replaces decoding
// into map[string]json.RawMessage, which copied every key and value and
// built a map for each record, only to look most of them up once.

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// members yields the key (as written, quotes included) and the value of
// each member of obj, a valid JSON object, in order.
func members(obj []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		i := skipSpace(obj, 0) + 1 // past '{'
		for {
			i = skipSpace(obj, i)
			switch obj[i] {
			case '}':
				return
			case ',':
				i = skipSpace(obj, i+1)
			}
			end := stringEnd(obj, i)
			key := obj[i:end]
			i = skipSpace(obj, skipSpace(obj, end)+1) // past ':'
			end = valueEnd(obj, i)
			if !yield(key, obj[i:end]) {
				return
			}
			i = end
		}
	}
}

// elements yields each element of arr, a valid JSON array, in order.
func elements(arr []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		i := skipSpace(arr, 0) + 1 // past '['
		for {
			i = skipSpace(arr, i)
			switch arr[i] {
			case ']':
				return
			case ',':
				i = skipSpace(arr, i+1)
			}
			end := valueEnd(arr, i)
			if !yield(arr[i:end]) {
				return
			}
			i = end
		}
	}
}

// unquote decodes the JSON string raw as encoding/json does (invalid UTF-8
// becomes U+FFFD); ok is false if raw is not a string. The common string,
// with no escapes, is converted without a decode.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	return decodeString(raw)
}

// decodeString is unquote's slow path, apart so that only it pays for the
// string escaping to the heap.
func decodeString(raw []byte) (string, bool) {
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
}

// decodeKey is unquote for object keys, without allocating for the common
// key.
func decodeKey(q []byte) []byte {
	inner := q[1 : len(q)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return inner
	}
	s, _ := unquote(q)
	return []byte(s)
}

// notObject explains why data, which is not a JSON object, cannot be a row.
func notObject(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return &notObjectError{err.Error()}
	}
	what := map[byte]string{'[': "an array", '"': "a string", 't': "true", 'f': "false", 'n': "null"}[data[skipSpace(data, 0)]]
	if what == "" {
		what = "a number"
	}
	return &notObjectError{"got " + what}
}

type notObjectError struct{ why string }

func (e *notObjectError) Error() string { return "data is not a JSON object: " + e.why }
