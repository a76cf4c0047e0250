package metrics

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UnknownStream is the stream label of ingest requests for a stream that
// does not exist (so made-up paths cannot add series).
const UnknownStream = "_unknown"

// Ingest holds the HTTP ingest metrics.
type Ingest struct {
	requests *prometheus.CounterVec
	records  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newIngest() *Ingest {
	return &Ingest{
		requests: counterVec("sluice_ingest_requests_total", "HTTP ingest requests, by stream and HTTP status code.", "stream", "code"),
		records:  counterVec("sluice_ingest_records_total", `Records in HTTP ingest requests, by stream and result ("ok": written, else the record's error code).`, "stream", "result"),
		bytes:    counterVec("sluice_ingest_bytes_total", "Request body bytes read by HTTP ingest (as sent, before gzip is inflated), by stream and HTTP status code.", "stream", "code"),
		duration: histogramVec("sluice_ingest_request_duration_seconds", "HTTP ingest request latency, by stream.", "stream"),
	}
}

func (m *Ingest) register(reg *prometheus.Registry) {
	reg.MustRegister(m.requests, m.records, m.bytes, m.duration)
}

// Counted is ingest.Handler.Counted.
func (m *Ingest) Counted(stream, result string, n int) {
	m.records.WithLabelValues(stream, result).Add(float64(n))
}

// Wrap counts h's requests, body bytes and latency by the {stream} path
// value (UnknownStream unless exists says the stream exists). Put it outside
// the key check, so refused requests (401, 403, 429) count too.
func (m *Ingest) Wrap(exists func(stream string) bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		stream := r.PathValue("stream")
		if !exists(stream) {
			stream = UnknownStream
		}
		body := &countingReader{r: r.Body}
		r.Body = body
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		code := strconv.Itoa(sw.code)
		m.requests.WithLabelValues(stream, code).Inc()
		m.bytes.WithLabelValues(stream, code).Add(float64(body.n))
		m.duration.WithLabelValues(stream).Observe(time.Since(start).Seconds())
	})
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
