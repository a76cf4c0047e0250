// Package fnlog keeps what functions write to stderr, in an internal Kafka
// topic, so that `sluice fn logs` shows the lines of every worker, also after
// restarts.
//
// Each batch's log is one record of Topic (key: the function name; value: a
// JSON Record with the batch's lines and where they came from). The topic has
// one partition and a retention of Retention, so the log is bounded by time
// and by the broker's retention.bytes, like any topic.
//
// Contracts:
//
//   - Writing never blocks or fails a batch: Add hands the record to the
//     producer and returns. If the producer's buffer is full (the broker is
//     unreachable), the batch's log is dropped and counted (Dropped), not
//     waited for. Logs are best effort; the function's status keeps the last
//     failure's stderr tail regardless.
//   - Order: the lines of one partition of one function appear in the order of
//     their batches; lines of different workers interleave in the order the
//     broker received them.
//   - Reading (Tail) scans the topic backwards from its end in windows until
//     it has the lines asked for, has reached the start, has read
//     MaxScanRecords records, or has run out of time (readTimeout, after at
//     least one window): a function that logged nothing recently among
//     chatty ones may show fewer lines than exist.
package fnlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-dev/sluice/deploy"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/kafkax"
)

// Topic is the internal topic of function logs.
const Topic = "_sluice_function_logs"

// Retention is how long the broker keeps function logs.
const Retention = 7 * 24 * time.Hour

// MaxScanRecords bounds the records one Tail reads.
const MaxScanRecords = 200_000

// scanWindow is how many records Tail reads per step backwards.
const scanWindow = 2_000

// MaxClockSkew is how far out of order the times of log records written by
// different workers may be; Tail with since looks this much further back.
const MaxClockSkew = 10 * time.Second

// readTimeout bounds one Tail.
const readTimeout = 30 * time.Second

// Source is where a batch's log came from (and when: Add sets Time if zero).
type Source = deploy.LogSource

// Record is one batch's log, as stored: the value of a record of Topic.
type Record struct {
	Source
	Lines []string `json:"lines"`
}

// Line is one line a function wrote, with where it came from: what Tail
// returns and the API shows.
type Line = deploy.LogLine

// Log writes and reads function logs. Safe for concurrent use.
type Log struct {
	brokers   []string
	kafkaOpts []kgo.Opt   // capacity clipped: appending copies
	cl        *kgo.Client // producer
	log       *slog.Logger
	dropped   atomic.Int64
	failed    atomic.Int64 // produce errors, logged once per errorLogEvery
}

// maxBuffered and maxBufferedBytes bound the batch logs waiting for the
// broker; past either, Add drops.
const (
	maxBuffered      = 10_000
	maxBufferedBytes = 64 << 20
)

const errorLogEvery = 1000

// Open connects to brokers (with kafkaOpts, such as the embedded broker's
// credentials) and creates Topic if it does not exist.
func Open(ctx context.Context, brokers []string, log *slog.Logger, kafkaOpts ...kgo.Opt) (*Log, error) {
	cl, err := kafkax.NewClient(brokers, append(slices.Clip(kafkaOpts),
		kgo.DefaultProduceTopic(Topic),
		kgo.MaxBufferedRecords(maxBuffered),
		kgo.MaxBufferedBytes(maxBufferedBytes),
		kgo.RecordDeliveryTimeout(time.Minute),
		kgo.ProducerLinger(50*time.Millisecond),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return nil, err
	}
	if err := kafkax.EnsureTopic(ctx, cl, Topic, 1, Retention); err != nil {
		cl.Close()
		return nil, fmt.Errorf("cannot open function logs: %w", err)
	}
	return &Log{brokers: brokers, kafkaOpts: slices.Clip(kafkaOpts), cl: cl, log: log}, nil
}

// Close flushes what is buffered (for at most a few seconds) and disconnects.
func (l *Log) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.cl.Flush(ctx)
	l.cl.Close()
}

// Dropped is how many batch logs Add dropped because the producer's buffer
// was full.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Add stores one batch's log (text: its stderr, split into lines here). An
// empty text stores nothing. It does not wait for the broker.
func (l *Log) Add(src Source, text []byte) {
	text = bytes.TrimRight(text, "\n")
	if l == nil || len(text) == 0 {
		return
	}
	if src.Time.IsZero() {
		src.Time = time.Now().UTC()
	}
	r := Record{Source: src}
	for _, line := range bytes.Split(text, []byte("\n")) {
		r.Lines = append(r.Lines, string(line))
	}
	value, err := json.Marshal(r)
	if err != nil { // cannot happen: strings and numbers only
		return
	}
	rec := &kgo.Record{Key: []byte(r.Function), Value: value} // timestamped when produced: kgo times out delivery from it
	l.cl.TryProduce(context.Background(), rec, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
		case errors.Is(err, kgo.ErrMaxBuffered):
			if n := l.dropped.Add(1); n%errorLogEvery == 1 && l.log != nil {
				l.log.Warn("dropping function logs: the broker does not keep up", "dropped", n)
			}
		default:
			if n := l.failed.Add(1); n%errorLogEvery == 1 && l.log != nil {
				l.log.Warn("cannot store function log", "function", r.Function, "failures", n, "err", err)
			}
		}
	})
}

// Tail returns the last n lines of function, oldest first (see the package
// comment for how far it looks). With since not zero, only lines written
// after it, and the scan stops at records older than since by more than
// MaxClockSkew: that is how `sluice fn logs --follow` polls cheaply.
func (l *Log) Tail(ctx context.Context, function string, n int, since time.Time) ([]Line, error) {
	if n <= 0 {
		return []Line{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	start, end, err := l.bounds(ctx)
	if err != nil {
		return nil, err
	}
	var found [][]Line // per window, newest window first
	count, scanned := 0, int64(0)
	for end > start && count < n && scanned < MaxScanRecords {
		from := max(start, end-scanWindow)
		lines, oldest, err := l.read(ctx, function, from, end, since)
		if err != nil {
			if len(found) > 0 && ctx.Err() != nil {
				break // out of time: show what was found
			}
			return nil, err
		}
		found = append(found, lines)
		count += len(lines)
		scanned += end - from
		end = from
		if !since.IsZero() && oldest.Before(since.Add(-MaxClockSkew)) {
			break // older windows hold older records
		}
	}
	out := make([]Line, 0, min(count, n))
	for i := len(found) - 1; i >= 0; i-- {
		out = append(out, found[i]...)
	}
	return out[max(0, len(out)-n):], nil
}

// bounds returns the topic's log start and end offsets.
func (l *Log) bounds(ctx context.Context) (start, end int64, err error) {
	adm := kadm.NewClient(l.cl)
	starts, err := adm.ListStartOffsets(ctx, Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read function logs: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read function logs: %w", err)
	}
	s, _ := starts.Lookup(Topic, 0)
	e, _ := ends.Lookup(Topic, 0)
	return s.Offset, e.Offset, nil
}

// read returns function's lines in the records at offsets from..end-1
// written after since, and the oldest time of any record there.
func (l *Log) read(ctx context.Context, function string, from, end int64, since time.Time) (lines []Line, oldest time.Time, err error) {
	cl, err := kafkax.NewClient(l.brokers, append(l.kafkaOpts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{Topic: {0: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchMaxBytes(16<<20),
	)...)
	if err != nil {
		return nil, oldest, err
	}
	defer cl.Close()
	for next := from; next < end; {
		fetches := cl.PollFetches(ctx)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			end = min(end, p.HighWatermark) // records deleted meanwhile: stop at what is there
		})
		if err := ctx.Err(); err != nil {
			return nil, oldest, fmt.Errorf("cannot read function logs: %w", err)
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, oldest, fmt.Errorf("cannot read function logs at offset %d: %w", next, ferr)
		}
		fetches.EachRecord(func(rec *kgo.Record) {
			if rec.Offset >= end { // past the window (or reset past it: retention)
				next = end
				return
			}
			next = rec.Offset + 1
			if oldest.IsZero() || rec.Timestamp.Before(oldest) {
				oldest = rec.Timestamp
			}
			if string(rec.Key) != function {
				return
			}
			var r Record
			if json.Unmarshal(rec.Value, &r) != nil || !r.Time.After(since) {
				return // not ours, or not new: skip
			}
			for _, line := range r.Lines {
				lines = append(lines, Line{LogSource: r.Source, Line: line})
			}
		})
	}
	return lines, oldest, nil
}
