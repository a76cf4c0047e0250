package sluicefn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The framed protocol (docs/functions.md): a request is a header line
// {"__sluice":"batch","records":N} and N envelope lines; the response is the
// rows, one JSON object per line, then {"__sluice":"ok"} or
// {"__sluice":"error","message":"..."}.

const headerPrefix = `{"__sluice":"batch"`

// processor runs a BatchHandler over frames, reusing its buffers.
type processor struct {
	handle BatchHandler
	dec    decoder
	recs   []Record
	sizes  []int
	out    []byte
	emit   Emit
}

func newProcessor(h BatchHandler) *processor {
	p := &processor{handle: h}
	p.emit = p.emitRow
	return p
}

// processFrame handles one request frame and returns the response, which
// stays valid until the next call.
func (p *processor) processFrame(frame []byte) []byte {
	p.out = p.out[:0]
	body, n, err := p.splitHeader(frame)
	if err == nil {
		err = p.run(body, n, p.sizes)
	}
	if err != nil {
		p.out = appendErrorTerminator(p.out[:0], err)
		return p.out
	}
	p.out = append(p.out, `{"__sluice":"ok"}`+"\n"...)
	return p.out
}

// run decodes n envelope lines from body and calls the handler; rows go to
// p.out. sizes, if it has n entries, gives each line's length (newline
// included), which spares scanning for the newlines.
func (p *processor) run(body []byte, n int, sizes []int) error {
	if len(sizes) != n {
		sizes = nil
	}
	p.recs = p.recs[:0]
	for k := 0; k < n; {
		if len(body) == 0 {
			return fmt.Errorf("cannot read batch: %d of %d envelopes", k, n)
		}
		size := 0
		if sizes != nil {
			size = sizes[k]
		}
		var line []byte
		line, body = cutLine(body, size)
		if size == 0 && len(trimWS(line)) == 0 {
			continue
		}
		p.recs = append(p.recs, Record{})
		if err := p.dec.decode(line, &p.recs[k]); err != nil {
			return fmt.Errorf("cannot decode envelope %d: %w", k, err)
		}
		k++
	}
	return p.handle(p.recs, p.emit)
}

// cutLine splits the first line (without its newline) off body, trusting
// size if it ends at a newline.
func cutLine(body []byte, size int) (line, rest []byte) {
	if size > 0 && size <= len(body) && body[size-1] == '\n' {
		return body[:size-1], body[size:]
	}
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		return body[:i], body[i+1:]
	}
	return body, nil
}

// splitHeader parses the header line; the sizes it lists go to p.sizes.
func (p *processor) splitHeader(frame []byte) (body []byte, n int, err error) {
	i := bytes.IndexByte(frame, '\n')
	if i < 0 {
		i = len(frame)
	}
	header := frame[:i]
	if !bytes.HasPrefix(header, []byte(headerPrefix)) {
		return nil, 0, errors.New("cannot read batch: missing header")
	}
	if i < len(frame) {
		body = frame[i+1:]
	}
	count, j := fastInt(header, len(headerPrefix), `,"records":`)
	if j < 0 {
		var ok bool
		if count, ok = parseInt(Get(header, "records")); !ok {
			return nil, 0, errors.New("cannot read batch: bad record count")
		}
	}
	if count < 0 {
		return nil, 0, errors.New("cannot read batch: bad record count")
	}
	p.sizes = p.sizes[:0]
	if j >= 0 && hasLit(header, j, `,"sizes":[`) {
		p.sizes = parseSizes(header[j+len(`,"sizes":[`):], p.sizes)
	}
	return body, int(count), nil
}

// parseSizes reads "n,n,...]" in one loop; anything odd yields no sizes.
func parseSizes(b []byte, sizes []int) []int {
	n, digits := 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int(c-'0')
			digits++
		case (c == ',' || c == ']') && digits > 0:
			sizes = append(sizes, n)
			if c == ']' {
				return sizes
			}
			n, digits = 0, 0
		case c == ']' && len(sizes) == 0:
			return sizes
		default:
			return sizes[:0]
		}
	}
	return sizes[:0]
}

func appendErrorTerminator(b []byte, err error) []byte {
	b = append(b, `{"__sluice":"error","message":`...)
	b = appendString(b, err.Error())
	return append(b, "}\n"...)
}

var errNotObject = errors.New("row is not a JSON object")

// emitRow appends one row and a newline to p.out.
func (p *processor) emitRow(row any) error {
	switch v := row.(type) {
	case *Row:
		p.out = v.appendTo(p.out)
	case []byte:
		return p.emitRaw(v)
	case json.RawMessage:
		return p.emitRaw(v)
	default:
		b, err := json.Marshal(row)
		if err != nil {
			return fmt.Errorf("cannot encode row: %w", err)
		}
		if len(b) == 0 || b[0] != '{' {
			return errNotObject
		}
		p.out = append(p.out, b...)
	}
	p.out = append(p.out, '\n')
	return nil
}

func (p *processor) emitRaw(b []byte) error {
	if bytes.IndexByte(b, '\n') < 0 {
		p.out = append(append(p.out, b...), '\n')
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("cannot compact row: %w", err)
	}
	p.out = append(append(p.out, buf.Bytes()...), '\n')
	return nil
}

// oneShot handles plain envelope lines (no header, blank lines skipped) and
// returns the rows, or the handler's error.
func (p *processor) oneShot(input []byte) ([]byte, error) {
	p.out = p.out[:0]
	n := 0
	for _, line := range bytes.Split(input, []byte{'\n'}) {
		if len(trimWS(line)) > 0 {
			n++
		}
	}
	err := p.run(input, n, nil)
	return p.out, err
}
