package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/net/netutil"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/console"
	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/kafkax"
	"github.com/sluice-dev/sluice/internal/metrics"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/processors"
	"github.com/sluice-dev/sluice/processors/fn"
	"github.com/sluice-dev/sluice/processors/fnlog"
	"github.com/sluice-dev/sluice/query"
	"github.com/sluice-dev/sluice/query/catalog"
	"github.com/sluice-dev/sluice/query/pgwire"
	"github.com/sluice-dev/sluice/sink"
)

type upConfig struct {
	data           string
	storage        string
	listen         string
	pgListen       string   // Postgres wire protocol (query role); "" or "off": none
	kafkaListen    string   // embedded broker (up)
	kafkaAdvertise string   // the address the embedded broker gives clients ("": kafkaListen's)
	brokers        []string // an external Kafka cluster (serve); none: embedded
	kafkaSASL      struct{ mechanism, user, password string }
	kafkaTLS       bool
	kafkaCA        string // PEM roots for kafkaTLS ("": the system's)
	roles          map[string]bool
	workerID       string // static group member ID of this worker
	session        time.Duration
	provision      bool // create the default stream, table and pipeline

	queryMemory string
	queryTime   time.Duration
	queryCache  string
	resultBytes string
	skipBad     bool
	queryConc   int
	pgIdle      time.Duration
	ingestMem   string
	maxConns    int
	budget      string
	fnMemory    string
	compact     time.Duration
	retireGrace time.Duration
	async       asyncConfig // the async query API (async.go)

	auth         string   // on, off
	allowedHosts []string // Host names the HTTP API answers to, beyond its own addresses
	allowExec    bool     // the exec runtime (runs any program) is enabled
	tlsCert      string   // PEM certificate chain for HTTP, Postgres and the embedded Kafka
	tlsKey       string

	logFormat string // text, json
}

func (c *upConfig) validate() error {
	var errs []error
	if c.data == "" {
		errs = append(errs, errors.New("--data must name a directory"))
	}
	addrs := map[string]string{"--listen": c.listen}
	if c.pgEnabled() {
		addrs["--pg-listen"] = c.pgListen
	}
	if len(c.brokers) == 0 {
		addrs["--kafka-listen"] = c.kafkaListen
	}
	for i, b := range c.brokers {
		addrs[fmt.Sprintf("--brokers (#%d)", i+1)] = b
	}
	for flagName, addr := range addrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port: %w", flagName, addr, err))
		}
	}
	for r := range c.roles {
		if r != "ingest" && r != "worker" && r != "query" {
			errs = append(errs, fmt.Errorf("--roles: unknown role %q (ingest, worker, query)", r))
		}
	}
	if len(c.roles) == 0 {
		errs = append(errs, errors.New("--roles: name at least one of ingest, worker, query"))
	}
	if c.queryTime <= 0 {
		errs = append(errs, errors.New("--query-timeout must be positive"))
	}
	if n, err := parseSize(c.budget); err != nil || n < 1<<20 {
		errs = append(errs, fmt.Errorf("--memory-budget %q: want a size of at least 1MiB, like 512MiB", c.budget))
	}
	if n, err := parseSize(c.fnMemory); err != nil || n < 1<<20 {
		errs = append(errs, fmt.Errorf("--function-memory %q: want a size of at least 1MiB, like 1GiB", c.fnMemory))
	}
	if c.compact < 0 {
		errs = append(errs, errors.New("--compact-interval must not be negative"))
	}
	if c.retireGrace <= c.queryTime {
		errs = append(errs, fmt.Errorf("--retire-grace %s must be longer than --query-timeout %s: a running query may still read a file compaction replaced", c.retireGrace, c.queryTime))
	}
	if n, err := parseSize(c.ingestMem); err != nil || n < 1<<20 {
		errs = append(errs, fmt.Errorf("--ingest-memory %q: want a size of at least 1MiB, like 256MiB", c.ingestMem))
	}
	if n, err := parseSize(c.resultBytes); err != nil || n < 1<<10 {
		errs = append(errs, fmt.Errorf("--query-result-bytes %q: want a size of at least 1KiB, like 64MiB", c.resultBytes))
	}
	if c.queryConc < 1 {
		errs = append(errs, errors.New("--query-concurrency must be at least 1"))
	}
	if c.maxConns < 1 {
		errs = append(errs, errors.New("--max-connections must be at least 1"))
	}
	errs = append(errs, c.async.validate()...)
	if host, _, err := net.SplitHostPort(c.kafkaListen); err == nil && len(c.brokers) == 0 && c.kafkaAdvertise == "" {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("--kafka-listen %s needs --kafka-advertise HOST:PORT, the address Kafka clients are told to connect to", c.kafkaListen))
		}
	}
	switch c.auth {
	case "on":
	case "off":
		for flagName, addr := range addrs {
			if !strings.HasPrefix(flagName, "--brokers") && !auth.IsLoopback(addr) {
				errs = append(errs, fmt.Errorf("--auth off is refused: %s %s is not a loopback address, and anyone who reaches it could deploy and run code; keep --auth on (the default) or bind 127.0.0.1", flagName, addr))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("--auth %q: want on or off", c.auth))
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	} else if c.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey); err != nil {
			errs = append(errs, fmt.Errorf("--tls-cert/--tls-key: %w", err))
		}
	}
	if _, err := newLogger(c.logFormat, io.Discard); err != nil {
		errs = append(errs, err)
	}
	if n, err := parseSize(c.queryCache); err != nil || n < 0 {
		errs = append(errs, fmt.Errorf("--query-cache-size %q: want a size like 10GiB, or 0 for no bound", c.queryCache))
	}
	return errors.Join(errs...)
}

func (c *upConfig) pgEnabled() bool {
	return c.roles["query"] && c.pgListen != "" && c.pgListen != "off"
}

// commonFlags are the flags `up` and `serve` share.
func commonFlags(fs *flag.FlagSet, c *upConfig) {
	fs.StringVar(&c.data, "data", "./sluice-data", "data directory: Kafka log in DATA/kafka (up), tables and registry in DATA/objects, caches in DATA/cache")
	fs.StringVar(&c.storage, "storage", "", "object storage for tables, registry and progress: a directory or s3://bucket/prefix?endpoint=host:port&path_style=true&insecure=true (default DATA/objects)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "HTTP address of the ingest, admin and query APIs")
	fs.StringVar(&c.pgListen, "pg-listen", "127.0.0.1:5433", `Postgres wire protocol address for psql and SQL drivers (query role; SCRAM-SHA-256 login: user = key id, password = key); "off" disables it`)
	fs.DurationVar(&c.pgIdle, "pg-idle-timeout", pgwire.DefaultIdleTimeout, "end a Postgres session idle that long between queries (FATAL 57P05); 0: never")
	fs.StringVar(&c.queryMemory, "query-memory", "1GB", "DuckDB memory limit for all queries together")
	fs.DurationVar(&c.queryTime, "query-timeout", time.Minute, "longest a query may run")
	fs.BoolVar(&c.skipBad, "query-skip-unreadable", false, "leave committed files that cannot be read out of queries, listing them in each answer (skipped_files), instead of failing the queries that read them")
	fs.StringVar(&c.resultBytes, "query-result-bytes", "64MiB", "memory one query's result may hold; past it the result is cut (truncated, with truncated_by)")
	fs.IntVar(&c.queryConc, "query-concurrency", query.DefaultMaxConcurrent, "queries that run at once; more wait for a slot within --query-timeout")
	asyncFlags(fs, &c.async)
	fs.StringVar(&c.budget, "memory-budget", "512MiB", "rows buffered by all pipelines together before files are written early")
	fs.StringVar(&c.fnMemory, "function-memory", "1GiB", "memory all function instances may reserve together (each its --memory; exec ones also 64 MiB for their output); past it an instance waits, its partition retrying")
	fs.DurationVar(&c.compact, "compact-interval", 5*time.Minute, "how often each partition's owner merges its small table files, and unreferenced files are deleted (0: never)")
	fs.DurationVar(&c.retireGrace, "retire-grace", sink.DefaultRetireGrace, "how long a file compaction replaced is kept for queries that still read it (longer than --query-timeout)")
	fs.StringVar(&c.ingestMem, "ingest-memory", "256MiB", "bytes that HTTP ingest requests may hold together (each reserves twice its body); past it requests get 503 with Retry-After")
	fs.IntVar(&c.maxConns, "max-connections", 1024, "HTTP connections open at once; more wait to be accepted")
	fs.StringVar(&c.queryCache, "query-cache-size", "10GiB", "local disk for copies of S3 table files that queries read (least recently used first out; 0: no bound)")
	fs.StringVar(&c.auth, "auth", "on", `API keys on every listener ("off" only when every listener is on loopback)`)
	fs.Func("allowed-hosts", "extra Host names the HTTP API answers to, comma-separated (its own addresses and localhost always; * for any)", func(v string) error {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.allowedHosts = append(c.allowedHosts, h)
			}
		}
		return nil
	})
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS, Postgres with TLS (sslmode=require) and the embedded Kafka over TLS")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&c.logFormat, "log-format", "text", "log lines as text (key=value) or json (one object per line)")
	fs.BoolVar(&c.allowExec, "allow-exec", false, "enable the exec function runtime, which runs any program an admin key deploys, as this process's user (wasm functions are sandboxed and always on)")
}

// run checks what fs parsed into c and runs it.
func run(fs *flag.FlagSet, c *upConfig) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.validate(); err != nil {
		return err
	}
	log, _ := newLogger(c.logFormat, os.Stderr) // validated
	return up(*c, log)
}

// runUp: everything in one process, on an embedded broker.
func runUp(args []string) error {
	c := upConfig{roles: map[string]bool{"ingest": true, "worker": true, "query": true}, workerID: "sluice-up", provision: true}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	commonFlags(fs, &c)
	fs.StringVar(&c.kafkaListen, "kafka-listen", "127.0.0.1:9092", "address of the embedded Kafka broker, for any Kafka client (SASL SCRAM-SHA-256 with API keys: user = key id, password = key)")
	fs.StringVar(&c.kafkaAdvertise, "kafka-advertise", "", "host:port the embedded broker tells clients to connect to (default: --kafka-listen's); needed when it listens on 0.0.0.0")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return run(fs, &c)
}

// runServe: chosen roles against an external Kafka cluster.
func runServe(args []string) error {
	var c upConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	commonFlags(fs, &c)
	brokers := fs.String("brokers", "", "Kafka bootstrap brokers, host:port[,host:port...] (required)")
	roles := fs.String("roles", "ingest,worker,query", "what this process does: ingest, worker, query (comma-separated)")
	host, _ := os.Hostname()
	fs.StringVar(&c.workerID, "worker-id", "", "this worker's stable identity in the pipelines' consumer groups; unique per worker (default: host name and --listen)")
	fs.DurationVar(&c.session, "session-timeout", 45*time.Second, "how long the pipelines' consumer groups wait for a worker that stopped answering before moving its partitions")
	fs.StringVar(&c.kafkaSASL.user, "kafka-sasl-user", "", "SASL user name for --brokers (for a sluice up broker: an API key's id)")
	fs.StringVar(&c.kafkaSASL.password, "kafka-sasl-password", os.Getenv("SLUICE_KAFKA_PASSWORD"), "SASL password (default $SLUICE_KAFKA_PASSWORD; for a sluice up broker: the key)")
	fs.StringVar(&c.kafkaSASL.mechanism, "kafka-sasl-mechanism", "SCRAM-SHA-256", "SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN")
	fs.BoolVar(&c.kafkaTLS, "kafka-tls", false, "connect to --brokers over TLS")
	fs.StringVar(&c.kafkaCA, "kafka-ca", "", "PEM file of the CAs that sign the brokers' certificates (default: the system's)")
	fs.BoolVar(&c.provision, "provision-defaults", false, "create the default stream, table and pipeline logs on an empty store")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c.roles = map[string]bool{}
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			c.roles[r] = true
		}
	}
	if *brokers == "" {
		return errors.New("--brokers is required (use `sluice up` for an embedded broker)")
	}
	c.brokers = strings.Split(*brokers, ",")
	if c.workerID == "" {
		c.workerID = host + "-" + c.listen
	}
	return run(fs, &c)
}

// up builds every part, starts them, waits for SIGINT/SIGTERM, and stops
// them in reverse order: HTTP intake first, then the pipelines (which finish
// their batches, write and commit), then the producer, the query engine and
// the broker. A second signal exits at once.
func up(c upConfig, log *slog.Logger) error {
	start := time.Now()
	ctx := context.Background()
	storage := c.storage
	if storage == "" {
		storage = filepath.Join(c.data, "objects")
	}
	tlsConfig, err := c.tls()
	if err != nil {
		return err
	}
	bucket, err := objstore.Open(ctx, storage)
	if err != nil {
		return fmt.Errorf("cannot open storage (check --storage): %w", err)
	}
	guard, keys, err := openAuth(ctx, c, bucket, log)
	if err != nil {
		return err
	}
	if keys != nil {
		keysCtx, stopKeys := context.WithCancel(context.Background())
		defer stopKeys()
		go keys.Run(keysCtx)
	}
	brokers := c.brokers
	kafkaOpts, err := c.externalKafka() // what sluice's own clients need to get in
	if err != nil {
		return err
	}
	if len(brokers) == 0 {
		var opts []kafkax.EmbeddedOption
		if keys != nil {
			opts = append(opts, kafkax.WithKeys(keys), kafkax.WithLogf(func(format string, args ...any) {
				log.Warn("embedded kafka: " + fmt.Sprintf(format, args...))
			}))
		}
		if tlsConfig != nil {
			opts = append(opts, kafkax.WithTLS(tlsConfig, nil))
		}
		if c.kafkaAdvertise != "" {
			opts = append(opts, kafkax.WithAdvertise(c.kafkaAdvertise))
		}
		broker, err := kafkax.StartEmbedded(filepath.Join(c.data, "kafka"), c.kafkaListen, opts...)
		if err != nil {
			return err
		}
		defer stopStep(log, "kafka broker", broker.Close)
		brokers = []string{broker.Addr()}
		kafkaOpts = broker.ClientOpts()
	}

	producer, err := kafkax.NewClient(brokers, append(slices.Clip(kafkaOpts),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.ProducerLinger(5*time.Millisecond),
	)...)
	if err != nil {
		return err
	}
	defer stopStep(log, "producer", func() { producer.Flush(context.Background()); producer.Close() })

	reg, err := deploy.Open(ctx, bucket, func(ctx context.Context, topic string, partitions int32, retention time.Duration) error {
		return kafkax.EnsureTopic(ctx, producer, topic, partitions, retention)
	})
	if err != nil {
		return err
	}
	for key, msg := range reg.Broken() {
		log.Error("registry object is unreadable and left out: restore, recreate or delete it", "object", key, "err", msg)
	}
	reg.Log = log
	if keys != nil {
		if err := reg.EnsureAudit(ctx); err != nil {
			return fmt.Errorf("cannot create the audit table: %w", err)
		}
		guard.Events = auditTo(producer, log)
	}
	reg.CheckWasm = fn.CheckModule
	reg.AllowExec = c.allowExec
	if c.provision {
		if err := reg.ProvisionDefaults(ctx); err != nil {
			return fmt.Errorf("cannot provision the default stream, table and pipeline: %w", err)
		}
	}
	// Function logs: workers write them, every role's API reads them.
	flog, err := fnlog.Open(ctx, brokers, log, kafkaOpts...)
	if err != nil {
		return err
	}
	defer stopStep(log, "function logs", flog.Close)
	m := metrics.New()
	mux := http.NewServeMux()   // what each role serves, each behind its key check
	admin := http.NewServeMux() // the admin API: every route needs an admin key
	api := &deploy.API{Reg: reg, Logs: flog}

	var upAttrs []any // for the "sluice is up" line
	if c.roles["query"] {
		cat, err := newCatalog(c, reg, bucket, log)
		if err != nil {
			return err
		}
		resultBytes, _ := parseSize(c.resultBytes) // validated
		tempDir := filepath.Join(c.data, "tmp", "duckdb")
		qe, err := query.New(query.Config{
			MemoryLimit: c.queryMemory, Timeout: c.queryTime, Log: log,
			MaxResultBytes: resultBytes, MaxConcurrent: c.queryConc, SkipUnreadable: c.skipBad,
			AllowedDirs: []string{cat.Dir()}, TempDir: tempDir,
			SetupSQL: pgwire.CatalogSQL(), // the Postgres face (catalogs for psql, drivers, BI tools)
			Observe:  observeQueries(m),
		}, cat)
		if err != nil {
			return err
		}
		m.Query.Watch(qe, query.ErrorKinds)
		defer stopStep(log, "query engine", func() { qe.Close() })
		mux.Handle("/v1/query", guard.Require("query", nil, qe.Handler())) // the engine checks each table
		stopAsync, err := startAsync(c.async, qe, bucket, tempDir, c.data, mux, guard, log)
		if err != nil {
			return err
		}
		defer stopStep(log, "async queries", stopAsync)
		if c.pgEnabled() {
			pgln, err := net.Listen("tcp", c.pgListen)
			if err != nil {
				return fmt.Errorf("cannot listen on %s (change --pg-listen, or \"off\"): %w", c.pgListen, err)
			}
			pg := &pgwire.Server{Engine: qe, Log: log}
			if keys != nil {
				pg.Keys = keys
			}
			pg.TLS = tlsConfig
			pg.Audit = guard.Events
			pg.IdleTimeout = c.pgIdle
			if c.pgIdle == 0 {
				pg.IdleTimeout = -1 // never
			}
			go pg.Serve(pgln)
			defer stopStep(log, "postgres listener", func() { pg.Close() })
			upAttrs = append(upAttrs, "postgres", pgln.Addr().String())
		}
	}

	// Every role answers pipeline status (from the progress objects); only
	// workers run the pipelines.
	engine := processors.NewEngine(reg, bucket, brokers, log)
	engine.KafkaOpts = kafkaOpts
	api.Status = engine
	if !c.roles["worker"] {
		defer engine.Close()
	}
	if c.roles["worker"] {
		// A static group member: restarted (even after a crash) with the
		// same ID, it gets its partitions back at once.
		engine.InstanceID = c.workerID
		engine.LeaveOnStop = len(c.brokers) > 0 // serve: hand partitions to the other workers
		engine.SessionTimeout = c.session
		engine.FunctionCache = filepath.Join(c.data, "cache", "functions")
		engine.AllowExec = c.allowExec
		engine.FunctionMemory, _ = parseSize(c.fnMemory) // validated
		budget, _ := parseSize(c.budget)                 // validated
		engine.Budget = &sink.Budget{Limit: budget}
		watchPipelines(m, engine, engine.Budget)
		engine.CompactInterval = c.compact
		engine.RetireGrace = c.retireGrace
		engine.Logs = flog
		engineCtx, stopEngine := context.WithCancel(context.Background())
		engineDone := make(chan struct{})
		go func() { defer close(engineDone); engine.Run(engineCtx) }()
		defer stopStep(log, "pipelines", func() { stopEngine(); <-engineDone })
	}

	if c.roles["ingest"] {
		ingestMem, _ := parseSize(c.ingestMem) // validated
		exists := func(name string) bool { _, ok := reg.Stream(name); return ok }
		var explain func(error) string
		if len(c.brokers) == 0 { // the embedded broker: a full disk shows as UNKNOWN_SERVER_ERROR
			dir := filepath.Join(c.data, "kafka")
			explain = func(err error) string { return kafkax.DiskFull(err, dir, kafkax.MinFreeDisk) }
		}
		mux.Handle("/v1/streams/{stream}/records", m.Ingest.Wrap(exists, guard.Require("ingest", func(r *http.Request) string { return r.PathValue("stream") }, &ingest.Handler{
			Producer: producer, Log: log,
			StreamExists: exists,
			Internal:     deploy.InternalStream,
			MaxInFlight:  ingestMem,
			Counted:      m.Ingest.Counted,
			Explain:      explain,
		})))
	}
	api.Register(admin)
	mux.Handle("/v1/", guard.Require("admin", nil, admin))
	// The web console (no key for its files; its calls send one) and the
	// last records of a stream it shows.
	console.Register(mux)
	tailer := ingest.NewTailer(func(opts ...kgo.Opt) (*kgo.Client, error) {
		return kafkax.NewClient(brokers, append(slices.Clip(kafkaOpts), opts...)...)
	}, func(name string) bool { _, ok := reg.Stream(name); return ok })
	mux.Handle("GET /v1/streams/{stream}/tail", guard.Require("admin", nil, tailer))
	if keys != nil {
		keys.Register(mux, guard)
	}
	// Prometheus metrics, for an admin or a metrics key.
	mux.Handle("GET /metrics", guard.Require("metrics", nil, m.Handler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	// Go's profiles, for an admin key: GET /debug/pprof/heap, /profile, ...
	mux.Handle("GET /debug/pprof/", guard.Require("admin", nil, http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", guard.Require("admin", nil, http.HandlerFunc(pprof.Profile)))

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (change --listen): %w", c.listen, err)
	}
	// A client cannot hold a connection for long without sending: headers
	// within 10 s, the whole request within HTTPReadTimeout, idle
	// keep-alives closed after 2 min; at most --max-connections at once.
	hosts := append(auth.LocalHosts(ln.Addr().String()), c.allowedHosts...)
	srv := &http.Server{Handler: auth.Protect(hosts, mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: HTTPReadTimeout, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsConfig)
	}
	go srv.Serve(netutil.LimitListener(ln, c.maxConns))
	defer stopStep(log, "http server", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})

	upAttrs = append([]any{"http", scheme + "://" + ln.Addr().String()}, upAttrs...)
	log.Info("sluice is up", append(upAttrs, "kafka", strings.Join(brokers, ","),
		"roles", roleList(c.roles), "data", c.data, "took", time.Since(start).Round(time.Millisecond))...)
	waitForSignal(log)
	return nil
}

// HTTPReadTimeout bounds reading one request, body included (a 64 MiB
// function upload at 1 MB/s fits).
const HTTPReadTimeout = 2 * time.Minute

// waitForSignal returns at the first SIGINT/SIGTERM; a second one exits the
// process at once.
func waitForSignal(log *slog.Logger) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	s := <-sig
	log.Info("stopping: finishing in-flight batches (signal again to exit at once)", "signal", s.String())
	go func() {
		<-sig
		log.Warn("second signal: exiting now; unflushed records will be read again at the next start")
		os.Exit(1)
	}()
}

func stopStep(log *slog.Logger, what string, stop func()) {
	start := time.Now()
	stop()
	log.Info("stopped "+what, "took", time.Since(start).Round(time.Millisecond))
}

// newCatalog builds the query catalog: DuckDB reads a directory store in
// place, other stores through a bounded local copy of the files queries read.
func newCatalog(c upConfig, reg *deploy.Registry, bucket objstore.Bucket, log *slog.Logger) (*catalog.Catalog, error) {
	var mirror *query.Mirror
	if _, ok := bucket.(*objstore.Dir); !ok {
		size, _ := parseSize(c.queryCache) // validated
		mirror = &query.Mirror{Bucket: bucket, Dir: filepath.Join(c.data, "cache", "objects"), MaxBytes: size}
		if err := mirror.Open(); err != nil {
			return nil, fmt.Errorf("cannot open the query cache %q: %w", mirror.Dir, err)
		}
	}
	cat, err := catalog.New(reg, bucket, mirror, log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cat.Dir(), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create table directory %q: %w", cat.Dir(), err)
	}
	return cat, nil
}

func roleList(roles map[string]bool) string {
	var out []string
	for _, r := range []string{"ingest", "worker", "query"} {
		if roles[r] {
			out = append(out, r)
		}
	}
	return strings.Join(out, ",")
}

// openAuth opens the key store and makes sure an admin key exists
// (printing a new one once), or, with --auth off, returns a guard that
// lets every request act as admin.
func openAuth(ctx context.Context, c upConfig, bucket objstore.Bucket, log *slog.Logger) (*auth.Guard, *auth.Store, error) {
	audit := log.With("log", "audit")
	if c.auth == "off" {
		log.Warn("AUTHENTICATION IS OFF (--auth off): anyone who can reach the loopback listeners can ingest, query, deploy and run functions")
		return &auth.Guard{Audit: audit}, nil, nil
	}
	keys, err := auth.Open(ctx, bucket)
	if err != nil {
		return nil, nil, err
	}
	secret, err := keys.Bootstrap(ctx, c.data, os.Getenv("SLUICE_ADMIN_KEY"))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create the first admin key: %w", err)
	}
	if secret != "" {
		path := filepath.Join(c.data, auth.AdminKeyFile)
		fmt.Fprintf(os.Stderr, "\nCreated the first admin key (shown once; the sluice CLI reads it from %s):\n\n    %s\n\n", path, secret)
		log.Info("created the first admin key", "id", auth.IDOf(secret), "file", path)
	}
	return &auth.Guard{Store: keys, Audit: audit}, keys, nil
}

// tls loads --tls-cert/--tls-key (nil: no TLS). The files are read once,
// at start; replacing a certificate needs a restart.
func (c upConfig) tls() (*tls.Config, error) {
	if c.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("cannot load --tls-cert/--tls-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// externalKafka returns the client options for --brokers' SASL and TLS.
func (c upConfig) externalKafka() ([]kgo.Opt, error) {
	var tlsConfig *tls.Config
	if c.kafkaTLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.kafkaCA != "" {
			pem, err := os.ReadFile(c.kafkaCA)
			if err != nil {
				return nil, fmt.Errorf("cannot read --kafka-ca: %w", err)
			}
			tlsConfig.RootCAs = x509.NewCertPool()
			if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--kafka-ca %s holds no PEM certificate", c.kafkaCA)
			}
		}
	}
	opts, err := kafkax.AuthOpts(c.kafkaSASL.mechanism, c.kafkaSASL.user, c.kafkaSASL.password, tlsConfig)
	if err != nil {
		return nil, fmt.Errorf("--kafka-sasl-mechanism: %w", err)
	}
	return opts, nil
}

// auditTo returns what sends audit events to the audit stream, without
// waiting: past the producer's buffer (a flood of refused requests) events
// are dropped from the table, counted in the log; the audit log lines stay.
func auditTo(producer *kgo.Client, log *slog.Logger) func(auth.Event) {
	var dropped atomic.Int64
	return func(ev auth.Event) {
		data, err := json.Marshal(ev)
		if err != nil {
			return
		}
		producer.TryProduce(context.Background(), &kgo.Record{Topic: deploy.AuditStream, Value: data}, func(_ *kgo.Record, err error) {
			if err != nil {
				if n := dropped.Add(1); n == 1 || n%1000 == 0 {
					log.Warn("audit events not written to the audit table", "dropped", n, "err", err)
				}
			}
		})
	}
}
