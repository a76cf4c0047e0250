package kafkax

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// aclEntry is one Kafka ACL binding.
type aclEntry struct {
	Principal    string
	Host         string
	ResourceType kmsg.ACLResourceType
	Name         string
	Pattern      kmsg.ACLResourcePatternType
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// clusterResource is the name of the cluster resource in ACLs.
const clusterResource = "kafka-cluster"

// keyACLs returns the ACLs of key k (none: k gets no Kafka user). See
// WithKeys for what each scope is meant to grant.
//
//	admin           ALLOW ALL on topic *, group *, transactional ID *,
//	                cluster; DENY ALTER on the cluster
//	ingest:S        ALLOW WRITE, DESCRIBE on topic S (literal)
//	ingest:*        ALLOW WRITE, DESCRIBE on topic * (every topic)
//	any ingest,     DENY ALL on topics prefixed InternalTopicPrefix
//	  no admin
//	query:...       nothing
//
// A producer needs no cluster ACL: kfake, like Kafka since 2.8, lets a
// principal that may WRITE some topic get an idempotent producer ID. Deny
// wins over allow in kfake (and Kafka), whatever the order.
func keyACLs(k auth.Key) []aclEntry {
	var scopes []auth.Scope
	for _, s := range k.Scopes {
		if sc, err := auth.ParseScope(s); err == nil {
			scopes = append(scopes, sc)
		}
	}
	p := "User:" + k.ID
	entry := func(rt kmsg.ACLResourceType, name string, pat kmsg.ACLResourcePatternType, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) aclEntry {
		return aclEntry{Principal: p, Host: "*", ResourceType: rt, Name: name, Pattern: pat, Operation: op, Permission: perm}
	}
	const (
		lit   = kmsg.ACLResourcePatternTypeLiteral
		allow = kmsg.ACLPermissionTypeAllow
		deny  = kmsg.ACLPermissionTypeDeny
	)
	if slices.ContainsFunc(scopes, func(s auth.Scope) bool { return s.Kind == "admin" }) {
		return []aclEntry{
			entry(kmsg.ACLResourceTypeTopic, "*", lit, kmsg.ACLOperationAll, allow),
			entry(kmsg.ACLResourceTypeGroup, "*", lit, kmsg.ACLOperationAll, allow),
			entry(kmsg.ACLResourceTypeTransactionalId, "*", lit, kmsg.ACLOperationAll, allow),
			entry(kmsg.ACLResourceTypeCluster, clusterResource, lit, kmsg.ACLOperationAll, allow),
			entry(kmsg.ACLResourceTypeCluster, clusterResource, lit, kmsg.ACLOperationAlter, deny),
		}
	}
	var out []aclEntry
	for _, s := range scopes {
		if s.Kind != "ingest" {
			continue
		}
		for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe} {
			if e := entry(kmsg.ACLResourceTypeTopic, s.Name, lit, op, allow); !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	if len(out) > 0 {
		out = append(out, entry(kmsg.ACLResourceTypeTopic, InternalTopicPrefix, kmsg.ACLResourcePatternTypePrefixed, kmsg.ACLOperationAll, deny))
	}
	return out
}

// kfakeSCRAMIterations is the only PBKDF2 iteration count kfake's SCRAM
// server works with: it stores a credential's own count but always tells
// clients 4096, so a credential of any other count could never log in.
// auth.SCRAMIterations is 4096; keys of another count get no Kafka user.
const kfakeSCRAMIterations = 4096

// desired returns the SCRAM users and ACLs the broker must have for keys
// at now: those of every unexpired key with Kafka ACLs.
func desired(keys []auth.Key, now time.Time) (map[string]auth.SCRAM, map[aclEntry]bool) {
	users := map[string]auth.SCRAM{}
	acls := map[aclEntry]bool{}
	for _, k := range keys {
		if k.Expired(now) || k.ID == Superuser || k.SCRAM.Iterations != kfakeSCRAMIterations {
			continue
		}
		a := keyACLs(k)
		if len(a) == 0 {
			continue
		}
		users[k.ID] = k.SCRAM
		for _, e := range a {
			acls[e] = true
		}
	}
	return users, acls
}

// nextExpiry returns the earliest expiry after now among keys.
func nextExpiry(keys []auth.Key, now time.Time) (time.Time, bool) {
	var next time.Time
	for _, k := range keys {
		if k.Expires != nil && k.Expires.After(now) && (next.IsZero() || k.Expires.Before(next)) {
			next = *k.Expires
		}
	}
	return next, !next.IsZero()
}

// keySync makes the broker's SCRAM users and ACLs those of the latest keys.
// One goroutine applies them; update records new keys and waits a while
// for them to be applied.
type keySync struct {
	cl   *kgo.Client
	logf func(string, ...any)
	now  func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}

	mu        sync.Mutex
	keys      []auth.Key
	gen       uint64        // generation of keys
	synced    uint64        // latest generation applied
	failedGen uint64        // generation of the latest failed attempt
	lastErr   error         // of the latest attempt
	attempted chan struct{} // closed (and replaced) after each attempt

	applied map[string]auth.SCRAM // credentials upserted (worker only)
}

// updateWait bounds how long a key change callback waits for the broker.
const updateWait = 10 * time.Second

func startKeySync(cl *kgo.Client, logf func(string, ...any)) *keySync {
	ctx, cancel := context.WithCancel(context.Background())
	s := &keySync{
		cl: cl, logf: logf, now: time.Now,
		ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1),
		attempted: make(chan struct{}),
		applied:   map[string]auth.SCRAM{},
	}
	go s.run()
	return s
}

// update is the KeySource callback.
func (s *keySync) update(keys []auth.Key) {
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	s.keys = slices.Clone(keys)
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	ctx, cancel := context.WithTimeout(s.ctx, updateWait)
	defer cancel()
	s.wait(ctx, gen) // on failure the worker retries; the store must not hang
}

// wait returns nil once generation gen (or a later one) is applied, or the
// error of a failed attempt at gen or later, or ctx's error.
func (s *keySync) wait(ctx context.Context, gen uint64) error {
	for {
		s.mu.Lock()
		synced, failed, err, ch := s.synced, s.failedGen, s.lastErr, s.attempted
		s.mu.Unlock()
		switch {
		case synced >= gen:
			return nil
		case failed >= gen:
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *keySync) close() {
	s.mu.Lock()
	s.cancel()
	s.mu.Unlock()
	<-s.done
	s.cl.Close()
}

func (s *keySync) run() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var backoff time.Duration
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		s.mu.Lock()
		keys, gen := s.keys, s.gen
		s.mu.Unlock()
		now := s.now()
		ctx, cancel := context.WithTimeout(s.ctx, updateWait)
		_, err := s.apply(ctx, keys, now)
		cancel()
		if s.ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.lastErr = err
		if err == nil {
			s.synced = gen
		} else {
			s.failedGen = gen
		}
		close(s.attempted)
		s.attempted = make(chan struct{})
		s.mu.Unlock()

		next := time.Duration(-1)
		if err != nil {
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			next = backoff
			if s.logf != nil {
				s.logf("kafka: cannot sync API keys to the embedded broker (retrying in %v): %v", backoff, err)
			}
		} else {
			backoff = 0
			if at, ok := nextExpiry(keys, now); ok {
				next = at.Sub(s.now()) + 10*time.Millisecond
			}
		}
		timer.Stop()
		if next >= 0 {
			timer.Reset(next)
		}
	}
}

// apply makes the broker's SCRAM users and ACLs exactly those of keys at
// now (Superuser aside), and returns how many changes that took.
func (s *keySync) apply(ctx context.Context, keys []auth.Key, now time.Time) (changes int, err error) {
	users, acls := desired(keys, now)

	// Users: delete every credential but the desired SCRAM-SHA-256 ones,
	// then upsert those not upserted with the same credential already.
	dreq := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	dresp, err := dreq.RequestWith(ctx, s.cl)
	if err != nil {
		return 0, fmt.Errorf("cannot list SCRAM users: %w", err)
	}
	if err := kerr.ErrorForCode(dresp.ErrorCode); err != nil {
		return 0, fmt.Errorf("cannot list SCRAM users: %w", err)
	}
	have := map[string]bool{}
	areq := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	for _, r := range dresp.Results {
		if r.User == Superuser {
			continue
		}
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			if errors.Is(err, kerr.ResourceNotFound) {
				continue
			}
			return 0, fmt.Errorf("cannot describe SCRAM user %q: %w", r.User, err)
		}
		for _, ci := range r.CredentialInfos {
			if _, want := users[r.User]; want && ci.Mechanism == 1 {
				have[r.User] = true
				continue
			}
			d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
			d.Name, d.Mechanism = r.User, ci.Mechanism
			areq.Deletions = append(areq.Deletions, d)
		}
	}
	for id := range s.applied {
		if !have[id] {
			delete(s.applied, id)
		}
	}
	for id, cred := range users {
		if old, ok := s.applied[id]; ok && sameSCRAM(old, cred) {
			continue
		}
		u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		u.Name, u.Mechanism, u.Iterations = id, 1, int32(cred.Iterations)
		u.Salt, u.SaltedPassword = cred.Salt, cred.SaltedPassword
		areq.Upsertions = append(areq.Upsertions, u)
	}
	if len(areq.Deletions)+len(areq.Upsertions) > 0 {
		aresp, err := areq.RequestWith(ctx, s.cl)
		if err != nil {
			return 0, fmt.Errorf("cannot change SCRAM users: %w", err)
		}
		var errs []error
		for _, r := range aresp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil && !errors.Is(err, kerr.ResourceNotFound) {
				errs = append(errs, fmt.Errorf("SCRAM user %q: %w", r.User, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			clear(s.applied) // upsert them all again next time
			return 0, fmt.Errorf("cannot change SCRAM users: %w", err)
		}
		for _, u := range areq.Upsertions {
			s.applied[u.Name] = users[u.Name]
		}
		for _, d := range areq.Deletions {
			delete(s.applied, d.Name)
		}
		changes += len(areq.Deletions) + len(areq.Upsertions)
	}

	// ACLs: create the missing ones (denies among them) before deleting
	// the unwanted ones.
	have2, err := s.describeACLs(ctx)
	if err != nil {
		return changes, err
	}
	creq := kmsg.NewPtrCreateACLsRequest()
	for a := range acls {
		if have2[a] {
			continue
		}
		c := kmsg.NewCreateACLsRequestCreation()
		c.Principal, c.Host = a.Principal, a.Host
		c.ResourceType, c.ResourceName, c.ResourcePatternType = a.ResourceType, a.Name, a.Pattern
		c.Operation, c.PermissionType = a.Operation, a.Permission
		creq.Creations = append(creq.Creations, c)
	}
	sortCreations(creq.Creations)
	if len(creq.Creations) > 0 {
		cresp, err := creq.RequestWith(ctx, s.cl)
		if err != nil {
			return changes, fmt.Errorf("cannot create ACLs: %w", err)
		}
		for _, r := range cresp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				return changes, fmt.Errorf("cannot create ACLs: %w", err)
			}
		}
		changes += len(creq.Creations)
	}
	xreq := kmsg.NewPtrDeleteACLsRequest()
	for a := range have2 {
		if acls[a] {
			continue
		}
		f := kmsg.NewDeleteACLsRequestFilter()
		f.Principal, f.Host = kmsg.StringPtr(a.Principal), kmsg.StringPtr(a.Host)
		f.ResourceType, f.ResourceName, f.ResourcePatternType = a.ResourceType, kmsg.StringPtr(a.Name), a.Pattern
		f.Operation, f.PermissionType = a.Operation, a.Permission
		xreq.Filters = append(xreq.Filters, f)
	}
	if len(xreq.Filters) > 0 {
		xresp, err := xreq.RequestWith(ctx, s.cl)
		if err != nil {
			return changes, fmt.Errorf("cannot delete ACLs: %w", err)
		}
		for _, r := range xresp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				return changes, fmt.Errorf("cannot delete ACLs: %w", err)
			}
		}
		changes += len(xreq.Filters)
	}
	return changes, nil
}

// describeACLs returns every ACL of the broker.
func (s *keySync) describeACLs(ctx context.Context) (map[aclEntry]bool, error) {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.ResourceType = kmsg.ACLResourceTypeAny
	req.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	req.Operation = kmsg.ACLOperationAny
	req.PermissionType = kmsg.ACLPermissionTypeAny
	resp, err := req.RequestWith(ctx, s.cl)
	if err != nil {
		return nil, fmt.Errorf("cannot list ACLs: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("cannot list ACLs: %w", err)
	}
	out := map[aclEntry]bool{}
	for _, r := range resp.Resources {
		for _, a := range r.ACLs {
			out[aclEntry{
				Principal: a.Principal, Host: a.Host,
				ResourceType: r.ResourceType, Name: r.ResourceName, Pattern: r.ResourcePatternType,
				Operation: a.Operation, Permission: a.PermissionType,
			}] = true
		}
	}
	return out, nil
}

// sortCreations puts denies first (not needed for correctness: kfake
// applies one request at once, and deny wins whatever the order).
func sortCreations(cs []kmsg.CreateACLsRequestCreation) {
	slices.SortStableFunc(cs, func(a, b kmsg.CreateACLsRequestCreation) int {
		return int(a.PermissionType) - int(b.PermissionType) // Deny (2) < Allow (3)
	})
}

func sameSCRAM(a, b auth.SCRAM) bool {
	return a.Iterations == b.Iterations && bytes.Equal(a.Salt, b.Salt) && bytes.Equal(a.SaltedPassword, b.SaltedPassword)
}
