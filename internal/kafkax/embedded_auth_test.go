package kafkax

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/testcert"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func keyStore(t *testing.T) *auth.Store {
	t.Helper()
	s, err := auth.Open(t.Context(), &objstore.Dir{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newKey creates a key with scopes and returns it with its secret.
func newKey(t *testing.T, s *auth.Store, expires *time.Time, scopes ...string) (auth.Key, string) {
	t.Helper()
	secret := auth.NewSecret()
	k, err := s.Create(t.Context(), secret, "", scopes, expires)
	if err != nil {
		t.Fatal(err)
	}
	return k, secret
}

func startAuth(t *testing.T, dir string, opts ...EmbeddedOption) *Embedded {
	t.Helper()
	e, err := StartEmbedded(dir, "127.0.0.1:0", append([]EmbeddedOption{WithLogf(t.Logf)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// testClient is a client that gives up on records and requests quickly.
func testClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.RecordDeliveryTimeout(5 * time.Second), kgo.RequestRetries(2), kgo.RetryTimeout(5 * time.Second)}
	cl, err := NewClient([]string{addr}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func keyClient(t *testing.T, addr, id, secret string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return testClient(t, addr, append([]kgo.Opt{kgo.SASL(scram.Auth{User: id, Pass: secret}.AsSha256Mechanism())}, opts...)...)
}

func internalClient(t *testing.T, e *Embedded, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := NewClient([]string{e.Addr()}, append(e.ClientOpts(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceTo(ctx context.Context, cl *kgo.Client, topic, value string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}

// login makes a request that needs an authenticated connection.
func login(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	return err
}

func ensureTopics(t *testing.T, cl *kgo.Client, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		if err := EnsureTopic(t.Context(), cl, topic, 1, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

// eventually polls fn until it returns nil or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// values reads topic from the start until it holds want, or fails.
func values(t *testing.T, e *Embedded, topic string, want ...string) {
	t.Helper()
	cl := internalClient(t, e, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for len(got) < len(want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("topic %s: got %q, want %q", topic, got, want)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("topic %s: got %q, want %q", topic, got, want)
	}
}

// TestEmbeddedKeysRefuseClientsWithoutSASL: with keys, a client that does
// not log in, or logs in with a wrong password or as a query-only key,
// cannot produce.
func TestEmbeddedKeysRefuseClientsWithoutSASL(t *testing.T) {
	store := keyStore(t)
	k, secret := newKey(t, store, nil, "ingest:*")
	q, qsecret := newKey(t, store, nil, "query:*")
	e := startAuth(t, t.TempDir(), WithKeys(store))
	ensureTopics(t, internalClient(t, e), "clicks")

	if err := produceTo(t.Context(), testClient(t, e.Addr()), "clicks", "x"); err == nil {
		t.Fatal("a client without SASL produced")
	}
	if err := produceTo(t.Context(), keyClient(t, e.Addr(), k.ID, secret+"x"), "clicks", "x"); err == nil {
		t.Fatal("a client with a wrong password produced")
	}
	if err := login(t.Context(), keyClient(t, e.Addr(), q.ID, qsecret)); err == nil {
		t.Fatal("a query-only key logged in to Kafka")
	}
	if err := produceTo(t.Context(), keyClient(t, e.Addr(), k.ID, secret), "clicks", "ok"); err != nil {
		t.Fatalf("the right password: %v", err)
	}
	values(t, e, "clicks", "ok")
}

// TestEmbeddedKeyScopes: ingest:S writes S only; ingest:* writes every
// topic but the internal ones (the DENY on the _sluice prefix wins over the
// * allow); neither may read or create topics; admin may do all that but
// not change ACLs or users.
func TestEmbeddedKeyScopes(t *testing.T) {
	store := keyStore(t)
	one, oneSecret := newKey(t, store, nil, "ingest:clicks", "query:*")
	all, allSecret := newKey(t, store, nil, "ingest:*")
	adm, admSecret := newKey(t, store, nil, "admin", "ingest:clicks")
	e := startAuth(t, t.TempDir(), WithKeys(store))
	ensureTopics(t, internalClient(t, e), "clicks", "logs", "_sluice_function_logs", "_sluice_dead_letters")
	ctx := t.Context()

	c1 := keyClient(t, e.Addr(), one.ID, oneSecret)
	if err := produceTo(ctx, c1, "clicks", "1"); err != nil {
		t.Fatalf("ingest:clicks to clicks: %v", err)
	}
	if err := produceTo(ctx, c1, "logs", "x"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("ingest:clicks to logs: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	ca := keyClient(t, e.Addr(), all.ID, allSecret)
	for _, topic := range []string{"logs", "clicks"} {
		if err := produceTo(ctx, ca, topic, "*"); err != nil {
			t.Fatalf("ingest:* to %s: %v", topic, err)
		}
	}
	for _, topic := range []string{"_sluice_function_logs", "_sluice_dead_letters"} {
		if err := produceTo(ctx, ca, topic, "x"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("ingest:* to %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
	}
	// No reads, no topic creation for ingest keys.
	offs, err := kadm.NewClient(ca).FetchOffsets(ctx, "g")
	if err == nil {
		err = offs.Error()
	}
	if !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Fatalf("ingest:* fetching group offsets: %v, want GROUP_AUTHORIZATION_FAILED", err)
	}
	if err := EnsureTopic(ctx, ca, "new", 1, time.Hour); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("ingest:* creating a topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	reader := keyClient(t, e.Addr(), all.ID, allSecret, kgo.ConsumeTopics("logs"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	eventually(t, 15*time.Second, "ingest:* reading logs", func() error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		fs := reader.PollFetches(pctx)
		if fs.NumRecords() > 0 {
			t.Fatal("ingest:* read logs")
		}
		for _, fe := range fs.Errors() {
			if errors.Is(fe.Err, kerr.TopicAuthorizationFailed) {
				return nil
			}
		}
		return fmt.Errorf("fetch errors %v", fs.Errors())
	})

	cadm := keyClient(t, e.Addr(), adm.ID, admSecret)
	if err := produceTo(ctx, cadm, "_sluice_function_logs", "admin"); err != nil {
		t.Fatalf("admin to _sluice_function_logs: %v", err)
	}
	if err := EnsureTopic(ctx, cadm, "made-by-admin", 1, time.Hour); err != nil {
		t.Fatalf("admin creating a topic: %v", err)
	}
	cons := keyClient(t, e.Addr(), adm.ID, admSecret, kgo.ConsumerGroup("admin-group"), kgo.ConsumeTopics("logs"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if fs := cons.PollFetches(pctx); fs.Err() != nil || fs.NumRecords() == 0 {
		t.Fatalf("admin consuming logs in a group: %v (%d records)", fs.Err(), fs.NumRecords())
	}
	res, err := kadm.NewClient(cadm).CreateACLs(ctx, kadm.NewACLs().Allow("User:"+one.ID).Topics("logs").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	if err == nil && len(res) > 0 {
		err = res[0].Err
	}
	if !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("admin creating an ACL: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
	if err := produceTo(ctx, c1, "logs", "x"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("ingest:clicks to logs after the admin's attempt: %v", err)
	}
	values(t, e, "clicks", "1", "*")
	values(t, e, "logs", "*")
	values(t, e, "_sluice_function_logs", "admin")
}

// TestEmbeddedKeyRevocation: a revoked key can no longer log in, and a
// connection it had open is refused from then on; an expired key likewise,
// without any change in the store.
func TestEmbeddedKeyRevocation(t *testing.T) {
	store := keyStore(t)
	k, secret := newKey(t, store, nil, "ingest:clicks")
	expires := time.Now().Add(2 * time.Second)
	x, xsecret := newKey(t, store, &expires, "ingest:clicks")
	e := startAuth(t, t.TempDir(), WithKeys(store))
	ensureTopics(t, internalClient(t, e), "clicks")
	ctx := t.Context()

	open := keyClient(t, e.Addr(), k.ID, secret)
	if err := produceTo(ctx, open, "clicks", "before"); err != nil {
		t.Fatal(err)
	}
	if err := login(ctx, keyClient(t, e.Addr(), k.ID, secret)); err != nil {
		t.Fatalf("new client before revocation: %v", err)
	}
	if err := store.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "new client of a revoked key", func() error {
		if err := login(ctx, keyClient(t, e.Addr(), k.ID, secret)); err == nil {
			return errors.New("logged in")
		}
		return nil
	})
	eventually(t, 10*time.Second, "open client of a revoked key", func() error {
		if err := produceTo(ctx, open, "clicks", "after"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			return fmt.Errorf("produce: %v", err)
		}
		return nil
	})

	if time.Now().Before(expires) {
		if err := login(ctx, keyClient(t, e.Addr(), x.ID, xsecret)); err != nil && time.Now().Before(expires) {
			t.Fatalf("key before its expiry: %v", err)
		}
	}
	eventually(t, 10*time.Second, "new client of an expired key", func() error {
		if err := login(ctx, keyClient(t, e.Addr(), x.ID, xsecret)); err == nil {
			return errors.New("logged in")
		}
		return nil
	})
	values(t, e, "clicks", "before")
}

// TestEmbeddedInternalClient: ClientOpts logs in as the superuser, which
// creates topics, produces and consumes in a group.
func TestEmbeddedInternalClient(t *testing.T) {
	store := keyStore(t)
	e := startAuth(t, t.TempDir(), WithKeys(store))
	if len(e.ClientOpts()) == 0 {
		t.Fatal("no client options with keys")
	}
	cl := internalClient(t, e)
	ensureTopics(t, cl, "s", "_sluice_function_logs")
	for _, topic := range []string{"s", "_sluice_function_logs"} {
		if err := produceTo(t.Context(), cl, topic, "a"); err != nil {
			t.Fatal(err)
		}
	}
	g := internalClient(t, e, kgo.ConsumerGroup("sink"), kgo.ConsumeTopics("s"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	fs := g.PollFetches(ctx)
	if fs.Err() != nil || fs.NumRecords() != 1 {
		t.Fatalf("group poll: %v, %d records", fs.Err(), fs.NumRecords())
	}
	if err := g.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "sink")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("s", 0); !ok || o.At != 1 {
		t.Fatalf("committed offset %+v, want 1", o)
	}
	// Without keys the options are empty and any client works.
	plain, err := StartEmbedded(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if len(plain.ClientOpts()) != 0 {
		t.Fatalf("ClientOpts without keys or TLS: %d options", len(plain.ClientOpts()))
	}
}

// TestEmbeddedKeysAcrossRestart: the broker's persisted users and ACLs do
// not outlive a restart: the new superuser password works, a key revoked
// while the broker was down cannot log in and has no ACLs left, the others
// work.
func TestEmbeddedKeysAcrossRestart(t *testing.T) {
	store := keyStore(t)
	dir := t.TempDir()
	gone, goneSecret := newKey(t, store, nil, "ingest:*")
	kept, keptSecret := newKey(t, store, nil, "ingest:clicks")
	e, err := StartEmbedded(dir, "127.0.0.1:0", WithKeys(store))
	if err != nil {
		t.Fatal(err)
	}
	ensureTopics(t, internalClient(t, e), "clicks")
	if err := produceTo(t.Context(), keyClient(t, e.Addr(), gone.ID, goneSecret), "clicks", "1"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if _, err := os.Stat(filepath.Join(dir, saslStateFile)); err != nil {
		t.Fatalf("kfake no longer keeps its users in %s (the reset at start is moot, check persist.go): %v", saslStateFile, err)
	}
	if err := store.Revoke(t.Context(), gone.ID); err != nil { // the closed broker ignores it
		t.Fatal(err)
	}

	e = startAuth(t, dir, WithKeys(store))
	cl := internalClient(t, e)
	if err := produceTo(t.Context(), cl, "clicks", "2"); err != nil {
		t.Fatalf("internal client after restart: %v", err)
	}
	if err := login(t.Context(), keyClient(t, e.Addr(), gone.ID, goneSecret)); err == nil {
		t.Fatal("a key revoked while the broker was down logged in after restart")
	}
	if err := produceTo(t.Context(), keyClient(t, e.Addr(), kept.ID, keptSecret), "clicks", "3"); err != nil {
		t.Fatalf("kept key after restart: %v", err)
	}
	acls, err := e.sync.describeACLs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for a := range acls {
		if a.Principal != "User:"+kept.ID {
			t.Errorf("ACL %+v left after restart", a)
		}
	}
	if len(acls) != len(keyACLs(kept)) {
		t.Errorf("%d ACLs, want %d", len(acls), len(keyACLs(kept)))
	}
	values(t, e, "clicks", "1", "2", "3")
}

// TestEmbeddedKeySyncIdempotent: a sync with nothing changed changes
// nothing; users and ACLs made by other means are removed by the next one.
func TestEmbeddedKeySyncIdempotent(t *testing.T) {
	store := keyStore(t)
	newKey(t, store, nil, "admin")
	newKey(t, store, nil, "ingest:clicks", "ingest:logs")
	newKey(t, store, nil, "ingest:*")
	newKey(t, store, nil, "query:*")
	e := startAuth(t, t.TempDir(), WithKeys(store))
	ctx := t.Context()
	if n, err := e.sync.apply(ctx, store.List(), time.Now()); err != nil || n != 0 {
		t.Fatalf("second sync: %d changes, %v; want none", n, err)
	}
	want := 5 + 5 + 3
	if acls, err := e.sync.describeACLs(ctx); err != nil || len(acls) != want {
		t.Fatalf("%d ACLs (%v), want %d", len(acls), err, want)
	}

	adm := kadm.NewClient(internalClient(t, e))
	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:stranger").Topics("x").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "stranger", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "pw"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := e.sync.apply(ctx, store.List(), time.Now()); err != nil || n != 2 {
		t.Fatalf("sync after foreign changes: %d changes, %v; want 2", n, err)
	}
	if acls, err := e.sync.describeACLs(ctx); err != nil || len(acls) != want {
		t.Fatalf("%d ACLs (%v), want %d", len(acls), err, want)
	}
	if err := login(ctx, testClient(t, e.Addr(), kgo.SASL(scram.Auth{User: "stranger", Pass: "pw"}.AsSha256Mechanism()))); err == nil {
		t.Fatal("a user made by other means survived a sync")
	}
}

// TestKeyACLs pins what each scope maps to.
func TestKeyACLs(t *testing.T) {
	str := func(k auth.Key) string {
		var out []string
		for _, a := range keyACLs(k) {
			out = append(out, fmt.Sprintf("%s %s %s:%s/%s %s", a.Principal, a.Permission, a.ResourceType, a.Name, a.Pattern, a.Operation))
		}
		return strings.Join(out, "; ")
	}
	for _, c := range []struct {
		scopes []string
		want   string
	}{
		{[]string{"query:*", "query:t"}, ""},
		{[]string{"ingest:clicks"}, "User:k ALLOW TOPIC:clicks/LITERAL WRITE; User:k ALLOW TOPIC:clicks/LITERAL DESCRIBE; User:k DENY TOPIC:_sluice/PREFIXED ALL"},
		{[]string{"ingest:*", "query:*"}, "User:k ALLOW TOPIC:*/LITERAL WRITE; User:k ALLOW TOPIC:*/LITERAL DESCRIBE; User:k DENY TOPIC:_sluice/PREFIXED ALL"},
		{[]string{"ingest:*", "admin"}, "User:k ALLOW TOPIC:*/LITERAL ALL; User:k ALLOW GROUP:*/LITERAL ALL; User:k ALLOW TRANSACTIONAL_ID:*/LITERAL ALL; " +
			"User:k ALLOW CLUSTER:kafka-cluster/LITERAL ALL; User:k DENY CLUSTER:kafka-cluster/LITERAL ALTER"},
	} {
		if got := str(auth.Key{KeyInfo: auth.KeyInfo{ID: "k", Scopes: c.scopes}}); got != c.want {
			t.Errorf("%v:\n got %s\nwant %s", c.scopes, got, c.want)
		}
	}
}

// selfSigned returns a self-signed certificate for 127.0.0.1 and
// localhost, and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool, []byte) {
	c := testcert.New(t)
	return c.TLS, c.Pool, c.PEM
}

// TestEmbeddedTLS: over TLS a SCRAM client that trusts the certificate
// produces, a plaintext one does not, and the internal client (trusting the
// given pool, or the server's own certificate) works.
func TestEmbeddedTLS(t *testing.T) {
	cert, pool, _ := selfSigned(t)
	store := keyStore(t)
	k, secret := newKey(t, store, nil, "ingest:clicks")
	for _, roots := range []*x509.CertPool{pool, nil} {
		e := startAuth(t, t.TempDir(), WithKeys(store), WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}, roots))
		ensureTopics(t, internalClient(t, e), "clicks")
		if err := produceTo(t.Context(), keyClient(t, e.Addr(), k.ID, secret, kgo.DialTLSConfig(&tls.Config{RootCAs: pool})), "clicks", "tls"); err != nil {
			t.Fatalf("TLS+SCRAM client: %v", err)
		}
		if err := produceTo(t.Context(), keyClient(t, e.Addr(), k.ID, secret), "clicks", "plain"); err == nil {
			t.Fatal("a plaintext client produced to the TLS listener")
		}
		if err := login(t.Context(), keyClient(t, e.Addr(), k.ID, secret, kgo.DialTLSConfig(&tls.Config{}))); err == nil {
			t.Fatal("a client not trusting the certificate logged in")
		}
		values(t, e, "clicks", "tls")
	}
	// TLS without keys: no SASL, ClientOpts carries the TLS config alone.
	e := startAuth(t, t.TempDir(), WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}, nil))
	if n := len(e.ClientOpts()); n != 1 {
		t.Fatalf("ClientOpts with TLS only: %d options, want 1", n)
	}
	ic := internalClient(t, e)
	ensureTopics(t, ic, "clicks")
	if err := produceTo(t.Context(), ic, "clicks", "tls only"); err != nil {
		t.Fatalf("internal client, TLS without keys: %v", err)
	}
	values(t, e, "clicks", "tls only")
	if _, err := StartEmbedded(t.TempDir(), "127.0.0.1:0", WithTLS(&tls.Config{}, nil)); err == nil {
		t.Fatal("TLS without a certificate or roots started")
	}
}

// TestEmbeddedAdvertise: the broker tells clients the advertised address
// (port 0: the listener's), and clients, the internal ones included (TLS
// checked against the advertised name), work through it.
func TestEmbeddedAdvertise(t *testing.T) {
	cert, _, _ := selfSigned(t)
	store := keyStore(t)
	k, secret := newKey(t, store, nil, "ingest:clicks")
	e := startAuth(t, t.TempDir(), WithKeys(store), WithAdvertise("localhost:0"), WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}, nil))
	cl := internalClient(t, e)
	ensureTopics(t, cl, "clicks")
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(e.Addr())
	if len(md.Brokers) != 1 || md.Brokers[0].Host != "localhost" || strconv.Itoa(int(md.Brokers[0].Port)) != port {
		t.Fatalf("advertised brokers %+v, want localhost:%s", md.Brokers, port)
	}
	if e.clientTLS.ServerName != "localhost" {
		t.Fatalf("internal TLS server name %q, want localhost", e.clientTLS.ServerName)
	}
	if err := produceTo(t.Context(), keyClient(t, "localhost:"+port, k.ID, secret, kgo.DialTLSConfig(&tls.Config{RootCAs: e.clientTLS.RootCAs})), "clicks", "adv"); err != nil {
		t.Fatal(err)
	}
	values(t, e, "clicks", "adv")
	if _, err := StartEmbedded(t.TempDir(), "127.0.0.1:0", WithAdvertise("no-port")); err == nil {
		t.Fatal("an advertised address without a port was accepted")
	}
}

// TestEmbeddedKcat: librdkafka (kcat) produces with SASL_SSL and
// SCRAM-SHA-256 as a key, and is refused a topic outside its scope.
func TestEmbeddedKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not on PATH")
	}
	cert, _, certPEM := selfSigned(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	store := keyStore(t)
	k, secret := newKey(t, store, nil, "ingest:clicks")
	e := startAuth(t, t.TempDir(), WithKeys(store), WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}, nil))
	ensureTopics(t, internalClient(t, e), "clicks", "logs")
	run := func(topic, value string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, "-P", "-b", e.Addr(), "-t", topic,
			"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-256",
			"-X", "sasl.username="+k.ID, "-X", "sasl.password="+secret, "-X", "ssl.ca.location="+ca,
			"-X", "message.timeout.ms=10000")
		cmd.Stdin = strings.NewReader(value + "\n")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := run("clicks", "from-kcat"); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	values(t, e, "clicks", "from-kcat")
	out, err := run("logs", "nope")
	if err == nil && !strings.Contains(out, "uthoriz") {
		t.Fatalf("kcat produced to logs with an ingest:clicks key:\n%s", out)
	}
	t.Logf("kcat refused logs: %v: %s", err, strings.TrimSpace(out))
}

// rawApiVersions sends an ApiVersions request of version v on a new
// connection to addr (no SASL: ApiVersions comes first) and returns the
// answer.
func rawApiVersions(t *testing.T, addr string, v int16) *kmsg.ApiVersionsResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = v
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	frame := binary.BigEndian.AppendUint32(nil, 0)
	frame = binary.BigEndian.AppendUint16(frame, uint16(kmsg.ApiVersions))
	frame = binary.BigEndian.AppendUint16(frame, uint16(v))
	frame = binary.BigEndian.AppendUint32(frame, 7) // correlation ID
	frame = binary.BigEndian.AppendUint16(frame, 4) // client ID "test"
	frame = append(frame, "test"...)
	if req.IsFlexible() {
		frame = append(frame, 0) // no header tags
	}
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	var head [8]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatal(err)
	}
	if corr := binary.BigEndian.Uint32(head[4:]); corr != 7 {
		t.Fatalf("correlation ID %d", corr)
	}
	body := make([]byte, binary.BigEndian.Uint32(head[:4])-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = v
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestEmbeddedApiVersionsListsSaslHandshakeV0: with keys the broker lists
// SaslHandshake from version 0 (what librdkafka needs to try SCRAM) and
// otherwise answers as kfake does; kfake alone lists it from 1 (if it
// starts listing 0 itself, that part of compatConn can go).
func TestEmbeddedApiVersionsListsSaslHandshakeV0(t *testing.T) {
	plain, err := StartEmbedded(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	e := startAuth(t, t.TempDir(), WithKeys(keyStore(t)))
	byKey := func(r *kmsg.ApiVersionsResponse) map[int16][2]int16 {
		m := map[int16][2]int16{}
		for _, k := range r.ApiKeys {
			m[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
		}
		return m
	}
	for _, v := range []int16{0, 1, 2, 3, 4} {
		want, got := byKey(rawApiVersions(t, plain.Addr(), v)), byKey(rawApiVersions(t, e.Addr(), v))
		if want[int16(kmsg.SASLHandshake)] != [2]int16{1, 1} {
			t.Fatalf("v%d: kfake lists SaslHandshake %v, not 1-1", v, want[int16(kmsg.SASLHandshake)])
		}
		want[int16(kmsg.SASLHandshake)] = [2]int16{0, 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("v%d: ApiVersions with keys\n%v\nwant\n%v", v, got, want)
		}
	}
}
