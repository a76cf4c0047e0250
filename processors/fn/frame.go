package fn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Wire format (docs/functions.md, "Framing").

const terminatorPrefix = `{"__sluice":`

// appendHeader appends the batch header line of the framed protocol.
func appendHeader(b []byte, n int) []byte {
	b = append(b, `{"__sluice":"batch","records":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, "}\n"...)
}

// appendEnvelopes appends one envelope line per record.
func appendEnvelopes(b []byte, batch []Envelope) ([]byte, error) {
	var err error
	for i := range batch {
		if b, err = appendEnvelope(b, &batch[i]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendEnvelope appends e as one line. "data" is always the last member, so
// a guest can take the rest of the line as the payload without scanning it.
func appendEnvelope(b []byte, e *Envelope) ([]byte, error) {
	b = append(b, `{"stream":`...)
	b = appendString(b, e.Stream)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(e.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, e.Offset, 10)
	b = append(b, `,"key":`...)
	switch {
	case e.Key == nil:
		b = append(b, "null"...)
	case utf8.Valid(e.Key):
		b = appendString(b, string(e.Key))
	default:
		b = appendString(b, string(e.Key))
		b = append(b, `,"key_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Key)
		b = append(b, '"')
	}
	b = append(b, `,"timestamp":"`...)
	b = e.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","headers":`...)
	b = appendHeaders(b, e.Headers)
	b = append(b, `,"data":`...)
	b, err := appendData(b, e.Data)
	if err != nil {
		return nil, fmt.Errorf("cannot encode record at offset %d: %w", e.Offset, err)
	}
	return append(b, "}\n"...), nil
}

func appendHeaders(b []byte, h map[string]string) []byte {
	if len(h) == 0 {
		return append(b, "{}"...)
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, h[k])
	}
	return append(b, '}')
}

// appendData appends a record's JSON value, compacted onto one line if it
// spans several. It is not otherwise validated.
func appendData(b []byte, data []byte) ([]byte, error) {
	if len(data) == 0 {
		return append(b, "null"...), nil
	}
	if bytes.IndexByte(data, '\n') < 0 {
		return append(b, data...), nil
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, data); err != nil {
		return nil, fmt.Errorf("data is not valid JSON: %w", err)
	}
	return buf.Bytes(), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
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
			b = append(append(b, s[start:i]...), `\ufffd`...)
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
	return append(append(b, s[start:]...), '"')
}

// parseRows splits out (owned by the caller, not copied) into rows. framed
// says a terminator line must end it; its error message becomes a KindError.
func parseRows(out []byte, framed bool, hint int) ([][]byte, *InvokeError) {
	rows := make([][]byte, 0, hint)
	terminated := false
	for rest := out; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if terminated {
			return nil, protocolError("output after the terminator line: %q", clip(line))
		}
		if framed && bytes.HasPrefix(line, []byte(terminatorPrefix)) {
			if ierr := parseTerminator(line); ierr != nil {
				return nil, ierr
			}
			terminated = true
			continue
		}
		if !validRow(line) {
			return nil, protocolError("output line %d is not a JSON object: %q", len(rows)+1, clip(line))
		}
		rows = append(rows, line)
	}
	if framed && !terminated {
		return nil, protocolError("response ended without a terminator line")
	}
	return rows, nil
}

// validRow reports whether line is one JSON object.
func validRow(line []byte) bool {
	return line[0] == '{' && line[len(line)-1] == '}' && json.Valid(line)
}

func parseTerminator(line []byte) *InvokeError {
	var t struct {
		Status  string `json:"__sluice"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(line, &t); err != nil {
		return protocolError("bad terminator line %q: %v", clip(line), err)
	}
	switch t.Status {
	case "ok":
		return nil
	case "error":
		if t.Message == "" {
			t.Message = "function reported an error"
		}
		return &InvokeError{Kind: KindError, Err: errors.New(t.Message)}
	}
	return protocolError("bad terminator line %q", clip(line))
}

func protocolError(format string, args ...any) *InvokeError {
	return &InvokeError{Kind: KindProtocol, Err: fmt.Errorf(format, args...)}
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 120 {
		return b[:120]
	}
	return b
}
