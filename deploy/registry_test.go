package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/schemas"
)

type topicLog []string

func (l *topicLog) create(_ context.Context, topic string, n int32, ret time.Duration) error {
	*l = append(*l, topic)
	return nil
}

func openReg(t *testing.T, b objstore.Bucket, topics *topicLog) *Registry {
	t.Helper()
	r, err := Open(t.Context(), b, topics.create)
	if err != nil {
		t.Fatal(err)
	}
	// What cmd/sluice wires (processors/fn.CheckModule), in its simplest form.
	r.CheckWasm = func(code []byte) error {
		if !bytes.HasPrefix(code, []byte("\x00asm")) {
			return errors.New("not a WebAssembly module")
		}
		return nil
	}
	return r
}

func TestProvisionDefaultsOnce(t *testing.T) {
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r := openReg(t, b, &topics)
	if err := r.ProvisionDefaults(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, _ := r.Stream("logs")
	p, _ := r.Pipeline("logs")
	tb, _ := r.Table("logs")
	if s.Partitions != 4 || time.Duration(s.Retention) != 7*24*time.Hour || p.Stream != "logs" || p.Table != "logs" || tb.Schema.TimeColumn != "ts" {
		t.Fatalf("defaults: %+v %+v %+v", s, p, tb)
	}
	if len(topics) != 1 || topics[0] != "logs" {
		t.Fatalf("topics created: %v", topics)
	}
	// Another process on the same store sees them, and provisioning does not
	// run again (a deleted default stays deleted).
	r2 := openReg(t, b, &topics)
	if len(r2.Pipelines()) != 1 || r2.Pipelines()[0].BatchSize != DefaultBatchSize {
		t.Fatalf("reopened registry: %+v", r2.Pipelines())
	}
	b.Delete(t.Context(), registryPrefix+"pipelines/logs.json")
	r3 := openReg(t, b, &topics)
	if err := r3.ProvisionDefaults(t.Context()); err != nil || len(r3.Pipelines()) != 0 {
		t.Fatalf("provisioning ran twice: %v %v", r3.Pipelines(), err)
	}
}

func TestCreateValidation(t *testing.T) {
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r := openReg(t, b, &topics)
	ctx := t.Context()
	f := func(err error, want error, says ...string) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not say %q", err, s)
			}
		}
	}
	_, err := r.CreateStream(ctx, Stream{Name: "bad-name", Partitions: 5000})
	f(err, ErrInvalid, "bad-name", "partitions must be between 1 and 1024")
	_, err = r.CreateStream(ctx, Stream{Name: "a"})
	f(err, nil)
	_, err = r.CreateStream(ctx, Stream{Name: "a"})
	f(err, ErrExists)
	_, err = r.CreateTable(ctx, Table{Name: "t", Schema: schemas.Schema{Columns: []schemas.Column{{Name: "x", Type: "nope"}}}})
	f(err, ErrInvalid, `unknown type "nope"`)
	_, err = r.CreatePipeline(ctx, Pipeline{Name: "p", Stream: "missing", Table: "t", BatchWindow: Duration(time.Hour)})
	f(err, ErrInvalid, `stream "missing" does not exist`, `table "t" does not exist`, "batch_window")
	_, err = r.DeployFunction(ctx, "fn", FunctionConfig{Runtime: "wasm"}, []byte("#!/bin/sh\ncat\n"))
	f(err, ErrInvalid, "code is not a module sluice can run", "not a WebAssembly module")
	if _, ok := r.Function("fn"); ok {
		t.Fatal("a function with code that cannot run was deployed")
	}
	_, err = r.DeployFunction(ctx, "fn", FunctionConfig{Runtime: "exec"}, []byte("#!/bin/sh\ncat\n"))
	f(err, ErrInvalid, "--allow-exec")
	r.AllowExec = true
	_, err = r.DeployFunction(ctx, "fn", FunctionConfig{Runtime: "exec"}, []byte("import sys\n"))
	f(err, ErrInvalid, "#! line")
	_, err = r.DeployFunction(ctx, "fn", FunctionConfig{Runtime: "exec"}, []byte("#!/bin/sh\ncat\n"))
	f(err, nil)
	if len(topics) != 1 {
		t.Fatalf("invalid streams created topics: %v", topics)
	}
}

func TestChangedFiresOnCreate(t *testing.T) {
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r := openReg(t, b, &topics)
	ch := r.Changed()
	if _, err := r.CreateStream(t.Context(), Stream{Name: "s"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed did not fire")
	}
}

func TestUpdateTableEvolution(t *testing.T) {
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r := openReg(t, b, &topics)
	ctx := t.Context()
	base := schemas.Schema{Columns: []schemas.Column{{Name: "n", Type: schemas.Int32}, {Name: "s", Type: schemas.String}}}
	if _, err := r.CreateTable(ctx, Table{Name: "t", Schema: base}); err != nil {
		t.Fatal(err)
	}
	wider := schemas.Schema{Columns: []schemas.Column{{Name: "n", Type: schemas.Int64}, {Name: "s", Type: schemas.String}, {Name: "extra", Type: "list<string>"}}}
	if _, err := r.UpdateTable(ctx, Table{Name: "t", Schema: wider}); err != nil {
		t.Fatalf("widening and adding a nullable column: %v", err)
	}
	if got, _ := r.Table("t"); got.Schema.Columns[0].Type != schemas.Int64 || len(got.Schema.Columns) != 3 {
		t.Fatalf("table after update: %+v", got.Schema)
	}
	_, err := r.UpdateTable(ctx, Table{Name: "t", Schema: base})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("narrowing and dropping a column: %v, want ErrInvalid", err)
	}
	if _, err := r.UpdateTable(ctx, Table{Name: "missing", Schema: base}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing table: %v", err)
	}
}

// TestCorruptObjectStaysLocal: an unreadable registry object is left out
// alone and named by Broken; the rest loads, and creating the object again
// replaces it.
func TestCorruptObjectStaysLocal(t *testing.T) {
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r := openReg(t, b, &topics)
	ctx := t.Context()
	for _, name := range []string{"good", "bad"} {
		if _, err := r.CreateStream(ctx, Stream{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Put(ctx, registryPrefix+"streams/bad.json", []byte(`{"name": "bad", "parti`)); err != nil {
		t.Fatal(err)
	}
	r2 := openReg(t, b, &topics)
	if _, ok := r2.Stream("good"); !ok {
		t.Fatal("a readable stream was left out")
	}
	if _, ok := r2.Stream("bad"); ok {
		t.Fatal("the corrupt stream loaded")
	}
	if msg := r2.Broken()[registryPrefix+"streams/bad.json"]; !strings.Contains(msg, "cannot decode") {
		t.Fatalf("Broken: %v", r2.Broken())
	}
	if _, err := r2.CreateStream(ctx, Stream{Name: "bad"}); err != nil {
		t.Fatal(err)
	}
	if err := r2.Reload(ctx); err != nil || len(r2.Broken()) != 0 {
		t.Fatalf("after recreating it: %v %v", err, r2.Broken())
	}
}

// TestRegistryWritesAreConditional: two API processes on one store (each
// with its own cache) cannot lose each other's changes: publishes number
// versions without gaps or duplicates and freeze the $LATEST in the store,
// and of two creates of one name one wins, the other gets ErrExists.
func TestRegistryWritesAreConditional(t *testing.T) {
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r1, r2 := openReg(t, b, &topics), openReg(t, b, &topics)
	ctx := t.Context()
	wasm := func(i int) []byte { return append([]byte("\x00asm\x01\x00\x00\x00"), byte(i)) }
	if _, err := r1.DeployFunction(ctx, "f", FunctionConfig{Runtime: "wasm"}, wasm(0)); err != nil {
		t.Fatal(err)
	}
	// r2 has not seen f (its cache is older): it publishes what the store holds.
	v, err := r2.PublishFunction(ctx, "f")
	if err != nil || v.Version != 1 {
		t.Fatalf("publish on the other process: %+v, %v", v, err)
	}
	var wg sync.WaitGroup
	versions := make(chan int, 20)
	for i := range 20 {
		r := []*Registry{r1, r2}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.DeployFunction(ctx, "f", FunctionConfig{Runtime: "wasm"}, wasm(i+1)); err != nil {
				t.Error(err)
				return
			}
			v, err := r.PublishFunction(ctx, "f")
			if err != nil {
				t.Error(err)
				return
			}
			versions <- v.Version
		}()
	}
	wg.Wait()
	close(versions)
	if err := r1.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	f, _ := r1.Function("f")
	for i, v := range f.Versions {
		if v.Version != i+1 {
			t.Fatalf("versions %v: a gap or a duplicate at %d", f.Versions, i)
		}
	}
	if len(f.Versions) < 2 || len(f.Versions) > 21 {
		t.Fatalf("%d versions after 20 concurrent deploy+publish", len(f.Versions))
	}
	// Two creates of one name: one wins.
	_, err1 := r1.CreateTable(ctx, Table{Name: "t", Schema: *schemas.LogSchema()})
	_, err2 := r2.CreateTable(ctx, Table{Name: "t", Schema: *schemas.LogSchema(), FileAge: Duration(time.Minute)})
	if err1 != nil || !errors.Is(err2, ErrExists) {
		t.Fatalf("two creates: %v, %v", err1, err2)
	}
	if got, _ := r2.Table("t"); got.FileAge == Duration(time.Minute) {
		t.Fatal("the losing create's table is in the other process's cache")
	}
}

// TestPatchTable: an update changes only the fields it names.
func TestPatchTable(t *testing.T) {
	b, _ := objstore.NewDir(t.TempDir())
	var topics topicLog
	r := openReg(t, b, &topics)
	ctx := t.Context()
	if _, err := r.CreateTable(ctx, Table{Name: "t", Schema: *schemas.LogSchema(), FileBytes: 1 << 20, FileAge: Duration(5 * time.Second), RowGroupRows: 4096}); err != nil {
		t.Fatal(err)
	}
	got, err := r.PatchTable(ctx, "t", []byte(`{"file_age": "3s"}`))
	if err != nil || got.FileAge != Duration(3*time.Second) || got.FileBytes != 1<<20 || got.RowGroupRows != 4096 || len(got.Schema.Columns) != len(schemas.LogSchema().Columns) {
		t.Fatalf("patch of file_age: %+v, %v", got, err)
	}
	wider := schemas.LogSchema()
	wider.Columns = append(wider.Columns, schemas.Column{Name: "extra", Type: schemas.String})
	patch, _ := json.Marshal(map[string]any{"schema": wider})
	if got, err := r.PatchTable(ctx, "t", patch); err != nil || got.FileAge != Duration(3*time.Second) || len(got.Schema.Columns) != len(wider.Columns) {
		t.Fatalf("patch of the schema: %+v, %v", got, err)
	}
	for _, bad := range []string{`{"schema": {"columns": [{"name": "x", "type": "string"}]}}`, `{"nope": 1}`, `{"name": "other"}`, `{"file_age": "1ms"}`} {
		if _, err := r.PatchTable(ctx, "t", []byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("patch %s: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := r.PatchTable(ctx, "missing", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("patch of a missing table: %v", err)
	}
}
