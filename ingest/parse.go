// Package ingest is the HTTP ingest API: it parses JSON and NDJSON batches,
// checks each record on its own (one bad record fails alone), and produces the
// good ones to the stream's Kafka topic, answering each record's partition
// and offset in the order they were sent, Kinesis PutRecords style.
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Limits of the ingest API.
const (
	// MaxBodyBytes bounds one request body; a larger body is refused whole
	// (413) before anything is produced.
	MaxBodyBytes = 32 << 20
	// MaxRecordBytes bounds one record's data (Kafka's default
	// message.max.bytes is about 1 MB); a larger record fails alone.
	MaxRecordBytes = 1 << 20
	// MaxKeyBytes bounds a partition key.
	MaxKeyBytes = 1 << 10
	// MaxRecords bounds the records of one request.
	MaxRecords = 50_000
)

// Error codes of a failed record.
const (
	CodeInvalidJSON   = "InvalidJSON"
	CodeMissingData   = "MissingData"
	CodeTooLarge      = "RecordTooLarge"
	CodeInvalidKey    = "InvalidKey"
	CodeProduceFailed = "ProduceFailed"
)

// item is one parsed record, or the reason it cannot be one.
type item struct {
	key   []byte
	value []byte
	err   *recordError
}

type recordError struct {
	code   string
	status int
	msg    string
}

func fail(code string, status int, format string, args ...any) item {
	return item{err: &recordError{code: code, status: status, msg: fmt.Sprintf(format, args...)}}
}

// errTooManyRecords refuses a request of more than MaxRecords records as a
// whole: nothing of it is written, and it costs no per-record answer (a
// 32 MiB body of one-byte lines would otherwise make 16 million of them).
var errTooManyRecords = fmt.Errorf("more than %d records in one request; nothing was accepted, send them in several requests", MaxRecords)

// countLines counts the non-blank lines of an NDJSON body, stopping past
// limit.
func countLines(body []byte, limit int) int {
	n := 0
	for len(body) > 0 && n <= limit {
		raw := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			raw, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(bytes.TrimSpace(raw)) > 0 {
			n++
		}
	}
	return n
}

// parseNDJSON reads one record's data per line; blank lines are skipped (and
// still counted for line numbers). keyField, if set, names the field of each
// object whose value is the record's partition key.
func parseNDJSON(body []byte, keyField string) ([]item, error) {
	if countLines(body, MaxRecords) > MaxRecords {
		return nil, errTooManyRecords
	}
	var items []item
	eachLine(body, func(line int, raw []byte) {
		items = append(items, checkRecord(fmt.Sprintf("line %d", line), bytes.TrimSpace(raw), nil, keyField))
	})
	return items, nil
}

// eachLine calls fn with each line of body that is not blank, and its
// number (from 1, blank lines counted), without its \n or \r\n.
func eachLine(body []byte, fn func(line int, raw []byte)) {
	line := 0
	for len(body) > 0 {
		line++
		var raw []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			raw, body = body[:i], body[i+1:]
		} else {
			raw, body = body, nil
		}
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if len(bytes.TrimSpace(raw)) > 0 {
			fn(line, raw)
		}
	}
}

// batch is the JSON body: {"records":[{"key": "...", "data": {...}}]}.
type batch struct {
	Records []struct {
		Key  json.RawMessage `json:"key"`
		Data json.RawMessage `json:"data"`
	} `json:"records"`
}

// parseJSON reads a JSON batch. A body that is not such a document fails as
// a whole (there is no record boundary to save the others by).
func parseJSON(body []byte, keyField string) ([]item, error) {
	var b batch
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, describeJSONError(body, err)
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf(`body has data after the JSON document (at byte %d); send one {"records": [...]} object`, dec.InputOffset())
	}
	if b.Records == nil {
		return nil, errors.New(`body has no "records" array; send {"records": [{"key": "...", "data": {...}}]}`)
	}
	if len(b.Records) > MaxRecords {
		return nil, errTooManyRecords
	}
	items := make([]item, 0, len(b.Records))
	for i, r := range b.Records {
		where := fmt.Sprintf("records[%d]", i)
		switch {
		case len(r.Data) == 0 || string(r.Data) == "null":
			items = append(items, fail(CodeMissingData, 400, `%s: has no "data" (or it is null)`, where))
		default:
			items = append(items, checkRecord(where, r.Data, r.Key, keyField))
		}
	}
	return items, nil
}

// checkRecord validates one record's data and works out its key: an explicit
// key (a JSON string, or any scalar, used as its text), else keyField's value.
func checkRecord(where string, data, key json.RawMessage, keyField string) item {
	if len(data) > MaxRecordBytes {
		return fail(CodeTooLarge, 413, "%s: record is %d bytes, over the %d-byte limit", where, len(data), MaxRecordBytes)
	}
	if !utf8.Valid(data) {
		return fail(CodeInvalidJSON, 400, "%s: invalid JSON: not valid UTF-8", where)
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return fail(CodeInvalidJSON, 400, "%s: invalid JSON: %v", where, err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return fail(CodeInvalidJSON, 400, "%s: invalid JSON: %v", where, err)
	}
	it := item{value: buf.Bytes()}
	if len(key) == 0 && keyField != "" {
		var obj map[string]json.RawMessage
		if json.Unmarshal(data, &obj) == nil {
			key = obj[keyField]
		}
	}
	if len(key) > 0 && string(key) != "null" {
		k, err := keyText(key)
		if err != nil {
			return fail(CodeInvalidKey, 400, "%s: key: %v", where, err)
		}
		if len(k) > MaxKeyBytes {
			return fail(CodeInvalidKey, 400, "%s: key is %d bytes, over the %d-byte limit", where, len(k), MaxKeyBytes)
		}
		it.key = k
	}
	return it
}

func keyText(raw json.RawMessage) ([]byte, error) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	case '{', '[':
		return nil, errors.New("must be a string or a scalar, not an object or array")
	}
	return []byte(raw), nil
}

// describeJSONError says where in the body a JSON error is, by line and
// column.
func describeJSONError(body []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	// Offset counts the bytes read, including the offending one.
	off = min(max(off-1, 0), int64(len(body)))
	line := 1 + bytes.Count(body[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(body[:off], '\n'))
	return fmt.Errorf("invalid JSON body at line %d, column %s: %w", line, strconv.FormatInt(col, 10), err)
}

// parseText reads a text/plain body: each line (ending in \n or \r\n) that
// is not blank is one record, {"message": line}, so raw log lines land in
// the log schema's message column. Invalid UTF-8 is replaced (U+FFFD).
func parseText(body []byte) ([]item, error) {
	if countLines(body, MaxRecords) > MaxRecords {
		return nil, errTooManyRecords
	}
	var items []item
	eachLine(body, func(line int, raw []byte) {
		where := fmt.Sprintf("line %d", line)
		if len(raw) > MaxRecordBytes {
			items = append(items, fail(CodeTooLarge, 413, "%s: record is %d bytes, over the %d-byte limit", where, len(raw), MaxRecordBytes))
			return
		}
		value, _ := json.Marshal(map[string]string{"message": string(raw)})
		if len(value) > MaxRecordBytes {
			items = append(items, fail(CodeTooLarge, 413, "%s: record is %d bytes as JSON, over the %d-byte limit", where, len(value), MaxRecordBytes))
			return
		}
		items = append(items, item{value: value})
	})
	return items, nil
}
