// Package kafkax holds the Kafka plumbing shared by the stages: the embedded
// broker that `sluice up` runs, client construction, and topic management.
package kafkax

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake) that
// persists its log and consumer-group state to a directory and listens on a
// real TCP port, so any Kafka client can produce to and consume from it.
//
// Started WithKeys, it requires SASL SCRAM-SHA-256 from every client and
// checks ACLs; sluice's own clients then authenticate with ClientOpts.
type Embedded struct {
	cluster *kfake.Cluster
	addr    string

	superPass string      // "" when authentication is off
	clientTLS *tls.Config // nil when TLS is off
	sync      *keySync    // nil when authentication is off
}

// RetentionCheckMs is how often the embedded broker applies topic retention
// (log.cleaner.backoff.ms). Kafka checks every 5 minutes by default; kfake
// every hour unless told.
const RetentionCheckMs = 60_000

// Superuser is the SCRAM-SHA-256 user name of sluice's internal clients
// (ClientOpts) when the broker runs WithKeys. It is not hex, so no key ID
// (16 hex digits) can be it. Its password is random, made anew at each
// start and known only to the process; it bypasses every ACL.
const Superuser = "sluice"

// InternalTopicPrefix starts the names of sluice's internal topics (dead
// letters, function logs). No key but an admin key may use them, whatever
// its ingest scopes.
const InternalTopicPrefix = "_sluice"

// KeySource is where the broker gets its API keys: OnChange must call fn
// with every key at once, then again after each change. *auth.Store is one.
type KeySource interface {
	OnChange(fn func([]auth.Key))
}

// EmbeddedOption configures StartEmbedded.
type EmbeddedOption func(*embeddedConfig)

type embeddedConfig struct {
	keys      KeySource
	tls       *tls.Config
	roots     *x509.CertPool
	advertise string
	logf      func(format string, args ...any)
}

// WithKeys turns on authentication and authorization: every client must log
// in with SASL SCRAM-SHA-256 as a key (user name: the key's ID, password:
// the key's secret), and may then do only what the key's scopes grant (see
// keyACLs for the exact ACLs):
//
//   - admin: everything on every topic, group, transactional ID and on the
//     cluster, except ALTER on the cluster (creating or deleting ACLs and
//     SCRAM credentials, electing leaders, reassigning partitions): users
//     and ACLs are sluice's, derived from the keys.
//   - ingest:STREAM: produce to topic STREAM (WRITE and DESCRIBE on that
//     literal, case-sensitive name), idempotently too; no reads, no topic
//     creation, no groups.
//   - ingest:*: produce to every topic except the internal ones, whose name
//     starts with InternalTopicPrefix (a DENY of every operation on that
//     prefix, which wins over any allow; it applies to every key with an
//     ingest scope and no admin scope, ingest:_sluice_x included).
//   - query:TABLE, query:*: nothing; a key with only query scopes has no
//     Kafka user and cannot log in.
//
// Keys are synced, as the broker's superuser through the Kafka admin API,
// at each OnChange callback (the callback returns once the broker has
// applied the change, or after 10 seconds, failed syncs being retried in
// the background) and when a key expires. A key removed or expired loses
// its SCRAM credential (new connections cannot log in) and its ACLs
// (connections already logged in are refused every request from then on).
// The broker's SCRAM users and ACLs are made exactly those of the keys at
// each sync: anything else is deleted. The keys' secrets are never needed:
// the broker is given each key's salt, iteration count and salted password
// (kfake only works with 4096 iterations, auth.SCRAMIterations; a key of
// another count gets no user). librdkafka clients (kcat and the like) can
// log in too, and so can Java clients from 3.x on: see compatConn.
func WithKeys(src KeySource) EmbeddedOption {
	return func(c *embeddedConfig) { c.keys = src }
}

// WithTLS makes the listener speak TLS with server. roots are the
// certificates sluice's internal clients (ClientOpts) trust; nil trusts the
// server's own certificate (server.Certificates[0], self-signed or not).
// The internal clients check the certificate against the advertised host
// (WithAdvertise) or else against the host they dial (the listen address).
func WithTLS(server *tls.Config, roots *x509.CertPool) EmbeddedOption {
	return func(c *embeddedConfig) { c.tls, c.roots = server, roots }
}

// WithAdvertise makes the broker tell clients (in metadata and coordinator
// answers) to connect to hostport instead of its listen address, e.g. a
// public name when listening on 0.0.0.0. A port of 0 means the listener's
// port. sluice's internal clients also follow it after their first request,
// so it must reach this broker from the sluice process too.
func WithAdvertise(hostport string) EmbeddedOption {
	return func(c *embeddedConfig) { c.advertise = hostport }
}

// WithLogf sets where key sync failures are reported (they are retried).
func WithLogf(logf func(format string, args ...any)) EmbeddedOption {
	return func(c *embeddedConfig) { c.logf = logf }
}

// saslStateFile is where kfake keeps its SCRAM users in its data directory.
// It is removed before each start with keys: kfake's persisted users would
// replace the superuser seeded with the new password, and the keys' users
// are synced again from the key store anyway.
const saslStateFile = "sasl.json"

// initialSyncTimeout bounds how long StartEmbedded waits for the first sync.
const initialSyncTimeout = 30 * time.Second

// StartEmbedded starts the broker on listen (host:port; port 0 picks a free
// one) with its data in dir. With no option it accepts any client
// (PLAINTEXT, no authentication). With WithKeys it returns once every
// key's user and ACLs are in place.
func StartEmbedded(dir, listen string, opts ...EmbeddedOption) (*Embedded, error) {
	var cfg embeddedConfig
	for _, o := range opts {
		o(&cfg)
	}
	var advertise *hostPortAddr
	if cfg.advertise != "" {
		host, port, err := net.SplitHostPort(cfg.advertise)
		if err != nil || host == "" {
			return nil, fmt.Errorf("cannot advertise Kafka address %q: want host:port", cfg.advertise)
		}
		advertise = &hostPortAddr{host: host, port: port}
	}
	var clientTLS *tls.Config
	if cfg.tls != nil {
		roots := cfg.roots
		if roots == nil {
			leaf, err := leafOf(cfg.tls)
			if err != nil {
				return nil, err
			}
			roots = x509.NewCertPool()
			roots.AddCert(leaf)
		}
		clientTLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if advertise != nil {
			clientTLS.ServerName = advertise.host
		}
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create Kafka data directory %q: %w", dir, err)
	}
	var superPass string
	if cfg.keys != nil {
		if err := os.Remove(filepath.Join(dir, saslStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cannot reset the embedded broker's users in %q: %w", dir, err)
		}
		b := make([]byte, 32)
		rand.Read(b)
		superPass = base64.RawURLEncoding.EncodeToString(b)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for Kafka clients on %s (change --kafka-listen): %w", listen, err)
	}
	addr := ln.Addr().String()
	served := net.Listener(ln)
	if cfg.tls != nil {
		served = tls.NewListener(served, cfg.tls) // here, not kfake.TLS: compatListener must see plaintext
	}
	served = compatListener{Listener: served, sasl: cfg.keys != nil}
	if advertise != nil {
		if advertise.port == "0" {
			_, advertise.port, _ = net.SplitHostPort(addr)
		}
		served = advertisedListener{Listener: served, addr: advertise}
	}
	used := false
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(dir),
		kfake.ClusterID("sluice-embedded"),
		kfake.ListenFn(func(string, string) (net.Listener, error) {
			if used {
				return nil, fmt.Errorf("BUG: embedded broker asked for a second listener")
			}
			used = true
			return served, nil
		}),
		kfake.BrokerConfigs(map[string]string{
			"log.cleaner.backoff.ms": fmt.Sprint(RetentionCheckMs),
		}),
	}
	if cfg.keys != nil {
		kopts = append(kopts, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("SCRAM-SHA-256", Superuser, superPass))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot start embedded Kafka broker in %q: %w", dir, err)
	}
	e := &Embedded{cluster: c, addr: addr, superPass: superPass, clientTLS: clientTLS}
	if cfg.keys == nil {
		return e, nil
	}
	cl, err := NewClient([]string{addr}, e.ClientOpts()...)
	if err != nil {
		c.Close()
		return nil, err
	}
	e.sync = startKeySync(cl, cfg.logf)
	cfg.keys.OnChange(e.sync.update)
	ctx, cancel := context.WithTimeout(context.Background(), initialSyncTimeout)
	defer cancel()
	if err := e.sync.wait(ctx, 1); err != nil {
		e.Close()
		return nil, fmt.Errorf("cannot give the embedded Kafka broker its API keys: %w", err)
	}
	return e, nil
}

// leafOf returns the certificate server presents.
func leafOf(server *tls.Config) (*x509.Certificate, error) {
	if len(server.Certificates) == 0 || len(server.Certificates[0].Certificate) == 0 {
		return nil, errors.New("cannot serve Kafka over TLS: the TLS config has no certificate (give the roots to trust explicitly)")
	}
	if leaf := server.Certificates[0].Leaf; leaf != nil {
		return leaf, nil
	}
	leaf, err := x509.ParseCertificate(server.Certificates[0].Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("cannot parse the Kafka TLS certificate: %w", err)
	}
	return leaf, nil
}

// advertisedListener reports addr as its address: kfake advertises its
// listener's address to clients.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }

type hostPortAddr struct{ host, port string }

func (a *hostPortAddr) Network() string { return "tcp" }
func (a *hostPortAddr) String() string  { return net.JoinHostPort(a.host, a.port) }

// Addr is the broker's listen address (host:port), for sluice's own
// clients to dial; clients elsewhere use the advertised address.
func (e *Embedded) Addr() string { return e.addr }

// ClientOpts are the options sluice's internal clients need on top of
// NewClient's: SASL SCRAM-SHA-256 as Superuser when the broker runs
// WithKeys, and TLS trusting the roots given to WithTLS when TLS is on.
// It is empty when neither is. Every internal client (producers, consumer
// groups, admin) must use them: the broker refuses clients without them.
func (e *Embedded) ClientOpts() []kgo.Opt {
	user := ""
	if e.superPass != "" {
		user = Superuser
	}
	opts, _ := AuthOpts("SCRAM-SHA-256", user, e.superPass, e.clientTLS.Clone()) // a known mechanism: no error
	return opts
}

// Cluster exposes the kfake cluster for tests (fault injection, retention).
func (e *Embedded) Cluster() *kfake.Cluster { return e.cluster }

// Close stops the broker; its state is already on disk. Key changes seen
// after Close are ignored (a KeySource cannot forget a callback).
func (e *Embedded) Close() {
	if e.sync != nil {
		e.sync.close()
	}
	e.cluster.Close()
}
