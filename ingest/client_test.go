package ingest_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/ingest"
)

// recordingServer runs the real handler and notes each request's body.
type recordingServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newServer(t *testing.T, p ingest.Producer) *recordingServer {
	s := &recordingServer{}
	h := newHandler(p)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(body))
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// take returns the request bodies so far and forgets them.
func (s *recordingServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bodies
	s.bodies = nil
	return b
}

// requests lists each request as its body's lines joined by "|".
func (s *recordingServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.bodies {
		out = append(out, strings.ReplaceAll(strings.TrimSuffix(b, "\n"), "\n", "|"))
	}
	return out
}

func TestClientPut(t *testing.T) {
	p := newProducer()
	p.fail = func(r *kgo.Record) error {
		if string(r.Value) == `{"n":"fail"}` {
			return errors.New("broker down")
		}
		return nil
	}
	srv := newServer(t, p)
	c := &ingest.Client{BaseURL: srv.URL, HTTP: srv.Client(), BatchRecords: 2}
	input := strings.Join([]string{
		`{"n":1}`,       // 1
		`{"n": 2}`,      // 2
		``,              // 3
		`{bad`,          // 4
		`{"n":5}`,       // 5
		`  {"n":6}  `,   // 6
		`"unterminated`, // 7
		`{"n":"fail"}`,  // 8
		"\t",            // 9
		`{"n":10}`,      // 10
	}, "\n") + "\n"
	sum, err := c.Put(t.Context(), "logs", strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 5 || sum.Failed != 3 || len(sum.Failures) != 3 {
		t.Fatalf("summary %+v", sum)
	}
	for i, want := range []struct{ prefix, suffix string }{
		{"input line 4: ", "(InvalidJSON)"},
		{"input line 7: ", "(InvalidJSON)"},
		{"input line 8: ", "broker down; retry the record (ProduceFailed)"},
	} {
		if f := sum.Failures[i]; !strings.HasPrefix(f, want.prefix) || !strings.HasSuffix(f, want.suffix) {
			t.Errorf("failure %d = %q, want %q...%q", i, f, want.prefix, want.suffix)
		}
	}
	// Batches of two records, blank lines left out, in input order.
	got := strings.Join(srv.requests(), "\n")
	want := strings.Join([]string{`{"n":1}|{"n": 2}`, `{bad|{"n":5}`, `  {"n":6}  |"unterminated`, `{"n":"fail"}|{"n":10}`}, "\n")
	if got != want {
		t.Fatalf("requests\n%s\nwant\n%s", got, want)
	}
	checkValues(t, p, `{"n":1}`, `{"n":2}`, `{"n":5}`, `{"n":6}`, `{"n":10}`)
}

func TestClientDefaultsAndEmptyInput(t *testing.T) {
	p := newProducer()
	srv := newServer(t, p)
	c := &ingest.Client{BaseURL: srv.URL}
	sum, err := c.Put(t.Context(), "logs", strings.NewReader("\n \n"))
	if err != nil || sum.Sent != 0 || len(srv.requests()) != 0 {
		t.Fatalf("blank input: %+v, %v, %d requests", sum, err, len(srv.requests()))
	}
	var in strings.Builder
	for range 2500 {
		in.WriteString(`{"level":"info"}` + "\r\n")
	}
	sum, err = c.Put(t.Context(), "logs", strings.NewReader(in.String()))
	if err != nil || sum.Sent != 2500 || sum.Failed != 0 {
		t.Fatalf("%+v, %v", sum, err)
	}
	var sizes []int
	for _, r := range srv.requests() {
		sizes = append(sizes, strings.Count(r, "|")+1)
	}
	if len(sizes) != 3 || sizes[0] != 1000 || sizes[1] != 1000 || sizes[2] != 500 {
		t.Fatalf("default batches of %v records, want [1000 1000 500]", sizes)
	}
}

// Regression test, fixed: Put checks buf.Len()+len(line) > BatchBytes but then also writes the
// line's newline, so a request can be one byte over BatchBytes; with
// BatchBytes = ingest.MaxBodyBytes such a batch is refused whole with 413.
// Fix: compare buf.Len()+len(sc.Bytes())+1 > maxBytes.
func TestClientBatchBytes(t *testing.T) {
	p := newProducer()
	srv := newServer(t, p)
	c := &ingest.Client{BaseURL: srv.URL, BatchBytes: 20}
	// 9+1 bytes, then 10+1: 21 bytes would be one over the limit.
	sum, err := c.Put(t.Context(), "logs", strings.NewReader(`{"a":123}`+"\n"+`{"b":1234}`+"\n"+`{"c":1}`+"\n"+`{"d":1}`+"\n"))
	if err != nil || sum.Sent != 4 {
		t.Fatalf("%+v, %v", sum, err)
	}
	for _, b := range srv.take() {
		if len(b) > c.BatchBytes {
			t.Errorf("request of %d bytes is over BatchBytes %d: %q", len(b), c.BatchBytes, b)
		}
	}
	// A single line longer than BatchBytes still goes, alone.
	sum, err = c.Put(t.Context(), "logs", strings.NewReader(`{"n":1}`+"\n"+`{"long":"`+strings.Repeat("x", 30)+`"}`+"\n"+`{"n":3}`))
	if n := len(srv.take()); err != nil || sum.Sent != 3 || n != 3 {
		t.Fatalf("%+v, %v, %d requests", sum, err, n)
	}
}

func TestClientRequestFailure(t *testing.T) {
	p := newProducer()
	srv := newServer(t, p)
	c := &ingest.Client{BaseURL: srv.URL, BatchRecords: 1}
	// A request refused whole stops Put with the server's answer.
	sum, err := c.Put(t.Context(), "nope", strings.NewReader(`{"n":1}`+"\n"+`{"n":2}`))
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") || !strings.Contains(err.Error(), `stream \"nope\" does not exist`) {
		t.Fatalf("unknown stream: %+v, %v", sum, err)
	}
	if n := len(srv.requests()); n != 1 || sum.Sent != 0 {
		t.Fatalf("Put went on after a failed request: %d requests, %+v", n, sum)
	}
	// Records sent before a failed request are counted.
	sum, err = c.Put(t.Context(), "logs", strings.NewReader(`{"n":1}`+"\n"+`{"n":2}`))
	if err != nil || sum.Sent != 2 {
		t.Fatal(sum, err)
	}
	srv.Close()
	sum, err = c.Put(t.Context(), "logs", strings.NewReader(`{"n":1}`))
	if err == nil || !strings.Contains(err.Error(), "cannot send records to "+srv.URL) || sum.Sent != 0 {
		t.Fatalf("server down: %+v, %v", sum, err)
	}
}
