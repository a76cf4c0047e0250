package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-dev/sluice/internal/kafkax"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/sink"
)

// DrainTimeout bounds how long a revoked or stopping partition may take to
// finish its batch, flush and commit. Past it the partition is abandoned
// without committing: nothing is lost, its records are read again by the
// next owner. Kafka's rebalance timeout (60s by default) must exceed it.
const DrainTimeout = 30 * time.Second

// runner runs one pipeline in one process: a consumer-group member with a
// goroutine per assigned partition.
type runner struct {
	p       Pipeline
	bucket  objstore.Bucket
	brokers []string
	newProc func() Processor // one per partition
	log     *slog.Logger     // with pipeline and stream
	obs     Observer
	cl      *kgo.Client
	ready   chan struct{} // closed once cl is set

	instanceID string // static group membership; "" for a dynamic member

	mu    sync.Mutex
	parts map[int32]*running
	// opening holds the partitions assign is opening, until it returns:
	// what status shows of them meanwhile.
	opening map[int32]*opening
}

// opening is a partition being opened by assign.
type opening struct {
	status PartitionStatus // Committed: Kafka's group commit until opened
	opened bool
}

type running struct {
	pt       *partition
	drain    chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

func newRunner(p Pipeline, bucket objstore.Bucket, brokers []string, kafkaOpts []kgo.Opt, instanceID string, session time.Duration, newProc func() Processor, log *slog.Logger, obs Observer) (*runner, error) {
	r := &runner{p: p, bucket: bucket, brokers: brokers, newProc: newProc, log: log.With("pipeline", p.Name, "stream", p.Stream), obs: obs,
		parts: map[int32]*running{}, opening: map[int32]*opening{}, ready: make(chan struct{}), instanceID: instanceID}
	opts := slices.Clone(kafkaOpts)
	if instanceID != "" {
		opts = append(opts, kgo.InstanceID(instanceID))
	}
	if session > 0 {
		opts = append(opts, kgo.SessionTimeout(session))
	}
	cl, err := kafkax.NewClient(brokers, append(opts,
		kgo.ConsumerGroup(p.Group),
		kgo.ConsumeTopics(p.Stream),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, lost map[string][]int32) { r.stop(lost[p.Stream], true) }),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, lost map[string][]int32) { r.stop(lost[p.Stream], false) }),
		kgo.AdjustFetchOffsetsFn(r.assign),
	)...)
	if err != nil {
		return nil, err
	}
	r.cl = cl
	close(r.ready) // group callbacks may run before this: they wait for it
	return r, nil
}

// assign opens the sink writer of each newly assigned partition (recovering
// an interrupted flush), starts its worker, and starts fetching at the
// offset the object store recorded: that, not the Kafka commit, is the truth
// (a crash between writing a file and committing leaves Kafka behind).
//
// The partitions are opened in parallel (at most openParallel at once), each
// retried until it opens or the rebalance ends: a rebalance costs about one
// object-store round trip however many partitions it moves. kgo needs every
// partition's offset before it fetches any, so a partition whose progress
// cannot be read holds up the others of the same rebalance; its error is
// logged at every retry.
func (r *runner) assign(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	<-r.ready
	type opened struct {
		id   int32
		w    *sink.Writer
		next int64
		err  error
	}
	ids := slices.Sorted(maps.Keys(offsets[r.p.Stream]))
	results := make(chan opened, len(ids))
	sem := make(chan struct{}, openParallel)
	for _, id := range ids {
		// kgo calls again for partitions whose earlier assignment was cut
		// short by a rebalance: never leave a second worker behind.
		r.stop([]int32{id}, false)
		at := offsets[r.p.Stream][id].EpochOffset().Offset // read here: the loop below writes the map
		r.mu.Lock()
		r.opening[id] = &opening{status: PartitionStatus{Partition: id, State: StateRunning, Since: time.Now().UTC(),
			Committed: max(at, 0), Worker: r.p.Worker}}
		r.mu.Unlock()
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			w, next, err := r.open(ctx, id, at)
			results <- opened{id, w, next, err}
		}()
	}
	defer func() {
		r.mu.Lock()
		for _, id := range ids {
			delete(r.opening, id)
		}
		r.mu.Unlock()
	}()
	var errs []error
	for range ids {
		o := <-results
		if o.err == nil {
			r.mu.Lock()
			r.opening[o.id].opened = true
			r.opening[o.id].status.Committed = max(o.next, 0)
			r.mu.Unlock()
		}
		if errors.Is(o.err, sink.ErrCorruptProgress) {
			r.startStopped(o.id, offsets[r.p.Stream][o.id].EpochOffset().Offset, o.err)
			continue
		}
		if o.err != nil {
			errs = append(errs, o.err)
			continue
		}
		if o.next >= 0 {
			offsets[r.p.Stream][o.id] = kgo.NewOffset().At(o.next).WithEpoch(-1)
		}
		r.start(o.id, o.w, o.next)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return offsets, nil
}

// openParallel bounds the partitions assign opens at once.
const openParallel = 16

// open opens partition id's sink writer, retrying until ctx ends or the
// progress object turns out corrupt (sink.ErrCorruptProgress: no retry helps).
func (r *runner) open(ctx context.Context, id int32, at int64) (*sink.Writer, int64, error) {
	cfg := sink.Config{Bucket: r.bucket, Pipeline: r.p.Name, Stream: r.p.Stream, Partition: id,
		Table: r.p.Table, Schema: r.p.Schema, FileBytes: r.p.FileBytes, FileAge: r.p.FileAge, FileIdle: r.p.FileIdle,
		RowGroupRows: r.p.RowGroups, Budget: r.p.Budget,
		CompactInterval: r.p.CompactInterval, CompactTarget: r.p.CompactTarget, RetireGrace: r.p.RetireGrace}
	for attempt := 1; ; attempt++ {
		w, next, err := sink.Open(ctx, cfg)
		if err == nil {
			return w, next, nil
		}
		if ctx.Err() != nil || errors.Is(err, sink.ErrCorruptProgress) {
			return nil, -1, fmt.Errorf("cannot open partition %d of pipeline %q: %w", id, r.p.Name, err)
		}
		r.log.Warn("cannot open partition; retrying", "partition", id, "offset", at, "err", err)
		r.mu.Lock()
		if o := r.opening[id]; o != nil {
			if o.status.State != StateRetrying {
				o.status.State, o.status.Since = StateRetrying, time.Now().UTC()
			}
			o.status.Attempts, o.status.LastError = attempt, err.Error()
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(backoff(attempt)):
		}
	}
}

func (r *runner) start(id int32, w *sink.Writer, next int64) {
	ctx, cancel := context.WithCancel(context.Background())
	proc := r.newProc()
	if st, ok := proc.(Stateful); ok {
		st.Restore(w.State())
	}
	pt := &partition{
		p: &r.p, id: id, w: w, proc: proc, next: next,
		in: &inbox{wake: make(chan struct{}, 1), maxRecs: max(4*r.p.BatchSize, 10_000), maxBytes: max(4*r.p.BatchBytes, 16<<20),
			pause:  func() { r.cl.PauseFetchPartitions(map[string][]int32{r.p.Stream: {id}}) },
			resume: func() { r.cl.ResumeFetchPartitions(map[string][]int32{r.p.Stream: {id}}) }},
		commit:     r.commit(id),
		deadLetter: r.deadLetter,
		log:        r.log.With("partition", id),
		obs:        r.obs,
		status:     PartitionStatus{Partition: id, State: StateRunning, Since: time.Now().UTC(), Committed: max(next, 0), Worker: r.p.Worker},
	}
	run := &running{pt: pt, drain: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	pt.drain = run.drain
	r.mu.Lock()
	r.parts[id] = run
	r.mu.Unlock()
	r.obs.PartitionStarted(r.p.Name, r.p.Table, id)
	// The client's paused set outlives assignments: a partition paused by an
	// earlier worker of this client would otherwise never fetch again.
	r.cl.ResumeFetchPartitions(map[string][]int32{r.p.Stream: {id}})
	go func() {
		defer close(run.done)
		pt.run(ctx)
	}()
}

// startStopped holds partition id, whose progress object is corrupt, as
// stopped with err in its status: it is not fetched (its fetching is paused)
// and nothing is written for it, while the pipeline's other partitions go on.
// Once an operator removes the object, the partition's next assignment (a
// restart of this worker, or a rebalance) opens it afresh.
func (r *runner) startStopped(id int32, at int64, err error) {
	r.log.Error("partition stopped", "partition", id, "offset", at, "err", err)
	ctx, cancel := context.WithCancel(context.Background())
	// No writer and no inbox: poll hands such a partition no records.
	pt := &partition{p: &r.p, id: id, log: r.log.With("partition", id), obs: r.obs,
		status: PartitionStatus{Partition: id, State: StateStopped, LastError: err.Error(), Since: time.Now().UTC()}}
	run := &running{pt: pt, drain: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.parts[id] = run
	r.mu.Unlock()
	r.obs.PartitionStarted(r.p.Name, r.p.Table, id)
	r.cl.PauseFetchPartitions(map[string][]int32{r.p.Stream: {id}})
	go func() { // until stop: what stop waits for
		defer close(run.done)
		select {
		case <-ctx.Done():
		case <-run.drain:
		}
	}()
}

// commit returns the partition's commit function. A failed commit is only
// logged: the object store's progress already holds the truth, and the next
// flush commits again.
func (r *runner) commit(id int32) func(ctx context.Context, next int64) {
	return func(ctx context.Context, next int64) {
		offs := map[string]map[int32]kgo.EpochOffset{r.p.Stream: {id: {Epoch: -1, Offset: next}}}
		r.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err == nil {
				err = commitErr(resp)
			}
			if err != nil {
				r.log.Warn("cannot commit offset to Kafka (progress is safe in the object store)", "partition", id, "offset", next, "err", err)
			}
		})
	}
}

// stop stops the workers of ids. With drain they finish their batch, flush
// and commit (within DrainTimeout); without (partitions lost to a session
// timeout, where another member may own them already) they stop at once.
//
// A partition stays in r.parts until it has stopped, and a second stop of
// the same partition (say, a revoke while Close drains) waits for the first:
// so no callback returns, letting Kafka hand the partition to another
// worker, while this one may still write.
func (r *runner) stop(ids []int32, drain bool) {
	var wg sync.WaitGroup
	for _, id := range ids {
		r.mu.Lock()
		run := r.parts[id]
		r.mu.Unlock()
		if run == nil {
			continue
		}
		wg.Go(func() {
			run.stopOnce.Do(func() {
				if drain {
					close(run.drain)
					select {
					case <-run.done:
					case <-time.After(DrainTimeout):
						run.pt.logger().Warn("partition did not drain in time; abandoning it uncommitted")
					}
				}
				run.cancel()
				<-run.done
				r.mu.Lock()
				current := r.parts[id] == run
				if current {
					delete(r.parts, id)
				}
				r.mu.Unlock()
				if current {
					r.obs.PartitionStopped(r.p.Name, id)
				}
			})
		})
	}
	wg.Wait()
}

// partitionLog is the logger of partition id (with its offset), or r.log
// with the partition and offset -1 when this process does not run it.
func (r *runner) partitionLog(id int32) *slog.Logger {
	r.mu.Lock()
	run := r.parts[id]
	r.mu.Unlock()
	if run == nil {
		return r.log.With("partition", id, "offset", -1)
	}
	return run.pt.logger()
}

func (r *runner) ids() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]int32, 0, len(r.parts))
	for id := range r.parts {
		ids = append(ids, id)
	}
	return ids
}

// poll feeds fetched records to the partition workers until ctx ends.
func (r *runner) poll(ctx context.Context) {
	for {
		fetches := r.cl.PollRecords(ctx, 10_000)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			r.cl.AllowRebalance()
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.partitionLog(p).Warn("fetch error", "topic", t, "err", err)
			}
		})
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			r.mu.Lock()
			run := r.parts[fp.Partition]
			r.mu.Unlock()
			if run == nil || run.pt.w == nil { // none, or stopped (startStopped)
				return
			}
			recs := make([]Record, len(fp.Records))
			for i, kr := range fp.Records {
				recs[i] = Record{Partition: kr.Partition, Offset: kr.Offset, Key: kr.Key, Value: kr.Value, Timestamp: kr.Timestamp, Headers: headers(kr.Headers)}
			}
			run.pt.in.push(recs)
		})
		r.cl.AllowRebalance()
	}
}

// close drains every partition, then leaves the group.
//
// A static member does not leave its group on Close (that is what lets a
// restart take its partitions back at once). With leave, it removes itself
// explicitly after draining, so a worker being scaled down hands its
// partitions to the others now rather than after the session timeout.
func (r *runner) close(leave bool) {
	r.stop(r.ids(), true)
	if leave && r.instanceID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := kadm.NewClient(r.cl).LeaveGroup(ctx, kadm.LeaveGroup(r.p.Group).InstanceIDs(r.instanceID))
		cancel()
		if err != nil {
			r.log.Warn("cannot leave consumer group; its partitions move after the session timeout", "err", err)
		}
	}
	r.cl.Close()
}

// snapshot reports every partition this process owns, and the ones it is
// opening that cannot open yet (retrying, with the error, and the lag from
// Kafka's group commit); while one cannot, the others of the same rebalance,
// started but not fetched until it opens, show as retrying too, waiting for
// it.
func (r *runner) snapshot() []PartitionStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var failing []int32
	for _, id := range slices.Sorted(maps.Keys(r.opening)) {
		if o := r.opening[id]; !o.opened && o.status.State == StateRetrying {
			failing = append(failing, id)
		}
	}
	waiting := func(st PartitionStatus) PartitionStatus {
		st.State, st.LastError = StateRetrying, fmt.Sprintf("opened; waiting for partition(s) %v, which cannot open yet: no partition of a rebalance is fetched before all have their offsets", failing)
		return st
	}
	out := make([]PartitionStatus, 0, len(r.parts)+len(r.opening))
	for id, run := range r.parts {
		st := run.pt.snapshot()
		if _, ok := r.opening[id]; ok && len(failing) > 0 {
			st = waiting(st)
		}
		out = append(out, st)
	}
	for id, o := range r.opening {
		switch _, started := r.parts[id]; {
		case started:
		case !o.opened && o.status.State == StateRetrying:
			out = append(out, o.status)
		case o.opened && len(failing) > 0:
			out = append(out, waiting(o.status))
		}
	}
	return out
}

// commitErr is the first per-partition error of an offset commit response.
func commitErr(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return err
			}
		}
	}
	return nil
}

func headers(hs []kgo.RecordHeader) map[string]string {
	if len(hs) == 0 {
		return nil
	}
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// deadLetter produces b's records, as they were (key, value, headers,
// timestamp), to the dead-letter stream, adding headers that say where they
// came from and why they were given up (see deadLetters). Delivery is at
// least once: a crash before the partition's next flush sends them again
// (a dead-letter table drops the resends, see DeadLetterRows).
func (r *runner) deadLetter(ctx context.Context, b *Batch, why giveUp) error {
	return r.cl.ProduceSync(ctx, deadLetters(r.p.DeadLetter, r.p.Name, b, why)...).FirstErr()
}
