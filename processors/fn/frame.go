package fn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Wire format (docs/functions.md, "Framing").

const terminatorPrefix = `{"__sluice":`

// tsLayout is RFC 3339 with a fixed width, so guests can parse it in place.
const tsLayout = "2006-01-02T15:04:05.000000000Z07:00"

// encoder builds request frames, reusing its buffers.
type encoder struct {
	env   []byte // the envelope lines
	sizes []int  // each line's length, newline included
	frame []byte
}

// appendEnvelopes appends one envelope line per record to e.env.
func (e *encoder) appendEnvelopes(batch []Envelope) error {
	e.env, e.sizes = e.env[:0], e.sizes[:0]
	for i := range batch {
		n := len(e.env)
		var err error
		if e.env, err = appendEnvelope(e.env, &batch[i]); err != nil {
			return err
		}
		e.sizes = append(e.sizes, len(e.env)-n)
	}
	return nil
}

// encodeFrame returns the framed request: the header line, with the record
// count and the line sizes, then the envelope lines. It stays valid until the
// next call.
func (e *encoder) encodeFrame(batch []Envelope) ([]byte, error) {
	if err := e.appendEnvelopes(batch); err != nil {
		return nil, err
	}
	b := append(e.frame[:0], `{"__sluice":"batch","records":`...)
	b = strconv.AppendInt(b, int64(len(batch)), 10)
	b = append(b, `,"sizes":[`...)
	for i, s := range e.sizes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(s), 10)
	}
	b = append(b, "]}\n"...)
	e.frame = append(b, e.env...)
	return e.frame, nil
}

// shrink drops buffers an unusually big batch left behind.
func (e *encoder) shrink() {
	if cap(e.frame) > 64<<20 {
		*e = encoder{}
	}
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
	b = e.Timestamp.UTC().AppendFormat(b, tsLayout)
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
