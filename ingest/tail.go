package ingest

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Limits of GET /v1/streams/{stream}/tail.
const (
	// MaxTailRecords bounds ?limit= (the default is DefaultTailRecords).
	MaxTailRecords     = 100
	DefaultTailRecords = 20
	// MaxTailValueBytes: a record's value is cut to this many bytes in the
	// answer (Truncated says so), so an answer holds at most
	// MaxTailRecords × 4 KiB of values.
	MaxTailValueBytes = 4 << 10
	// tailFetchBytes bounds what the reading client buffers per fetch.
	tailFetchBytes = 4 << 20
	// maxTailsInFlight: tails running at once; more answer 429.
	maxTailsInFlight = 2
	// tailWait bounds how long one tail reads before it answers with what
	// it has.
	tailWait = 5 * time.Second
)

// Tailer serves GET /v1/streams/{stream}/tail?limit=N: the stream's
// partitions with their start and end offsets, and its last N records
// (newest first, by timestamp; N from 0 to MaxTailRecords, default
// DefaultTailRecords). It reads with a client of its own, made per request
// and closed after it: nothing is committed, no group is joined. It is
// what the console shows of a stream (ingest rates come from the end
// offsets polled over time).
type Tailer struct {
	client       func(opts ...kgo.Opt) (*kgo.Client, error)
	streamExists func(name string) bool
	slots        chan struct{} // one per tail in flight
}

// NewTailer returns a Tailer whose reading clients client makes from extra
// options (the brokers and sluice's own credentials are the caller's);
// streamExists says whether a stream is registered (404 otherwise).
func NewTailer(client func(opts ...kgo.Opt) (*kgo.Client, error), streamExists func(string) bool) *Tailer {
	return &Tailer{client: client, streamExists: streamExists, slots: make(chan struct{}, maxTailsInFlight)}
}

// TailPartition is one partition's offsets: records in [start, end).
type TailPartition struct {
	Partition   int32 `json:"partition"`
	StartOffset int64 `json:"start_offset"`
	EndOffset   int64 `json:"end_offset"`
}

// TailRecord is one record as the console shows it.
type TailRecord struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key,omitempty"`
	Timestamp time.Time         `json:"timestamp"`
	Headers   map[string]string `json:"headers,omitempty"`
	Value     string            `json:"value"`
	Truncated bool              `json:"truncated,omitempty"`
}

// TailAnswer is the body of a 200 answer.
type TailAnswer struct {
	Stream     string          `json:"stream"`
	Time       time.Time       `json:"time"` // when the offsets were read
	Partitions []TailPartition `json:"partitions"`
	Records    []TailRecord    `json:"records"`
}

func (t *Tailer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	limit := DefaultTailRecords
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxTailRecords {
			writeError(w, http.StatusBadRequest, "cannot tail stream %q: limit %q is not a number from 0 to %d", stream, s, MaxTailRecords)
			return
		}
		limit = n
	}
	if !t.streamExists(stream) {
		writeError(w, http.StatusNotFound, "cannot tail stream %q: no such stream (sluice stream list shows them)", stream)
		return
	}
	select {
	case t.slots <- struct{}{}:
		defer func() { <-t.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "cannot tail stream %q: %d tails are running already; try again in a second", stream, maxTailsInFlight)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), tailWait)
	defer cancel()
	ans, err := t.tail(ctx, stream, limit)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "cannot tail stream %q: %v", stream, err)
		return
	}
	writeJSON(w, http.StatusOK, ans)
}

func (t *Tailer) tail(ctx context.Context, stream string, limit int) (*TailAnswer, error) {
	cl, err := t.client(kgo.FetchMaxBytes(tailFetchBytes), kgo.FetchMaxPartitionBytes(tailFetchBytes))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	parts, err := offsets(ctx, cl, stream)
	if err != nil {
		return nil, err
	}
	ans := &TailAnswer{Stream: stream, Time: time.Now().UTC(), Partitions: parts, Records: []TailRecord{}}
	from := map[string]map[int32]kgo.Offset{stream: {}}
	want := map[int32]int64{} // partition → the end offset still to reach
	for _, p := range parts {
		if limit > 0 && p.EndOffset > p.StartOffset {
			from[stream][p.Partition] = kgo.NewOffset().At(max(p.StartOffset, p.EndOffset-int64(limit)))
			want[p.Partition] = p.EndOffset
		}
	}
	if len(want) == 0 {
		return ans, nil
	}
	cl.AddConsumePartitions(from)
	for len(want) > 0 && ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(rec *kgo.Record) {
			ans.Records = keepNewest(append(ans.Records, tailRecord(rec)), limit)
			if rec.Offset+1 >= want[rec.Partition] {
				delete(want, rec.Partition)
			}
		})
	}
	// What was read before the deadline is answered (a partition whose last
	// records are gone, e.g. compacted away, would otherwise hold it up).
	return ans, nil
}

// keepNewest sorts recs newest first and keeps the first limit.
func keepNewest(recs []TailRecord, limit int) []TailRecord {
	slices.SortFunc(recs, func(a, b TailRecord) int {
		return cmp.Or(b.Timestamp.Compare(a.Timestamp), cmp.Compare(a.Partition, b.Partition), cmp.Compare(b.Offset, a.Offset))
	})
	return recs[:min(len(recs), limit)]
}

func tailRecord(rec *kgo.Record) TailRecord {
	tr := TailRecord{Partition: rec.Partition, Offset: rec.Offset, Key: string(rec.Key), Timestamp: rec.Timestamp.UTC()}
	v := rec.Value
	if len(v) > MaxTailValueBytes {
		v, tr.Truncated = v[:MaxTailValueBytes], true
		for len(v) > 0 && !utf8.Valid(v) { // do not split a character
			v = v[:len(v)-1]
		}
	}
	tr.Value = string(v)
	for _, h := range rec.Headers {
		if tr.Headers == nil {
			tr.Headers = map[string]string{}
		}
		tr.Headers[h.Key] = string(h.Value)
	}
	return tr
}

func offsets(ctx context.Context, cl *kgo.Client, stream string) ([]TailPartition, error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, stream)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, stream)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list end offsets: %w", err)
	}
	var out []TailPartition
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(stream, o.Partition)
		out = append(out, TailPartition{Partition: o.Partition, StartOffset: s.Offset, EndOffset: o.Offset})
	})
	slices.SortFunc(out, func(a, b TailPartition) int { return cmp.Compare(a.Partition, b.Partition) })
	return out, nil
}
