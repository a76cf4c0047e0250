package fnlog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func cluster(t testing.TB) []string {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func open(t testing.TB, brokers []string) *Log {
	l, err := Open(context.Background(), brokers, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// waitTail polls Tail until it returns want lines (the producer is async).
func waitTail(t *testing.T, l *Log, function string, n, want int) []Line {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines, err := l.Tail(context.Background(), function, n, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == want || time.Now().After(deadline) {
			if len(lines) != want {
				t.Fatalf("got %d lines of %s, want %d", len(lines), function, want)
			}
			return lines
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTailAcrossWorkersAndRestarts: lines written by two Logs (two workers)
// are read back by a third opened later (another process, after a restart),
// per function, in order, with where they came from.
func TestTailAcrossWorkersAndRestarts(t *testing.T) {
	brokers := cluster(t)
	a, b := open(t, brokers), open(t, brokers)
	a.Add(Source{Function: "f", Version: "1", Pipeline: "p", Partition: 0, FirstOffset: 0, LastOffset: 9}, []byte("one\ntwo\n"))
	a.Add(Source{Function: "g", Version: "$LATEST", Partition: 1}, []byte("other function\n"))
	a.Add(Source{Function: "f", Partition: 0}, nil) // nothing to keep
	a.Close()
	b.Add(Source{Function: "f", Version: "2", Partition: 3, FirstOffset: 10, LastOffset: 19}, []byte("three"))
	b.Close()

	c := open(t, brokers)
	lines := waitTail(t, c, "f", 10, 3)
	for i, want := range []string{"one", "two", "three"} {
		if lines[i].Line != want || lines[i].Function != "f" {
			t.Fatalf("line %d: %+v, want %q", i, lines[i], want)
		}
	}
	if l := lines[2]; l.Version != "2" || l.Partition != 3 || l.FirstOffset != 10 || l.LastOffset != 19 || l.Time.IsZero() {
		t.Fatalf("line 2 lost where it came from: %+v", l)
	}
	if l := lines[0]; l.Pipeline != "p" || l.Version != "1" {
		t.Fatalf("line 0: %+v", l)
	}
	if got := waitTail(t, c, "f", 2, 2); got[0].Line != "two" || got[1].Line != "three" {
		t.Fatalf("last two: %+v", got)
	}
	waitTail(t, c, "g", 10, 1)
	waitTail(t, c, "nobody", 10, 0)
}

// TestTailLooksBackPastOtherFunctions: a quiet function's lines are found
// behind many windows of another function's.
func TestTailLooksBackPastOtherFunctions(t *testing.T) {
	l := open(t, cluster(t))
	l.Add(Source{Function: "quiet"}, []byte("early"))
	for i := 0; i < 3*scanWindow; i++ {
		l.Add(Source{Function: "chatty", FirstOffset: int64(i)}, []byte(fmt.Sprint("line ", i)))
	}
	l.Add(Source{Function: "quiet"}, []byte("late"))
	if got := waitTail(t, l, "quiet", 5, 2); got[0].Line != "early" || got[1].Line != "late" {
		t.Fatalf("got %+v", got)
	}
	got := waitTail(t, l, "chatty", scanWindow+10, scanWindow+10)
	if got[len(got)-1].Line != fmt.Sprint("line ", 3*scanWindow-1) || got[0].Line != fmt.Sprint("line ", 2*scanWindow-10) {
		t.Fatalf("chatty: first %q, last %q", got[0].Line, got[len(got)-1].Line)
	}
}

func BenchmarkAdd(b *testing.B) {
	l := open(b, cluster(b))
	text := []byte("a log line of moderate length, as functions write them\nand a second one\n")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Add(Source{Function: "f", Version: "1", Partition: 2, FirstOffset: int64(i), LastOffset: int64(i)}, text)
	}
}

// TestTailSince: with since, only lines written after it come back (what
// `sluice fn logs --follow` polls with).
func TestTailSince(t *testing.T) {
	l := open(t, cluster(t))
	t0 := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC) // any time: the line's own, not the broker's
	l.Add(Source{Function: "f", Time: t0}, []byte("old"))
	l.Add(Source{Function: "f", Time: t0.Add(time.Millisecond)}, []byte("new\nnewer"))
	waitTail(t, l, "f", 10, 3)
	got, err := l.Tail(context.Background(), "f", 10, t0)
	if err != nil || len(got) != 2 || got[0].Line != "new" || got[1].Line != "newer" {
		t.Fatalf("since %v: %+v, %v", t0, got, err)
	}
	if got, err := l.Tail(context.Background(), "f", 10, t0.Add(time.Millisecond)); err != nil || len(got) != 0 {
		t.Fatalf("since the last line: %+v, %v", got, err)
	}
}
