package ingest

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Producer is the part of a Kafka client that ingest uses (a *kgo.Client).
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Handler serves POST /v1/streams/{stream}/records.
type Handler struct {
	Producer Producer
	// StreamExists says whether a stream may be written to.
	StreamExists func(name string) bool
	// Internal, if set, says whether a stream is sluice's own (written by
	// sluice only): records for it are refused.
	Internal func(name string) bool
	// Log receives producer failures; nil means slog.Default().
	Log *slog.Logger
	// MaxInFlight bounds the bytes that the requests being served hold
	// together (0: DefaultMaxInFlight); past it a request waits a moment,
	// then is answered 503 with Retry-After. Set it before the first
	// request.
	MaxInFlight int64
	// Counted, if set, is told of the records of each request that got as
	// far as parsing: n records had result, "ok" (written) or their error
	// code (metrics). It must not block.
	Counted func(stream, result string, n int)
	// Explain, if set, may name the cause of a produce failure (a full
	// disk under the embedded broker), which its records' answers then say.
	Explain func(err error) string

	once     sync.Once
	inFlight *limiter
}

// Result is the answer to one record, in the order sent: its partition and
// offset, or why it was not accepted.
type Result struct {
	Partition *int32 `json:"partition,omitempty"`
	Offset    *int64 `json:"offset,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
	Error     string `json:"error,omitempty"`
	Status    int    `json:"status,omitempty"`
}

// Response answers a request. The HTTP status is 200 when every record was
// accepted, 207 when some were (the others each say why), and 400 (or the
// records' common 4xx) when none was.
type Response struct {
	FailedRecordCount int      `json:"failed_record_count"`
	Records           []Result `json:"records"`
	// ErrorsOmitted counts the failed records past the first
	// MaxErrorMessages whose answer carries its error_code and status but
	// not the message, which keeps the answer's size near the request's.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// MaxErrorMessages is how many failed records of one request get their
// error message in the answer; the ones after it get only error_code and
// status (counted in Response.ErrorsOmitted).
const MaxErrorMessages = 100

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, errorBody{Error: fmt.Sprintf(format, args...)})
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "use POST to send records")
		return
	}
	stream := r.PathValue("stream")
	if !h.StreamExists(stream) {
		writeError(w, http.StatusNotFound, "stream %q does not exist (list streams with GET /v1/streams)", stream)
		return
	}
	if h.Internal != nil && h.Internal(stream) {
		writeError(w, http.StatusForbidden, "stream %q is internal to sluice (the dead letters of a table): only sluice writes to it", stream)
		return
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil && r.Header.Get("Content-Type") != "" {
		writeError(w, http.StatusUnsupportedMediaType, "cannot parse Content-Type %q: %v", r.Header.Get("Content-Type"), err)
		return
	}
	isNDJSON := ct == "application/x-ndjson" || ct == "application/ndjson" || ct == "application/jsonl" || ct == "application/x-jsonlines"
	isText := ct == "text/plain"
	if !isNDJSON && !isText && ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported Content-Type %q: use application/json for {\"records\":[...]}, application/x-ndjson for one JSON record per line, or text/plain for raw lines", ct)
		return
	}
	gzipped := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		gzipped = true
	default:
		writeError(w, http.StatusUnsupportedMediaType, "unsupported Content-Encoding %q: send the body as is or gzip", enc)
		return
	}
	need := reservation(MaxBodyBytes)
	if r.ContentLength >= 0 && r.ContentLength <= MaxBodyBytes && !gzipped {
		need = reservation(r.ContentLength)
	}
	if !h.limiter().acquire(r.Context(), need) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "ingest is at its memory bound (--ingest-memory): too many bytes in flight; nothing was accepted, retry the request shortly")
		return
	}
	defer h.limiter().release(need)
	in := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if gzipped {
		// The limits apply to the inflated bytes.
		gz, err := gzip.NewReader(in)
		if err != nil {
			writeError(w, http.StatusBadRequest, "cannot read gzip body: %v", err)
			return
		}
		in = http.MaxBytesReader(w, gz, MaxBodyBytes)
	}
	body, err := io.ReadAll(in)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "body is over the %d-byte limit; nothing was accepted, split it into smaller requests", MaxBodyBytes)
		return
	}
	// A read refused by the key's usage plan (auth.RateLimited, which this
	// package knows by its method): nothing was written.
	var limited interface {
		error
		RetryAfterSeconds() int
	}
	if errors.As(err, &limited) {
		w.Header().Set("Retry-After", strconv.Itoa(limited.RetryAfterSeconds()))
		writeError(w, http.StatusTooManyRequests, "%v; nothing was accepted", limited)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot read body: %v", err)
		return
	}
	keyField := r.URL.Query().Get("key")
	var items []item
	switch {
	case isText:
		items, err = parseText(body)
	case isNDJSON:
		items, err = parseNDJSON(body, keyField)
	default:
		items, err = parseJSON(body, keyField)
	}
	if errors.Is(err, errTooManyRecords) {
		writeError(w, http.StatusRequestEntityTooLarge, "%v", err)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if len(items) == 0 {
		writeError(w, http.StatusBadRequest, "body has no records")
		return
	}
	resp := h.produce(r.Context(), stream, items)
	h.count(stream, resp)
	writeJSON(w, responseStatus(resp), resp)
}

// count tells Counted how many of resp's records had each result.
func (h *Handler) count(stream string, resp *Response) {
	if h.Counted == nil {
		return
	}
	byResult := map[string]int{}
	for _, r := range resp.Records {
		result := r.ErrorCode
		if result == "" {
			result = "ok"
		}
		byResult[result]++
	}
	for result, n := range byResult {
		h.Counted(stream, result, n)
	}
}

// produce sends every valid item and waits for all of them.
func (h *Handler) produce(ctx context.Context, stream string, items []item) *Response {
	resp := &Response{Records: make([]Result, len(items))}
	var wg sync.WaitGroup
	for i, it := range items {
		if it.err != nil {
			resp.Records[i] = Result{ErrorCode: it.err.code, Error: it.err.msg, Status: it.err.status}
			continue
		}
		wg.Add(1)
		rec := &kgo.Record{Topic: stream, Key: it.key, Value: it.value}
		h.Producer.Produce(ctx, rec, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				msg := fmt.Sprintf("cannot write to stream %q: %v; retry the record", stream, err)
				why := h.explain(err) // one look at the disk per failure
				if why != "" {
					msg = fmt.Sprintf("cannot write to stream %q: %s (%v)", stream, why, err)
				}
				h.log().Warn("cannot produce record", "stream", stream, "err", err, "cause", why)
				resp.Records[i] = Result{ErrorCode: CodeProduceFailed, Error: msg, Status: http.StatusServiceUnavailable}
				return
			}
			p, o := r.Partition, r.Offset
			resp.Records[i] = Result{Partition: &p, Offset: &o}
		})
	}
	wg.Wait()
	for i, r := range resp.Records {
		if r.ErrorCode == "" {
			continue
		}
		resp.FailedRecordCount++
		if resp.FailedRecordCount > MaxErrorMessages {
			resp.Records[i].Error = ""
			resp.ErrorsOmitted++
		}
	}
	return resp
}

func responseStatus(resp *Response) int {
	switch {
	case resp.FailedRecordCount == 0:
		return http.StatusOK
	case resp.FailedRecordCount < len(resp.Records):
		return http.StatusMultiStatus
	}
	status := resp.Records[0].Status
	for _, r := range resp.Records {
		if r.Status != status {
			return http.StatusBadRequest
		}
	}
	return status
}

func (h *Handler) limiter() *limiter {
	h.once.Do(func() {
		limit := h.MaxInFlight
		if limit <= 0 {
			limit = DefaultMaxInFlight
		}
		h.inFlight = newLimiter(limit)
	})
	return h.inFlight
}

func (h *Handler) explain(err error) string {
	if h.Explain == nil {
		return ""
	}
	return h.Explain(err)
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.Default()
	}
	return h.Log
}
