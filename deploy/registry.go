package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/schemas"
	"github.com/sluice-dev/sluice/sink"
)

// ErrExists and ErrNotFound are returned (wrapped) by the registry; the admin
// API maps them to 409 and 404.
var (
	ErrExists   = errors.New("already exists")
	ErrNotFound = errors.New("not found")
	// ErrInvalid wraps every validation failure (HTTP 400).
	ErrInvalid = errors.New("invalid")
	// ErrConflict: a change lost to another process's, again and again.
	ErrConflict = errors.New("changed by another process")
)

const registryPrefix = "_sluice/registry/"

// TopicCreator creates a stream's Kafka topic (or updates its retention).
type TopicCreator func(ctx context.Context, topic string, partitions int32, retention time.Duration) error

// Registry holds streams, tables and pipelines. Reads are served from memory;
// writes go to the object store first. Other processes that share the store
// see changes after Reload. Creating an object that exists is an error
// (objects are not replaced in place; that keeps running pipelines stable).
type Registry struct {
	bucket objstore.Bucket
	topics TopicCreator
	// CheckWasm, when set, refuses at deploy a wasm module that could never
	// run (the function runtime's processors/fn.CheckModule, wired by
	// cmd/sluice): set it before the registry is used.
	CheckWasm func(code []byte) error
	// AllowExec lets DeployFunction take exec functions (--allow-exec).
	AllowExec bool

	mu        sync.RWMutex
	streams   map[string]Stream
	tables    map[string]Table
	pipelines map[string]Pipeline
	functions map[string]Function
	changed   chan struct{} // closed and replaced on every change

	fnMu sync.Mutex // serializes read-modify-write of functions

	// Log gets a line whenever the set of unreadable objects changes (nil:
	// none; read Broken).
	Log    *slog.Logger
	broken map[string]string // object key → why it cannot be read
}

// Open loads the registry from bucket.
func Open(ctx context.Context, bucket objstore.Bucket, topics TopicCreator) (*Registry, error) {
	r := &Registry{bucket: bucket, topics: topics, changed: make(chan struct{})}
	if err := r.Reload(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads every object of the registry from the store again.
//
// An object that cannot be decoded (a truncated write, a hand edit) is left
// out, alone: the rest of the registry loads, and Broken names it with its
// error until it is fixed, replaced (create it again) or deleted.
func (r *Registry) Reload(ctx context.Context) error {
	broken := map[string]string{}
	streams, err := load[Stream](ctx, r.bucket, "streams", broken)
	if err != nil {
		return err
	}
	tables, err := load[Table](ctx, r.bucket, "tables", broken)
	if err != nil {
		return err
	}
	pipelines, err := load[Pipeline](ctx, r.bucket, "pipelines", broken)
	if err != nil {
		return err
	}
	functions, err := load[Function](ctx, r.bucket, "functions", broken)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if fmt.Sprint(broken) != fmt.Sprint(r.broken) && r.Log != nil {
		for key, msg := range broken {
			r.Log.Error("registry object is unreadable and left out: restore, recreate or delete it", "object", key, "err", msg)
		}
	}
	r.broken = broken
	same := fmt.Sprint(streams, tables, pipelines, functions) == fmt.Sprint(r.streams, r.tables, r.pipelines, r.functions)
	r.streams, r.tables, r.pipelines, r.functions = streams, tables, pipelines, functions
	if !same {
		r.notifyLocked()
	}
	return nil
}

func load[T any](ctx context.Context, b objstore.Bucket, kind string, broken map[string]string) (map[string]T, error) {
	out := map[string]T{}
	err := b.List(ctx, registryPrefix+kind+"/", func(key string) error {
		data, err := b.Get(ctx, key)
		if err != nil {
			return err
		}
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			broken[key] = fmt.Sprintf("cannot decode registry object %q: %v", key, err)
			return nil
		}
		name := strings.TrimSuffix(key[strings.LastIndex(key, "/")+1:], ".json")
		out[name] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load registry %s: %w", kind, err)
	}
	return out, nil
}

func (r *Registry) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Broken returns the registry objects that could not be read at the last
// Reload, each with its error.
func (r *Registry) Broken() map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return maps.Clone(r.broken)
}

// Changed returns a channel that is closed at the next change.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.changed
}

func (r *Registry) save(ctx context.Context, kind, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("BUG: cannot encode %s %q: %w", kind, name, err)
	}
	if err := r.bucket.Put(ctx, registryPrefix+kind+"/"+name+".json", data); err != nil {
		return fmt.Errorf("cannot save %s %q: %w", kind, name, err)
	}
	return nil
}

// CreateStream validates s, creates its topic and records it.
func (r *Registry) CreateStream(ctx context.Context, s Stream) (Stream, error) {
	if err := errors.Join(s.normalize(), reservedName("stream", s.Name)); err != nil {
		return s, fmt.Errorf("%w stream: %w", ErrInvalid, err)
	}
	if _, ok := r.Stream(s.Name); ok {
		return s, fmt.Errorf("stream %q %w", s.Name, ErrExists)
	}
	return s, r.addStream(ctx, s)
}

// addStream creates a validated stream's topic and records the stream.
func (r *Registry) addStream(ctx context.Context, s Stream) error {
	if err := r.topics(ctx, s.Name, s.Partitions, time.Duration(s.Retention)); err != nil {
		return err
	}
	return createObject(ctx, r, "streams", &r.streams, s.Name, s)
}

// CreateTable validates t and records it.
func (r *Registry) CreateTable(ctx context.Context, t Table) (Table, error) {
	if err := t.normalize(); err != nil {
		return t, fmt.Errorf("%w table: %w", ErrInvalid, err)
	}
	if _, ok := r.Table(t.Name); ok {
		return t, fmt.Errorf("table %q %w", t.Name, ErrExists)
	}
	if err := createObject(ctx, r, "tables", &r.tables, t.Name, t); err != nil {
		return t, err
	}
	return t, nil
}

// UpdateTable replaces a table's schema and settings with t, if the schema
// change is an allowed evolution (schemas.CheckEvolution: new nullable
// columns, int32→int64, float32→float64, ...). Files already written stay
// as they are and are read together with the new ones. Pipelines writing the
// table restart with the new schema.
func (r *Registry) UpdateTable(ctx context.Context, t Table) (Table, error) {
	if err := t.normalize(); err != nil {
		return t, fmt.Errorf("%w table: %w", ErrInvalid, err)
	}
	r.fnMu.Lock()
	defer r.fnMu.Unlock()
	return modifyObject(ctx, r, "tables", &r.tables, t.Name, false, func(old *Table) error {
		if err := schemas.CheckEvolution(&old.Schema, &t.Schema); err != nil {
			return fmt.Errorf("%w table %q: %w", ErrInvalid, t.Name, err)
		}
		*old = t
		return nil
	})
}

// PatchTable changes only the fields patch (a JSON object of Table's
// fields) names, on the table as stored: settings it leaves out keep their
// values; a schema in it must be an allowed evolution (see UpdateTable).
// Fields inside schema merge the same way (a patch that gives columns keeps
// the time column).
func (r *Registry) PatchTable(ctx context.Context, name string, patch []byte) (Table, error) {
	r.fnMu.Lock()
	defer r.fnMu.Unlock()
	return modifyObject(ctx, r, "tables", &r.tables, name, false, func(old *Table) error {
		next := *old
		next.Schema.Columns = slices.Clone(old.Schema.Columns)
		next.Schema.PartitionBy = slices.Clone(old.Schema.PartitionBy)
		dec := json.NewDecoder(bytes.NewReader(patch))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&next); err != nil {
			return fmt.Errorf("%w table patch: %w", ErrInvalid, err)
		}
		if next.Name != name {
			return fmt.Errorf("%w table patch: it names table %q, the path %q", ErrInvalid, next.Name, name)
		}
		if err := next.normalize(); err != nil {
			return fmt.Errorf("%w table: %w", ErrInvalid, err)
		}
		if err := schemas.CheckEvolution(&old.Schema, &next.Schema); err != nil {
			return fmt.Errorf("%w table %q: %w", ErrInvalid, name, err)
		}
		*old = next
		return nil
	})
}

// CreatePipeline validates p, checks its stream and table exist, and records
// it; workers start it at their next look at the registry. A pipeline with a
// dead_letter_table gets the table (if it does not exist yet) and the
// table's internal stream and pipeline first (see ensureDeadLetters).
func (r *Registry) CreatePipeline(ctx context.Context, p Pipeline) (Pipeline, error) {
	errs := []error{p.normalize(), reservedName("pipeline", p.Name)}
	if p.Internal != "" {
		errs = append(errs, fmt.Errorf("internal (%q) is set by sluice on the pipelines it runs itself; leave it out", p.Internal))
	}
	if _, ok := r.Stream(p.Stream); !ok {
		errs = append(errs, fmt.Errorf("stream %q does not exist (create it first)", p.Stream))
	}
	if t, ok := r.Table(p.Table); !ok {
		errs = append(errs, fmt.Errorf("table %q does not exist (create it first)", p.Table))
	} else if p.Function == "" && t.Schema.RestColumn == "" && p.MaxAttempts == 0 && p.MaxRecordAge == 0 {
		// Direct conversion keeps what does not fit in the rest column; without
		// one, a record that does not fit (a bare number, a wrong type) would
		// fail its batch forever: no function version can fix it.
		errs = append(errs, fmt.Errorf("a pipeline without a function into table %q, which has no rest_column, would stop for good at the first record that does not fit its columns (a bare number, a string in a number column): "+
			"give the table a rest_column, add a --function, or let records be given up (--max-attempts N with --dead-letter STREAM or --dead-letter-table TABLE)", p.Table))
	}
	for _, other := range r.Pipelines() {
		if other.Name != p.Name && other.Stream == p.Stream && other.Table == p.Table {
			errs = append(errs, fmt.Errorf("pipeline %q already writes stream %q into table %q; a table takes a stream from one pipeline only (file names and progress are per stream partition)", other.Name, p.Stream, p.Table))
		}
	}
	if p.DeadLetter == p.Stream && p.DeadLetter != "" {
		errs = append(errs, fmt.Errorf("dead_letter %q is the pipeline's own stream: given-up records would come back forever", p.DeadLetter))
	}
	if p.DeadLetter != "" {
		if _, ok := r.Stream(p.DeadLetter); !ok {
			errs = append(errs, fmt.Errorf("dead_letter stream %q does not exist (create it first)", p.DeadLetter))
		}
	}
	if p.Function != "" {
		name, q := SplitQualifier(p.Function)
		if f, ok := r.Function(name); !ok {
			errs = append(errs, fmt.Errorf("function %q does not exist (deploy it first)", name))
		} else if _, _, err := f.Resolve(q); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, r.checkDeadLetterTable(&p)...)
	if err := errors.Join(errs...); err != nil {
		return p, fmt.Errorf("%w pipeline: %w", ErrInvalid, err)
	}
	if _, ok := r.Pipeline(p.Name); ok {
		return p, fmt.Errorf("pipeline %q %w", p.Name, ErrExists)
	}
	if p.DeadLetterTable != "" {
		if err := r.ensureDeadLetters(ctx, p.DeadLetterTable); err != nil {
			return p, fmt.Errorf("cannot create dead_letter_table %q of pipeline %q: %w", p.DeadLetterTable, p.Name, err)
		}
	}
	if err := createObject(ctx, r, "pipelines", &r.pipelines, p.Name, p); err != nil {
		return p, err
	}
	return p, nil
}

// SetPaused pauses or resumes a pipeline. Workers drain the batch in flight,
// write and commit it, then stop taking records; resuming picks up where the
// progress records say.
func (r *Registry) SetPaused(ctx context.Context, name string, paused bool) (Pipeline, error) {
	r.fnMu.Lock()
	defer r.fnMu.Unlock()
	return modifyObject(ctx, r, "pipelines", &r.pipelines, name, false, func(p *Pipeline) error {
		p.Paused = paused
		return nil
	})
}

// Registry objects change only by conditional writes (the object store's
// compare-and-swap, as progress objects do), so that API processes sharing
// a store cannot lose each other's changes:
//   - createObject writes an object only if none of that name exists: of two
//     processes creating one name at once, one wins and the other answers
//     ErrExists (409).
//   - modifyObject reads the object from the store (not from this process's
//     cache, which may be 10 s old), changes it, and writes it back only if
//     it is still the version read, reading again after a lost race; so a
//     publish numbers versions without gaps or duplicates, and freezes the
//     $LATEST that is in the store.

// objectKey is where the registry keeps an object.
func objectKey(kind, name string) string { return registryPrefix + kind + "/" + name + ".json" }

// createObject stores a new object (see above) and puts it in memory.
func createObject[T any](ctx context.Context, r *Registry, kind string, m *map[string]T, name string, v T) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("BUG: cannot encode %s %q: %w", kind, name, err)
	}
	cas, ok := r.bucket.(objstore.Versioned)
	if !ok {
		return store(ctx, r, kind, m, name, v)
	}
	_, err = cas.PutIfVersion(ctx, objectKey(kind, name), data, "")
	if objstore.IsConflict(err) {
		cur, version, rerr := read[T](ctx, cas, kind, name)
		if rerr == nil {
			remember(r, m, name, cur)
			return fmt.Errorf("%s %q %w (created by another process meanwhile)", strings.TrimSuffix(kind, "s"), name, ErrExists)
		}
		if !errors.Is(rerr, errUndecodable) {
			return rerr
		}
		// An unreadable object (Broken) is replaced, if it is still the one read.
		_, err = cas.PutIfVersion(ctx, objectKey(kind, name), data, version)
	}
	if err != nil {
		return fmt.Errorf("cannot save %s %q: %w", kind, name, err)
	}
	remember(r, m, name, v)
	return nil
}

// modifyObject applies change to the stored object (see above); with mayCreate
// a missing object starts as T's zero value.
func modifyObject[T any](ctx context.Context, r *Registry, kind string, m *map[string]T, name string, mayCreate bool, change func(*T) error) (T, error) {
	var zero T
	cas, ok := r.bucket.(objstore.Versioned)
	if !ok {
		return zero, fmt.Errorf("cannot change %s %q: the store has no conditional writes", kind, name)
	}
	for attempt := 1; ; attempt++ {
		v, version, err := read[T](ctx, cas, kind, name)
		if objstore.IsNotFound(err) && mayCreate {
			v, version, err = zero, "", nil
		}
		if objstore.IsNotFound(err) {
			return zero, fmt.Errorf("%s %q %w", strings.TrimSuffix(kind, "s"), name, ErrNotFound)
		}
		if err != nil {
			return zero, err
		}
		if err := change(&v); err != nil {
			return zero, err
		}
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return zero, fmt.Errorf("BUG: cannot encode %s %q: %w", kind, name, err)
		}
		_, err = cas.PutIfVersion(ctx, objectKey(kind, name), data, version)
		if objstore.IsConflict(err) && attempt < 50 {
			// Another process changed it: change what it wrote, after a
			// jittered pause so that two busy writers do not keep colliding.
			select {
			case <-ctx.Done():
				return zero, ctx.Err()
			case <-time.After(time.Duration(rand.IntN(5*attempt)+1) * time.Millisecond):
			}
			continue
		}
		if objstore.IsConflict(err) {
			return zero, fmt.Errorf("cannot save %s %q: %w (it keeps changing; retry)", kind, name, ErrConflict)
		}
		if err != nil {
			return zero, fmt.Errorf("cannot save %s %q: %w", kind, name, err)
		}
		remember(r, m, name, v)
		return v, nil
	}
}

// read reads one registry object and its version.
func read[T any](ctx context.Context, cas objstore.Versioned, kind, name string) (T, string, error) {
	var v T
	data, version, err := cas.GetVersion(ctx, objectKey(kind, name))
	if err != nil {
		return v, "", err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, version, fmt.Errorf("%w %q (restore, recreate or delete it): %w", errUndecodable, objectKey(kind, name), err)
	}
	return v, version, nil
}

var errUndecodable = errors.New("cannot decode registry object")

// remember puts v in memory and signals the change.
func remember[T any](r *Registry, m *map[string]T, name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	(*m)[name] = v
	r.notifyLocked()
}

// store saves v in the object store, then in memory (m), and signals the
// change.
func store[T any](ctx context.Context, r *Registry, kind string, m *map[string]T, name string, v T) error {
	if err := r.save(ctx, kind, name, v); err != nil {
		return err
	}
	r.mu.Lock()
	(*m)[name] = v
	r.notifyLocked()
	r.mu.Unlock()
	return nil
}

func get[T any](r *Registry, m *map[string]T, name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := (*m)[name]
	return v, ok
}

func list[T any](r *Registry, m *map[string]T) []T {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(*m))
	for n := range *m {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]T, 0, len(names))
	for _, n := range names {
		out = append(out, (*m)[n])
	}
	return out
}

func (r *Registry) Stream(name string) (Stream, bool)     { return get(r, &r.streams, name) }
func (r *Registry) Table(name string) (Table, bool)       { return get(r, &r.tables, name) }
func (r *Registry) Pipeline(name string) (Pipeline, bool) { return get(r, &r.pipelines, name) }
func (r *Registry) Streams() []Stream                     { return list(r, &r.streams) }
func (r *Registry) Tables() []Table                       { return list(r, &r.tables) }
func (r *Registry) Pipelines() []Pipeline                 { return list(r, &r.pipelines) }

// ProvisionDefaults creates, on a new data store, the stream `logs`
// (4 partitions, 7 days), the table `logs` with the built-in log schema, and a
// direct pipeline `logs` between them, then records that it did. It runs once
// per store (it finishes what a crash interrupted), so an operator's later
// deletions and changes stick.
func (r *Registry) ProvisionDefaults(ctx context.Context) error {
	const marker = registryPrefix + "provisioned"
	if _, err := r.bucket.Stat(ctx, marker); err == nil {
		return nil
	} else if !objstore.IsNotFound(err) {
		return fmt.Errorf("cannot check provisioning marker %q: %w", marker, err)
	}
	if _, ok := r.Stream("logs"); !ok {
		if _, err := r.CreateStream(ctx, Stream{Name: "logs"}); err != nil {
			return err
		}
	}
	if _, ok := r.Table("logs"); !ok {
		if _, err := r.CreateTable(ctx, Table{Name: "logs", Schema: *schemas.LogSchema()}); err != nil {
			return err
		}
	}
	if _, ok := r.Pipeline("logs"); !ok {
		if _, err := r.CreatePipeline(ctx, Pipeline{Name: "logs", Stream: "logs", Table: "logs"}); err != nil {
			return err
		}
	}
	return r.bucket.Put(ctx, marker, []byte(time.Now().UTC().Format(time.RFC3339)))
}

// TableSources lists the stream partitions that pipelines write into
// table: the sources whose manifests (sink.Progress) together make the
// table's file list.
func (r *Registry) TableSources(table string) []sink.Source {
	var out []sink.Source
	for _, p := range r.Pipelines() {
		if p.Table != table {
			continue
		}
		s, ok := r.Stream(p.Stream)
		if !ok {
			continue
		}
		for id := range s.Partitions {
			out = append(out, sink.Source{Pipeline: p.Name, Stream: p.Stream, Partition: id})
		}
	}
	return out
}
