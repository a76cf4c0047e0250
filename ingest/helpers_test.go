package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/ingest"
)

// fakeProducer stands in for Kafka: it assigns a partition (by key hash, or
// round robin without a key) and the partition's next offset, and calls the
// promise from another goroutine, as kgo does.
type fakeProducer struct {
	partitions int32
	// fail, if set, fails the records it returns an error for.
	fail func(r *kgo.Record) error

	mu   sync.Mutex
	rr   int32
	next map[int32]int64
	got  []kgo.Record // produced records, in Produce order
	wg   sync.WaitGroup
}

func newProducer() *fakeProducer { return &fakeProducer{partitions: 4, next: map[int32]int64{}} }

func (p *fakeProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wg.Add(1)
	if p.fail != nil {
		if err := p.fail(r); err != nil {
			go func() { defer p.wg.Done(); promise(r, err) }()
			return
		}
	}
	if r.Key != nil {
		h := fnv.New32a()
		h.Write(r.Key)
		r.Partition = int32(h.Sum32() % uint32(p.partitions))
	} else {
		r.Partition = p.rr % p.partitions
		p.rr++
	}
	r.Offset = p.next[r.Partition]
	p.next[r.Partition]++
	p.got = append(p.got, *r)
	go func() { defer p.wg.Done(); promise(r, nil) }()
}

// produced returns the records produced so far.
func (p *fakeProducer) produced() []kgo.Record {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]kgo.Record(nil), p.got...)
}

func newHandler(p ingest.Producer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/streams/{stream}/records", &ingest.Handler{
		Producer:     p,
		StreamExists: func(name string) bool { return name == "logs" || name == "metrics" },
		Log:          slog.New(slog.DiscardHandler),
	})
	return mux
}

// reply is one answer of the handler.
type reply struct {
	status int
	header http.Header
	body   string
	resp   ingest.Response // when the body is a Response
	err    string          // when the body is an error
}

func do(t *testing.T, h http.Handler, method, target, contentType string, body []byte) reply {
	t.Helper()
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	r := reply{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: response Content-Type %q, body %s", method, target, ct, r.body)
	}
	var e struct {
		Error   *string         `json:"error"`
		Records []ingest.Result `json:"records"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%s %s: response is not JSON: %v: %s", method, target, err, r.body)
	}
	if e.Error != nil {
		r.err = *e.Error
	} else if err := json.Unmarshal(rec.Body.Bytes(), &r.resp); err != nil {
		t.Fatal(err)
	}
	return r
}

func postNDJSON(t *testing.T, h http.Handler, query string, lines ...string) reply {
	t.Helper()
	return do(t, h, http.MethodPost, "/v1/streams/logs/records"+query, "application/x-ndjson", []byte(strings.Join(lines, "\n")))
}

func postJSON(t *testing.T, h http.Handler, query, body string) reply {
	t.Helper()
	return do(t, h, http.MethodPost, "/v1/streams/logs/records"+query, "application/json", []byte(body))
}

// want is the expected answer to one record: "ok" (produced) or
// "CODE STATUS substring" (failed).
func checkRecords(t *testing.T, r reply, p *fakeProducer, status int, want ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if len(r.resp.Records) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(r.resp.Records), len(want), r.body)
	}
	produced := p.produced()
	okCount, failed := 0, 0
	for i, res := range r.resp.Records {
		if want[i] == "ok" {
			if res.ErrorCode != "" || res.Partition == nil || res.Offset == nil {
				t.Fatalf("record %d: want ok, got %+v", i, res)
			}
			// Results are in the order sent, so the n-th good record is
			// the n-th one produced and has its partition and offset.
			if okCount >= len(produced) {
				t.Fatalf("record %d: ok but only %d produced", i, len(produced))
			}
			pr := produced[okCount]
			if *res.Partition != pr.Partition || *res.Offset != pr.Offset {
				t.Fatalf("record %d: got %d/%d, produced at %d/%d", i, *res.Partition, *res.Offset, pr.Partition, pr.Offset)
			}
			okCount++
			continue
		}
		failed++
		code, rest, _ := strings.Cut(want[i], " ")
		st, msg, _ := strings.Cut(rest, " ")
		if res.ErrorCode != code || res.Partition != nil || res.Offset != nil ||
			strconv.Itoa(res.Status) != st || !strings.Contains(res.Error, msg) {
			t.Fatalf("record %d: want %s %s ~%q, got %+v", i, code, st, msg, res)
		}
	}
	if okCount != len(produced) {
		t.Fatalf("%d records ok, %d produced", okCount, len(produced))
	}
	if r.resp.FailedRecordCount != failed {
		t.Fatalf("failed_record_count %d, want %d", r.resp.FailedRecordCount, failed)
	}
}

// values returns the produced records' values (and keys, as "key=value"
// when there is one).
func values(p *fakeProducer) []string {
	var out []string
	for _, r := range p.produced() {
		if r.Topic != "logs" {
			out = append(out, "topic="+r.Topic)
		}
		if r.Key != nil {
			out = append(out, string(r.Key)+"="+string(r.Value))
		} else {
			out = append(out, string(r.Value))
		}
	}
	return out
}

func checkValues(t *testing.T, p *fakeProducer, want ...string) {
	t.Helper()
	got := values(p)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("produced\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
