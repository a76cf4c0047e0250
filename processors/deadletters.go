package processors

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/schemas"
)

// Dead-letter records are the given-up records as they were (key, value,
// headers, timestamp), plus these headers, which say where they came from
// and why they were given up. They are written after the record's own
// headers, so a record header of the same name is overridden.
const (
	hdrError     = "sluice.error"
	hdrPipeline  = "sluice.pipeline"
	hdrStream    = "sluice.stream"
	hdrPartition = "sluice.partition"
	hdrOffset    = "sluice.offset"
	hdrAttempts  = "sluice.attempts"
	hdrFunction  = "sluice.function"
	hdrVersion   = "sluice.function_version"
	hdrFailedAt  = "sluice.failed_at" // RFC 3339, UTC
	// hdrCommitted is the origin partition's durable offset when the batch
	// was given up: the fate of every record below it (a row or a dead
	// letter) was settled before. DeadLetterRows deduplicates with it.
	hdrCommitted = "sluice.committed"
)

var sluiceHeaders = []string{hdrError, hdrPipeline, hdrStream, hdrPartition, hdrOffset, hdrAttempts,
	hdrFunction, hdrVersion, hdrFailedAt, hdrCommitted}

// giveUp says why and when a batch was given up.
type giveUp struct {
	err      error
	attempts int
	function string // function[:qualifier]; "" for a direct pipeline
	version  string // the function version that ran last
	// committed is the partition's durable offset (see hdrCommitted).
	committed int64
	at        time.Time
}

// deadLetters returns b's records as dead letters for topic.
func deadLetters(topic, pipeline string, b *Batch, why giveUp) []*kgo.Record {
	msg := "unknown error"
	if why.err != nil {
		msg = why.err.Error()
	}
	recs := make([]*kgo.Record, len(b.Records))
	for i, rec := range b.Records {
		hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+len(sluiceHeaders))
		for k, v := range rec.Headers {
			hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		add := func(k, v string) {
			if v != "" {
				hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
		}
		add(hdrError, msg)
		add(hdrPipeline, pipeline)
		add(hdrStream, b.Stream)
		add(hdrPartition, strconv.Itoa(int(rec.Partition)))
		add(hdrOffset, strconv.FormatInt(rec.Offset, 10))
		add(hdrAttempts, strconv.Itoa(why.attempts))
		add(hdrFunction, why.function)
		add(hdrVersion, why.version)
		add(hdrFailedAt, why.at.UTC().Format(time.RFC3339Nano))
		add(hdrCommitted, strconv.FormatInt(why.committed, 10))
		recs[i] = &kgo.Record{Topic: topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp, Headers: hs}
	}
	return recs
}

// Stateful is a Processor whose rows depend on what it processed before.
// The partition records its state with the table's progress at every flush
// (sink.Writer.SetState), so after a crash it resumes with exactly the
// state that goes with the offset the partition resumes from.
type Stateful interface {
	// Restore sets the state recorded with the offset the partition
	// resumes from (nil: none). It is called before the first batch.
	Restore(state []byte)
	// State returns the state after the last batch that Process returned
	// rows for, as JSON.
	State() []byte
}

// DeadLetterRows is the processor of a dead-letter table's internal
// pipeline (deploy.InternalDeadLetters): it writes each dead letter as one
// row of deploy.DeadLetterSchema: the record's stream, partition, offset,
// key, timestamp, headers (without the sluice.* ones) and data as sent, and
// the error, attempts, function, function version and time of giving up. A
// record without the sluice.* headers (not sent by sluice) still gets its
// row, with those columns null.
//
// Exactly once. The rows of the internal pipeline are exactly once like
// any pipeline's, but the internal stream gets dead letters at least once:
// a worker that crashes after sending a batch's dead letters and before its
// progress passed the batch reads the batch again and may give it up again.
// So a dead letter whose origin (pipeline, stream, partition, offset) was
// written before is dropped. What was written is remembered per origin
// partition in a small state kept with the progress (Stateful): the
// origin's settled offset (hdrCommitted; a dead letter below it is always
// a resend) and the origin offsets written at or above it, each with the
// dead-letter offset it was first read at. That needs every dead letter of
// one origin partition in one partition of the internal stream, in the
// order sent (the internal stream has one partition). A record given up
// by a worker that crashed before recording it, and processed fine by the
// next one (a transient failure, or a fixed function), keeps its
// dead-letter row: it is in both tables, and the row says why the first
// attempt failed.
type DeadLetterRows struct {
	Schema *schemas.Schema

	seen       dedup
	restoreErr error
}

func (d *DeadLetterRows) Close() {}

// Restore implements Stateful.
func (d *DeadLetterRows) Restore(state []byte) {
	d.seen, d.restoreErr = dedup{}, nil
	if state != nil {
		if err := json.Unmarshal(state, &d.seen); err != nil {
			d.restoreErr = fmt.Errorf("cannot decode the dead-letter deduplication state recorded in the progress object (the object is corrupt; delete it to read the internal stream again, which may repeat rows): %w", err)
		}
	}
}

// State implements Stateful.
func (d *DeadLetterRows) State() []byte {
	data, err := json.Marshal(d.seen)
	if err != nil {
		panic("BUG: cannot encode dead-letter state: " + err.Error())
	}
	return data
}

// Process converts each dead letter that is not a resend into a row. The
// state moves only when the whole batch converted.
func (d *DeadLetterRows) Process(_ context.Context, b *Batch) ([]schemas.Row, error) {
	if d.restoreErr != nil {
		return nil, d.restoreErr
	}
	seen := d.seen.clone()
	rows := make([]schemas.Row, 0, len(b.Records))
	for _, r := range b.Records {
		l := readLetter(r)
		if l.hasOrigin && !seen.admit(l, r.Offset) {
			continue
		}
		row, err := d.Schema.Convert(l.row(r), schemas.Meta{
			Stream: b.Stream, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Timestamp: r.Timestamp,
		}, schemas.Strict)
		if err != nil {
			return nil, &RecordError{Partition: r.Partition, Offset: r.Offset, Err: fmt.Errorf("cannot write dead letter as a row: %w", err)}
		}
		rows = append(rows, row)
	}
	d.seen = seen
	return rows, nil
}

// letter is what a dead letter's sluice.* headers say.
type letter struct {
	origin    string // pipeline/stream/partition
	hasOrigin bool   // the origin headers are all there and parse
	offset    int64  // in the origin partition
	committed int64  // hdrCommitted
	partition int64
	attempts  *int64
	failedAt  *time.Time
}

func readLetter(r Record) letter {
	h := r.Headers
	l := letter{origin: h[hdrPipeline] + "/" + h[hdrStream] + "/" + h[hdrPartition]}
	var err1, err2, err3 error
	l.partition, err1 = strconv.ParseInt(h[hdrPartition], 10, 32)
	l.offset, err2 = strconv.ParseInt(h[hdrOffset], 10, 64)
	l.committed, err3 = strconv.ParseInt(h[hdrCommitted], 10, 64)
	l.hasOrigin = h[hdrPipeline] != "" && h[hdrStream] != "" && err1 == nil && err2 == nil && err3 == nil
	if n, err := strconv.ParseInt(h[hdrAttempts], 10, 32); err == nil {
		l.attempts = &n
	}
	if t, err := time.Parse(time.RFC3339Nano, h[hdrFailedAt]); err == nil {
		l.failedAt = &t
	}
	return l
}

// row is the dead letter r as a JSON row of deploy.DeadLetterSchema; a
// column whose header is missing is left out (null; failed_at then takes
// the record time).
func (l letter) row(r Record) []byte {
	h := r.Headers
	v := map[string]any{"timestamp": r.Timestamp.UTC(), "data": string(r.Value), "headers": userHeaders(h)}
	if r.Key != nil {
		v["key"] = string(r.Key)
	}
	if l.failedAt != nil {
		v["failed_at"] = *l.failedAt
	}
	if l.attempts != nil {
		v["attempts"] = *l.attempts
	}
	for col, hdr := range map[string]string{"pipeline": hdrPipeline, "stream": hdrStream, "error": hdrError,
		"function": hdrFunction, "function_version": hdrVersion} {
		if s, ok := h[hdr]; ok {
			v[col] = s
		}
	}
	if l.hasOrigin {
		v["partition"], v["offset"] = l.partition, l.offset
	}
	data, err := json.Marshal(v)
	if err != nil {
		panic("BUG: cannot encode dead-letter row: " + err.Error())
	}
	return data
}

// userHeaders is the record's own headers: all but the sluice.* ones.
func userHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[k] = v
	}
	for _, k := range sluiceHeaders {
		delete(out, k)
	}
	return out
}

// dedup is what DeadLetterRows remembers per origin partition
// (pipeline/stream/partition).
type dedup map[string]*originSeen

type originSeen struct {
	// Settled is the highest hdrCommitted seen: the fate of every origin
	// offset below it was settled before, so a dead letter for one of them
	// is a resend.
	Settled int64 `json:"settled"`
	// Spans are the origin offsets at or above Settled already written.
	Spans []span `json:"spans,omitempty"`
}

// span: origin offsets From..To were first read at dead-letter offsets At,
// At+1, ..., At+(To-From).
type span struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
	At   int64 `json:"at"`
}

func (d dedup) clone() dedup {
	out := make(dedup, len(d))
	for k, s := range d {
		out[k] = &originSeen{Settled: s.Settled, Spans: append([]span(nil), s.Spans...)}
	}
	return out
}

// admit reports whether l, read at dead-letter offset at, is to be written
// (false: a resend of one written before), and remembers it.
func (d dedup) admit(l letter, at int64) bool {
	s := d[l.origin]
	if s == nil {
		s = &originSeen{}
		d[l.origin] = s
	}
	defer s.settle(l.committed)
	if l.offset < s.Settled {
		return false
	}
	for _, sp := range s.Spans {
		if sp.From <= l.offset && l.offset <= sp.To {
			return sp.At+(l.offset-sp.From) >= at // equal: the same record again
		}
	}
	if n := len(s.Spans); n > 0 && s.Spans[n-1].To+1 == l.offset && s.Spans[n-1].At+(l.offset-s.Spans[n-1].From) == at {
		s.Spans[n-1].To++
	} else {
		s.Spans = append(s.Spans, span{From: l.offset, To: l.offset, At: at})
	}
	return true
}

// settle raises Settled to committed and forgets the spans below it.
func (s *originSeen) settle(committed int64) {
	if committed <= s.Settled {
		return
	}
	s.Settled = committed
	kept := s.Spans[:0]
	for _, sp := range s.Spans {
		if sp.To < committed {
			continue
		}
		if sp.From < committed {
			sp.At += committed - sp.From
			sp.From = committed
		}
		kept = append(kept, sp)
	}
	s.Spans = kept
}
