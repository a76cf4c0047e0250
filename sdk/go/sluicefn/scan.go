package sluicefn

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Byte-level JSON scanning: enough to find members and skip values without
// decoding them. Every function takes well-formed input for granted only as far
// as it must: malformed input yields -1 or false, never a panic.

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"', or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		return skipNested(b, i)
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			if i == start {
				return -1
			}
			return i
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

func skipNested(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			if i = skipString(b, i); i < 0 {
				return -1
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return -1
}

// member is one "key": value of an object, as raw spans.
type member struct {
	key, value []byte
}

// nextMember reads the member at b[i] (just after '{' or ','). It returns the
// member and the index after the following ',' or at the closing '}'.
// done reports the end of the object.
func nextMember(b []byte, i int) (m member, next int, done bool, ok bool) {
	i = skipWS(b, i)
	if i < len(b) && b[i] == '}' {
		return m, i + 1, true, true
	}
	if i >= len(b) || b[i] != '"' {
		return m, 0, false, false
	}
	end := skipString(b, i)
	if end < 0 {
		return m, 0, false, false
	}
	m.key = b[i+1 : end-1]
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return m, 0, false, false
	}
	i = skipWS(b, i+1)
	end = skipValue(b, i)
	if end < 0 {
		return m, 0, false, false
	}
	m.value = b[i:end]
	i = skipWS(b, end)
	if i < len(b) && b[i] == ',' {
		return m, i + 1, false, true
	}
	if i < len(b) && b[i] == '}' {
		return m, i, false, true
	}
	return m, 0, false, false
}

// keyEquals compares a raw (still escaped) key with name.
func keyEquals(raw []byte, name string) bool {
	for _, c := range raw {
		if c == '\\' {
			s, ok := unquoteBytes(raw)
			return ok && s == name
		}
	}
	return string(raw) == name
}

// Get returns the raw JSON value at path inside the JSON object data (nested
// objects by member name), or nil if it is missing or data is not an object.
// With no path it returns data itself. The result aliases data.
func Get(data []byte, path ...string) []byte {
	v := trimWS(data)
	for _, name := range path {
		v = getMember(v, name)
		if v == nil {
			return nil
		}
	}
	return v
}

func getMember(obj []byte, name string) []byte {
	if len(obj) == 0 || obj[0] != '{' {
		return nil
	}
	i := 1
	for {
		m, next, done, ok := nextMember(obj, i)
		if !ok || done {
			return nil
		}
		if keyEquals(m.key, name) {
			return m.value
		}
		if obj[next] == '}' {
			return nil
		}
		i = next
	}
}

func trimWS(b []byte) []byte {
	i := skipWS(b, 0)
	j := len(b)
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n' || b[j-1] == '\r') {
		j--
	}
	return b[i:j]
}

// Unquote decodes raw, a JSON string with its quotes, into a Go string. ok is
// false if raw is not a JSON string.
func Unquote(raw []byte) (s string, ok bool) {
	raw = trimWS(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	return unquoteBytes(raw[1 : len(raw)-1])
}

// unquoteBytes decodes the inside of a JSON string (without quotes).
func unquoteBytes(inner []byte) (string, bool) {
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			var s string
			q := make([]byte, 0, len(inner)+2)
			q = append(append(append(q, '"'), inner...), '"')
			if json.Unmarshal(q, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	if !utf8.Valid(inner) {
		var s string
		q := append(append(append([]byte{}, '"'), inner...), '"')
		_ = json.Unmarshal(q, &s) // replaces invalid bytes with U+FFFD
		return s, true
	}
	return string(inner), true
}

// unquoteToBytes is unquoteBytes returning bytes that alias inner when it has
// no escapes.
func unquoteToBytes(inner []byte) ([]byte, bool) {
	for _, c := range inner {
		if c == '\\' {
			s, ok := unquoteBytes(inner)
			return []byte(s), ok
		}
	}
	return inner, true
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// parseInt parses a decimal integer without allocating.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	if len(b) > 18 {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if neg {
			n = -n
		}
		return n, err == nil
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
