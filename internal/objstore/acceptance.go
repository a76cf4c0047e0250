package objstore

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// AcceptanceTest checks the Bucket contract; every backend's tests call it
// with an empty bucket.
func AcceptanceTest(t *testing.T, b Bucket) {
	ctx := context.Background()
	t.Helper()
	if _, err := b.Get(ctx, "missing/key"); !IsNotFound(err) {
		t.Fatalf("Get of a missing key: want ErrNotFound, got %v", err)
	}
	if _, err := b.Stat(ctx, "missing/key"); !IsNotFound(err) {
		t.Fatalf("Stat of a missing key: want ErrNotFound, got %v", err)
	}
	if err := b.Delete(ctx, "missing/key"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	for _, k := range []string{"a/b/2", "a/b/1", "a/c", "ab", "z"} {
		if err := b.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
	}
	if err := b.Put(ctx, "a/c", []byte("replaced")); err != nil {
		t.Fatalf("Put again: %v", err)
	}
	got, err := b.Get(ctx, "a/c")
	if err != nil || !bytes.Equal(got, []byte("replaced")) {
		t.Fatalf("Get after replace: %q, %v", got, err)
	}
	if n, err := b.Stat(ctx, "a/b/1"); err != nil || n != int64(len("v-a/b/1")) {
		t.Fatalf("Stat: %d, %v", n, err)
	}
	list := func(prefix string) string {
		var keys []string
		if err := b.List(ctx, prefix, func(k string) error { keys = append(keys, k); return nil }); err != nil {
			t.Fatalf("List %q: %v", prefix, err)
		}
		return fmt.Sprint(keys)
	}
	for prefix, want := range map[string]string{
		"":      "[a/b/1 a/b/2 a/c ab z]",
		"a/":    "[a/b/1 a/b/2 a/c]",
		"a":     "[a/b/1 a/b/2 a/c ab]",
		"a/b/":  "[a/b/1 a/b/2]",
		"nope/": "[]",
	} {
		if got := list(prefix); got != want {
			t.Errorf("List(%q) = %s, want %s", prefix, got, want)
		}
	}
	if err := b.Delete(ctx, "a/b/1"); err != nil {
		t.Fatal(err)
	}
	if got := list("a/b/"); got != "[a/b/2]" {
		t.Errorf("List after Delete = %s", got)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b", ".hidden", "dir/"} {
		if err := b.Put(ctx, bad, nil); err == nil {
			t.Errorf("Put(%q) accepted an invalid key", bad)
		}
	}
}

// VersionedAcceptanceTest checks the conditional-write contract of a
// Versioned bucket.
func VersionedAcceptanceTest(t *testing.T, b Versioned) {
	ctx := context.Background()
	t.Helper()
	if _, _, err := b.GetVersion(ctx, "cas/missing"); !IsNotFound(err) {
		t.Fatalf("GetVersion of a missing key: want ErrNotFound, got %v", err)
	}
	v1, err := b.PutIfVersion(ctx, "cas/k", []byte("one"), "")
	if err != nil || v1 == "" {
		t.Fatalf("create-only put of a new key: %q, %v", v1, err)
	}
	if _, err := b.PutIfVersion(ctx, "cas/k", []byte("again"), ""); !IsConflict(err) {
		t.Fatalf("create-only put of an existing key: want ErrConflict, got %v", err)
	}
	data, v, err := b.GetVersion(ctx, "cas/k")
	if err != nil || string(data) != "one" || v != v1 {
		t.Fatalf("GetVersion: %q %q %v; want one %q", data, v, err, v1)
	}
	v2, err := b.PutIfVersion(ctx, "cas/k", []byte("two"), v1)
	if err != nil || v2 == v1 {
		t.Fatalf("put at the current version: %q, %v", v2, err)
	}
	if _, err := b.PutIfVersion(ctx, "cas/k", []byte("stale"), v1); !IsConflict(err) {
		t.Fatalf("put at a stale version: want ErrConflict, got %v", err)
	}
	if data, v, _ := b.GetVersion(ctx, "cas/k"); string(data) != "two" || v != v2 {
		t.Fatalf("after a refused put: %q %q, want two %q", data, v, v2)
	}
}
