package query

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// Async runs queries in the background, Athena-style: Submit returns an id
// at once; the query waits in a queue for one of MaxRunning slots, then
// Engine.Export writes its whole result as files that are uploaded to the
// object store under ResultsPrefix/<id>/, next to the query's record
// (ResultsPrefix/<id>/query.json). Any query node can answer Get, List and
// the result downloads from the store; only the node that runs a query can
// cancel it (its record names the node).
//
// Who owns what: the node that accepted a query is the only writer of its
// record and results until the query ends; after that, the record and
// results are only read, and deleted by any node's sweep once Retention has
// passed since the query finished.
type Async struct {
	Engine *Engine
	Bucket objstore.Streamer
	// Dir is where results are written before upload; it must lie inside
	// the engine's TempDir. Each query's files are removed once uploaded.
	Dir string
	// MaxRunning is how many async queries run at once (default 2); more
	// wait, in order, up to MaxQueued (default 100); past that Submit fails
	// with ErrQueueFull.
	MaxRunning, MaxQueued int
	// MaxBytesScanned refuses, before it runs, a query whose files after
	// pruning hold more bytes (0: no limit).
	MaxBytesScanned int64
	// Timeout bounds a query's run (default 1h).
	Timeout time.Duration
	// Retention is how long records and results are kept after a query
	// ends (default 24h).
	Retention time.Duration
	Log       *slog.Logger
	// Node names this process in the records it writes (default: host name
	// and process id). A stable name (the same at each restart) lets Run
	// fail the queries a previous run left unfinished.
	Node string

	once    sync.Once
	slots   chan struct{}
	mu      sync.Mutex
	queued  int
	cancels map[string]context.CancelFunc // of this node's queued and running queries
	wg      sync.WaitGroup
}

// ResultsPrefix is where async query records and results are stored.
const ResultsPrefix = "_sluice/results/"

// Query states.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// Record is an async query's record, as GET /v1/queries/{id} shows it.
type Record struct {
	ID           string           `json:"id"`
	SQL          string           `json:"sql"`
	Owner        string           `json:"owner"` // key id ("" when authentication is off)
	Node         string           `json:"node"`
	State        string           `json:"state"`
	Error        string           `json:"error,omitempty"`
	Submitted    time.Time        `json:"submitted"`
	Started      *time.Time       `json:"started,omitempty"`
	Finished     *time.Time       `json:"finished,omitempty"`
	QueuedMs     int64            `json:"queued_ms"`
	RunMs        int64            `json:"run_ms"`
	Rows         int64            `json:"rows"`
	FilesScanned int              `json:"files_scanned"`
	FilesPruned  int              `json:"files_pruned"`
	BytesScanned int64            `json:"bytes_scanned"`
	Results      map[string]int64 `json:"results,omitempty"` // format => bytes
	Expires      *time.Time       `json:"expires,omitempty"`
}

// Done reports whether the query has ended.
func (r *Record) Done() bool {
	return r.State == StateSucceeded || r.State == StateFailed || r.State == StateCancelled
}

// Errors of Submit, Get and Cancel (wrapped).
var (
	ErrQueueFull    = errors.New("the async query queue is full")
	ErrNoQuery      = errors.New("no such async query")
	ErrNotQueryNode = errors.New("the query runs on another node")
)

func (a *Async) init() {
	a.once.Do(func() {
		if a.MaxRunning <= 0 {
			a.MaxRunning = 2
		}
		if a.MaxQueued <= 0 {
			a.MaxQueued = 100
		}
		if a.Timeout <= 0 {
			a.Timeout = time.Hour
		}
		if a.Retention <= 0 {
			a.Retention = 24 * time.Hour
		}
		if a.Log == nil {
			a.Log = slog.New(slog.DiscardHandler)
		}
		if a.Node == "" {
			host, _ := os.Hostname()
			a.Node = fmt.Sprintf("%s:%d", host, os.Getpid())
		}
		a.slots = make(chan struct{}, a.MaxRunning)
		a.cancels = map[string]context.CancelFunc{}
	})
}

func recordKey(id string) string { return ResultsPrefix + id + "/query.json" }

// ResultKey is the object key of a query's result file (name: one of
// ExportFormats).
func ResultKey(id, name string) string { return ResultsPrefix + id + "/" + name }

// Submit records sqlText as a new query of ctx's principal and starts it.
// The query runs with the principal's rights, in the background, after
// ctx has ended.
func (a *Async) Submit(ctx context.Context, sqlText string) (*Record, error) {
	a.init()
	p := auth.FromContext(ctx)
	rec := &Record{ID: newID(), SQL: sqlText, Node: a.Node, State: StateQueued, Submitted: time.Now().UTC()}
	if p != nil {
		rec.Owner = p.KeyID
	}
	a.mu.Lock()
	if a.queued >= a.MaxQueued {
		a.mu.Unlock()
		return nil, fmt.Errorf("cannot queue async query: %w (%d waiting, --async-query-queue)", ErrQueueFull, a.MaxQueued)
	}
	a.queued++
	runCtx, cancel := context.WithCancel(auth.WithPrincipal(context.Background(), p))
	a.cancels[rec.ID] = cancel
	a.mu.Unlock()
	if err := a.save(ctx, rec); err != nil {
		a.forget(rec.ID, true)
		return nil, err
	}
	a.wg.Add(1)
	go a.run(runCtx, *rec)
	return rec, nil
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// forget drops a query from this node's bookkeeping.
func (a *Async) forget(id string, queued bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.cancels[id]; c != nil {
		c()
	}
	delete(a.cancels, id)
	if queued {
		a.queued--
	}
}

// run waits for a slot, exports the result, uploads it and records the end.
func (a *Async) run(ctx context.Context, rec Record) {
	defer a.wg.Done()
	queued := true
	defer func() { a.forget(rec.ID, queued) }()
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	case <-ctx.Done():
		a.finish(&rec, Export{}, ctx.Err(), nil)
		return
	}
	a.mu.Lock()
	a.queued--
	queued = false
	a.mu.Unlock()
	now := time.Now().UTC()
	rec.Started, rec.State, rec.QueuedMs = &now, StateRunning, now.Sub(rec.Submitted).Milliseconds()
	if err := a.save(ctx, &rec); err != nil {
		a.Log.Warn("cannot record an async query's start", "id", rec.ID, "err", err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	dir := filepath.Join(a.Dir, rec.ID)
	defer os.RemoveAll(dir)
	var results map[string]int64
	if err := os.MkdirAll(dir, 0o700); err != nil {
		a.finish(&rec, Export{}, fmt.Errorf("cannot create the result directory %q: %w", dir, err), nil)
		return
	}
	ex, err := a.Engine.Export(ctx, rec.SQL, dir, a.MaxBytesScanned)
	if err == nil {
		results, err = a.upload(ctx, rec.ID, dir)
	}
	a.finish(&rec, ex, err, results)
}

// upload stores every file of ExportFormats from dir.
func (a *Async) upload(ctx context.Context, id, dir string) (map[string]int64, error) {
	out := map[string]int64{}
	for name := range ExportFormats {
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("cannot upload the result of async query %s: %w", id, err)
		}
		if err := a.Bucket.PutFile(ctx, ResultKey(id, name), path); err != nil {
			return nil, fmt.Errorf("cannot upload the result of async query %s: %w", id, err)
		}
		os.Remove(path) // the rest of the disk is for the next ones
		out[formatOf(name)] = st.Size()
	}
	return out, nil
}

// formatOf is the format name of a result file: "result.csv" => "csv".
func formatOf(name string) string { return strings.TrimPrefix(filepath.Ext(name), ".") }

// finish records the query's end (in a context of its own: ctx may be
// cancelled).
func (a *Async) finish(rec *Record, ex Export, err error, results map[string]int64) {
	now := time.Now().UTC()
	exp := now.Add(a.Retention)
	rec.Finished, rec.Expires = &now, &exp
	if rec.Started != nil {
		rec.RunMs = now.Sub(*rec.Started).Milliseconds()
	} else {
		rec.QueuedMs = now.Sub(rec.Submitted).Milliseconds()
	}
	rec.Rows, rec.FilesScanned, rec.FilesPruned, rec.BytesScanned = ex.Rows, ex.FilesScanned, ex.FilesPruned, ex.BytesScanned
	switch {
	case err == nil:
		rec.State, rec.Results = StateSucceeded, results
	case errors.Is(err, context.Canceled):
		rec.State, rec.Error = StateCancelled, "cancelled"
	default:
		rec.State = StateFailed
		rec.Error = publicMessage(&queryError{err: err, timeout: timeoutOf(err, a.Timeout)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.save(ctx, rec); err != nil {
		a.Log.Error("cannot record an async query's end", "id", rec.ID, "state", rec.State, "err", err)
	}
	a.Log.Info("async query", "id", rec.ID, "state", rec.State, "rows", rec.Rows, "run_ms", rec.RunMs,
		"bytes_scanned", rec.BytesScanned, "err", rec.Error, "sql", truncateSQL(rec.SQL))
}

func timeoutOf(err error, d time.Duration) time.Duration {
	if errors.Is(err, context.DeadlineExceeded) {
		return d
	}
	return 0
}

func (a *Async) save(ctx context.Context, rec *Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("BUG: cannot encode async query record %s: %w", rec.ID, err)
	}
	if err := a.Bucket.Put(ctx, recordKey(rec.ID), b); err != nil {
		return fmt.Errorf("cannot store the record of async query %s: %w", rec.ID, err)
	}
	return nil
}

// Get returns query id's record if ctx's principal may see it (its owner,
// or an admin key).
func (a *Async) Get(ctx context.Context, id string) (*Record, error) {
	a.init()
	if !validID(id) {
		return nil, fmt.Errorf("cannot read async query %q: %w", id, ErrNoQuery)
	}
	b, err := a.Bucket.Get(ctx, recordKey(id))
	if objstore.IsNotFound(err) {
		return nil, fmt.Errorf("cannot read async query %s: %w (gone after --async-query-retention, or never submitted)", id, ErrNoQuery)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read async query %s: %w", id, err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("cannot decode the record of async query %s (object %s): %w", id, recordKey(id), err)
	}
	if !maySee(auth.FromContext(ctx), &rec) {
		return nil, fmt.Errorf("cannot read async query %s: %w", id, ErrNoQuery) // not another key's either
	}
	return &rec, nil
}

// maySee reports whether p may see rec: its owner, an admin key, or anyone
// when authentication is off (p nil).
func maySee(p *auth.Principal, rec *Record) bool {
	return p == nil || p.Can("admin", "") || p.KeyID == rec.Owner
}

// validID reports whether id can be one Submit made (it names objects).
func validID(id string) bool {
	if len(id) != 41 || id[16] != '-' {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == 'T' || c == 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// Cancel stops query id (queued or running) on this node; it ends in state
// cancelled. An ended query is left as it is.
func (a *Async) Cancel(ctx context.Context, id string) (*Record, error) {
	rec, err := a.Get(ctx, id)
	if err != nil || rec.Done() {
		return rec, err
	}
	a.mu.Lock()
	cancel := a.cancels[id]
	a.mu.Unlock()
	if cancel == nil {
		return nil, fmt.Errorf("cannot cancel async query %s: %w (%s; cancel it there)", id, ErrNotQueryNode, rec.Node)
	}
	cancel()
	return rec, nil
}

// List returns the records ctx's principal may see, newest first, at most
// limit of them.
func (a *Async) List(ctx context.Context, limit int) ([]*Record, error) {
	a.init()
	var ids []string
	err := a.Bucket.List(ctx, ResultsPrefix, func(key string) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(key, ResultsPrefix), "/query.json"); ok && validID(id) {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list async queries: %w", err)
	}
	out := []*Record{}
	for i := len(ids) - 1; i >= 0 && len(out) < limit; i-- { // ids sort by submission time
		rec, err := a.Get(ctx, ids[i])
		if errors.Is(err, ErrNoQuery) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Sweep deletes the records and results of queries that ended more than
// Retention ago.
func (a *Async) Sweep(ctx context.Context, now time.Time) error {
	a.init()
	var expired []string
	err := a.Bucket.List(ctx, ResultsPrefix, func(key string) error {
		id, ok := strings.CutSuffix(strings.TrimPrefix(key, ResultsPrefix), "/query.json")
		if !ok || !validID(id) {
			return nil
		}
		b, err := a.Bucket.Get(ctx, key)
		if err != nil {
			return nil // gone meanwhile, or unreadable: the next sweep
		}
		var rec Record
		if json.Unmarshal(b, &rec) == nil && rec.Expires != nil && now.After(*rec.Expires) {
			expired = append(expired, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot list async queries to expire: %w", err)
	}
	for _, id := range expired {
		for name := range ExportFormats {
			if err := a.Bucket.Delete(ctx, ResultKey(id, name)); err != nil {
				return fmt.Errorf("cannot delete the results of expired async query %s: %w", id, err)
			}
		}
		if err := a.Bucket.Delete(ctx, recordKey(id)); err != nil {
			return fmt.Errorf("cannot delete expired async query %s: %w", id, err)
		}
	}
	return nil
}

// Run first fails the queries a previous run of this node (same Node)
// left queued or running (the process ended under them), then sweeps
// every minute until ctx ends, then cancels this node's queries and waits
// for them to record their end.
func (a *Async) Run(ctx context.Context) {
	a.init()
	if err := a.recoverInterrupted(ctx); err != nil {
		a.Log.Warn("cannot fail the async queries a previous run left unfinished", "err", err)
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if err := a.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
			a.Log.Warn("cannot expire async queries", "err", err)
		}
		select {
		case <-ctx.Done():
			a.mu.Lock()
			for _, c := range a.cancels {
				c()
			}
			a.mu.Unlock()
			a.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// errInterrupted ends the queries a node's previous run left unfinished.
var errInterrupted = &userError{msg: "interrupted: the node running it stopped; submit it again"}

// recoverInterrupted fails this node's unfinished queries that this run
// did not start.
func (a *Async) recoverInterrupted(ctx context.Context) error {
	recs, err := a.List(auth.WithPrincipal(ctx, nil), int(^uint(0)>>1))
	if err != nil {
		return err
	}
	for _, rec := range recs {
		a.mu.Lock()
		mine := a.cancels[rec.ID] != nil
		a.mu.Unlock()
		if !rec.Done() && rec.Node == a.Node && !mine {
			a.finish(rec, Export{}, errInterrupted, nil)
		}
	}
	return nil
}
