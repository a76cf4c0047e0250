package sluicefn

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Record is one input record, decoded from its envelope. It and all byte
// slices in it are valid only until the handler returns.
//
// Decoding is lazy where it can be: the timestamp and the headers are parsed
// when asked for, and Data is never parsed (use Get, String, Int... or
// Unmarshal on it).
type Record struct {
	Stream    string
	Partition int32
	Offset    int64
	Key       []byte // nil for a record without a key; exact bytes, also for non-UTF-8 keys
	Data      []byte // the record's JSON value, raw (an object, a string, ...)

	ts      []byte // the timestamp's JSON string, quotes included
	headers []byte // the headers' JSON object
}

// Timestamp returns the record's timestamp, in UTC (the zero Time if the
// envelope had none or it did not parse).
func (r *Record) Timestamp() time.Time {
	t, _ := parseTime(r.ts)
	return t
}

// Header returns the value of the header name.
func (r *Record) Header(name string) (string, bool) {
	if len(r.headers) <= 2 {
		return "", false
	}
	return Unquote(getMember(r.headers, name))
}

// Headers returns all headers (nil if none), in a new map.
func (r *Record) Headers() map[string]string {
	h, _ := parseHeaders(r.headers)
	return h
}

// Get returns the raw JSON value at path inside Data (see the package function
// Get), or nil.
func (r *Record) Get(path ...string) []byte { return Get(r.Data, path...) }

// String returns the string at path inside Data (Data itself with no path).
// ok is false if it is missing or not a JSON string.
func (r *Record) String(path ...string) (s string, ok bool) { return Unquote(Get(r.Data, path...)) }

// Int returns the integer at path inside Data. ok is false if it is missing or
// not an integer.
func (r *Record) Int(path ...string) (int64, bool) { return parseInt(Get(r.Data, path...)) }

// Float returns the number at path inside Data.
func (r *Record) Float(path ...string) (float64, bool) {
	v := Get(r.Data, path...)
	if len(v) == 0 || v[0] == '"' {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

// Bool returns the boolean at path inside Data.
func (r *Record) Bool(path ...string) (v bool, ok bool) {
	switch string(Get(r.Data, path...)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Unmarshal decodes Data with encoding/json. Convenient, but about two orders of
// magnitude slower inside wasm than Get and friends.
func (r *Record) Unmarshal(v any) error { return json.Unmarshal(r.Data, v) }

var errEnvelope = errors.New("malformed envelope")

// decoder turns envelope lines into Records, reusing memory across batches.
type decoder struct {
	streamRaw string // the last stream name as it appeared, quotes included
	stream    string
}

// decode fills r from one envelope line (without its newline). The fast path
// reads the host's exact layout without scanning (docs/functions.md); any
// other member order or spacing takes the general path.
func (d *decoder) decode(line []byte, r *Record) error {
	*r = Record{}
	if d.decodeFast(line, r) {
		return nil
	}
	*r = Record{}
	return d.decodeGeneral(trimWS(line), r)
}

// decodeGeneral reads members in any order, but still relies on "data" being
// the last member: its value is the rest of the line up to the closing brace,
// so the payload is never scanned.
func (d *decoder) decodeGeneral(line []byte, r *Record) error {
	if len(line) < 2 || line[0] != '{' || line[len(line)-1] != '}' {
		return errEnvelope
	}
	i := 1
	for {
		i = skipWS(line, i)
		if hasLit(line, i, `"data":`) {
			r.Data = trimWS(line[i+7 : len(line)-1])
			return nil
		}
		m, next, done, ok := nextMember(line, i)
		if !ok || done {
			return errEnvelope
		}
		if err := d.field(r, m); err != nil {
			return err
		}
		if line[next] == '}' {
			r.Data = []byte("null")
			return nil
		}
		i = next
	}
}

func (d *decoder) field(r *Record, m member) error {
	ok := true
	switch string(m.key) {
	case "stream":
		r.Stream, ok = d.internStream(m.value)
	case "partition":
		var n int64
		n, ok = parseInt(m.value)
		r.Partition = int32(n)
	case "offset":
		r.Offset, ok = parseInt(m.value)
	case "key":
		r.Key, ok = parseKey(m.value)
	case "key_base64":
		r.Key, ok = parseKeyBase64(m.value)
	case "timestamp":
		r.ts = m.value
	case "headers":
		r.headers = m.value
	}
	if !ok {
		return errors.New("malformed envelope member " + strconv.Quote(string(m.key)))
	}
	return nil
}

func parseKey(v []byte) ([]byte, bool) {
	if string(v) == "null" {
		return nil, true
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	return unquoteToBytes(v[1 : len(v)-1])
}

func parseKeyBase64(v []byte) ([]byte, bool) {
	s, ok := Unquote(v)
	if !ok {
		return nil, false
	}
	k, err := base64.StdEncoding.DecodeString(s)
	return k, err == nil
}

func (d *decoder) internStream(raw []byte) (string, bool) {
	if d.stream != "" && string(raw) == d.streamRaw {
		return d.stream, true
	}
	s, ok := Unquote(raw)
	if ok {
		d.streamRaw = string(raw)
		d.stream = s
	}
	return s, ok
}

func parseHeaders(v []byte) (map[string]string, bool) {
	if len(v) <= 2 || string(v) == "null" {
		return nil, true
	}
	if v[0] != '{' {
		return nil, false
	}
	h := map[string]string{}
	for i := 1; ; {
		m, next, done, ok := nextMember(v, i)
		if !ok {
			return nil, false
		}
		if done {
			return h, true
		}
		k, ok1 := unquoteBytes(m.key)
		val, ok2 := Unquote(m.value)
		if !ok1 || !ok2 {
			return nil, false
		}
		h[k] = val
		if v[next] == '}' {
			return h, true
		}
		i = next
	}
}
