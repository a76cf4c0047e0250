// Package kafkatest gives tests a real Apache Kafka broker: Kafka's own jars
// (from Maven Central) run as a single KRaft node, broker and controller in
// one JVM, listening on 127.0.0.1 only; or an existing broker named by
// SLUICE_TEST_KAFKA.
//
// Where the broker comes from, in order:
//
//  1. SLUICE_TEST_KAFKA, if set: an existing broker, as HOST:PORT (or a
//     comma-separated list of them), plaintext and without authentication.
//     Tests make their own topics there with NewTopic, deleted when the test
//     ends. Such a broker cannot be stopped by a test, so tests that need
//     Stop/Start skip.
//  2. The jars, in ${SLUICE_CACHE:-$HOME/.cache/sluice}/kafka-VERSION/libs
//     (where `scripts/kafka-server install` puts them), and java (17 or
//     newer) from $JAVA_HOME or PATH: each Start formats a fresh log
//     directory in t.TempDir() and runs a broker on free ports, and
//     t.Cleanup kills it.
//  3. Neither: the test fails, saying to run `scripts/kafka-server install`;
//     with SLUICE_SKIP_KAFKA=1 it is skipped instead.
//
// The broker is the one scripts/kafka-server runs: replication factor 1 for
// the internal topics, 4 partitions by default, no automatic topic creation,
// no consumer group rebalance delay.
//
// This package must not import other sluice packages: their tests import it.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/testproc"
)

// Version is the Apache Kafka release the broker runs; scripts/kafka-server
// and scripts/kafka/pom.xml name the same one.
const Version = "4.3.1"

// ClusterID is the fixed KRaft cluster id of the brokers this package and
// scripts/kafka-server start (a base64url UUID, generated once).
const ClusterID = "V2Mn5NJCRAmRM3W8BSngZw"

// Environment variables this package reads.
const (
	EnvBrokers = "SLUICE_TEST_KAFKA" // an existing broker: HOST:PORT[,HOST:PORT...]
	EnvSkip    = "SLUICE_SKIP_KAFKA" // "1": skip instead of failing when the jars are missing
	EnvCache   = "SLUICE_CACHE"      // cache directory; the jars are in its kafka-VERSION/libs
)

const (
	startWait  = 90 * time.Second // for a broker to answer after its JVM is started (2 shared cores)
	formatWait = 60 * time.Second // for kafka.tools.StorageTool format
	stopWait   = 10 * time.Second // for a killed broker to exit
	opTimeout  = 30 * time.Second // for topic creation and removal
	logTail    = 8000             // bytes of the broker's output shown on failure
)

// jvmFlags keep the JVM small and quick to start: a test broker holds little
// data, and C1 alone compiles faster than it loses in throughput here.
var jvmFlags = []string{
	"-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
	"-XX:-UsePerfData", "-Djava.awt.headless=true",
}

// log4j2Config prints warnings and errors, and the line that says the
// server started, to the broker's output.
const log4j2Config = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
`

// Broker is a Kafka broker for one test.
type Broker struct {
	// Addr is the bootstrap address, HOST:PORT (with SLUICE_TEST_KAFKA, as
	// given there: possibly a comma-separated list; see Seeds).
	Addr string

	t        testing.TB
	external bool

	// local broker only
	java           string
	libs           string
	dir            string // t.TempDir(): server.properties, log4j2.properties, broker.log, data/
	controllerAddr string
	logs           string // file with the broker's output
	proc           *testproc.Proc
}

// Start starts (or, with SLUICE_TEST_KAFKA, connects to) a Kafka broker for
// the test and waits until it answers metadata requests. A broker it starts
// runs on a free loopback port with its log directory in t.TempDir(), and is
// killed in t.Cleanup, also when the test fails; its output is then logged.
func Start(t testing.TB) *Broker {
	t.Helper()
	if raw := os.Getenv(EnvBrokers); raw != "" {
		b := &Broker{Addr: raw, t: t, external: true}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := b.ping(ctx, false); err != nil {
			t.Fatalf("%s=%s: the broker does not answer: %v", EnvBrokers, raw, err)
		}
		return b
	}
	libs, err := FindLibs()
	if err == nil {
		var java string
		if java, err = findJava(); err == nil {
			return startLocal(t, java, libs)
		}
	}
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("no Kafka broker for this test (%s=1): %v", EnvSkip, err)
	}
	t.Fatalf("no Kafka broker for this test: %v\nset %s to an existing broker's HOST:PORT, or set %s=1 to skip Kafka tests",
		err, EnvBrokers, EnvSkip)
	return nil
}

func startLocal(t testing.TB, java, libs string) *Broker {
	t.Helper()
	dir := t.TempDir() // before Cleanup(stop): cleanups run last-in first-out, so the broker dies before its directory is removed
	b := &Broker{
		t:    t,
		java: java,
		libs: libs,
		dir:  dir,
		logs: filepath.Join(dir, "broker.log"),
	}
	b.proc = &testproc.Proc{Name: "the Kafka broker", Path: java, Dir: dir, Logs: b.logs}
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Log(testproc.KeepLogFile(t.Name(), "Kafka broker", b.logs))
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "log4j2.properties"), []byte(log4j2Config), 0o644); err != nil {
		t.Fatal(err)
	}
	// A free port can be taken between our probe and the broker's listen;
	// try a few. Each try formats the log directory anew.
	for try := 1; ; try++ {
		ports, err := testproc.FreePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		b.Addr = "127.0.0.1:" + strconv.Itoa(ports[0])
		b.controllerAddr = "127.0.0.1:" + strconv.Itoa(ports[1])
		if err := b.writeConfig(); err != nil {
			t.Fatal(err)
		}
		if err := b.format(); err != nil {
			t.Fatalf("cannot format the Kafka log directory: %v\n%s", err, testproc.Tail(b.logs, logTail))
		}
		err = b.start()
		if err == nil {
			return b
		}
		if try == 3 || !strings.Contains(testproc.Tail(b.logs, logTail), "Address already in use") {
			t.Fatalf("cannot start the Kafka broker: %v\n%s", err, testproc.Tail(b.logs, logTail))
		}
		os.RemoveAll(filepath.Join(dir, "data"))
	}
}

// External reports whether the broker is an existing one (SLUICE_TEST_KAFKA),
// which tests cannot stop.
func (b *Broker) External() bool { return b.external }

// Seeds is Addr split at commas, for kgo.SeedBrokers.
func (b *Broker) Seeds() []string {
	var seeds []string
	for _, s := range strings.Split(b.Addr, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// Dir is the directory of a local broker (empty for an external one): its
// server.properties, broker.log and data/ (the log directory).
func (b *Broker) Dir() string { return b.dir }

// CommandLine is the command that runs the local broker (empty for an
// external one), for messages.
func (b *Broker) CommandLine() string {
	if b.external {
		return ""
	}
	return strings.Join(append([]string{b.java}, b.javaArgs("kafka.Kafka", b.configPath())...), " ")
}

// Client returns a franz-go client seeded with the broker, with opts added,
// closed when the test ends.
func (b *Broker) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Seeds()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client for the broker, closed when the test ends.
func (b *Broker) Admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(b.Client(t))
}

// NewTopic creates a fresh topic with the given number of partitions
// (replication factor 1) and returns its name. On an external broker it is
// deleted when the test ends.
func (b *Broker) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	var r [6]byte
	rand.Read(r[:])
	name := "sluice-test-" + hex.EncodeToString(r[:])
	adm := b.Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, name); err != nil {
		t.Fatalf("cannot create test topic %s at %s: %v", name, b.Addr, err)
	}
	if b.external {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			if _, err := adm.DeleteTopic(ctx, name); err != nil {
				t.Logf("cannot delete test topic %s: %v", name, err)
			}
		})
	}
	return name
}

// Stop kills the broker (SIGKILL to its process group, as a crash would)
// and waits for it to exit; its log directory stays, for Start. Stopping a
// stopped broker does nothing. On an external broker the test is skipped.
func (b *Broker) Stop() {
	b.t.Helper()
	if b.external {
		b.t.Skipf("the %s broker cannot be stopped by a test", EnvBrokers)
	}
	b.stop()
}

// Start starts the stopped broker again, on the same ports and log
// directory, and waits until it answers and every partition has a leader.
func (b *Broker) Start() {
	b.t.Helper()
	if b.external {
		b.t.Skipf("the %s broker cannot be restarted by a test", EnvBrokers)
	}
	if err := b.start(); err != nil {
		b.t.Fatalf("cannot restart the Kafka broker: %v\n%s", err, testproc.Tail(b.logs, logTail))
	}
}

func (b *Broker) configPath() string { return filepath.Join(b.dir, "server.properties") }

func (b *Broker) javaArgs(main string, args ...string) []string {
	a := append([]string{}, jvmFlags...)
	a = append(a, "-Dlog4j2.configurationFile="+filepath.Join(b.dir, "log4j2.properties"),
		"-cp", filepath.Join(b.libs, "*"), main)
	return append(a, args...)
}

// writeConfig writes server.properties; scripts/kafka-server writes the same.
func (b *Broker) writeConfig() error {
	props := []string{
		"process.roles=broker,controller",
		"node.id=1",
		"controller.quorum.voters=1@" + b.controllerAddr,
		"controller.listener.names=CONTROLLER",
		"listeners=PLAINTEXT://" + b.Addr + ",CONTROLLER://" + b.controllerAddr,
		"advertised.listeners=PLAINTEXT://" + b.Addr,
		"inter.broker.listener.name=PLAINTEXT",
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"log.dirs=" + filepath.Join(b.dir, "data"),
		"num.partitions=4",
		"auto.create.topics.enable=false",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=4",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"transaction.state.log.num.partitions=4",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"share.coordinator.state.topic.num.partitions=4",
		"group.initial.rebalance.delay.ms=0",
		// After a SIGKILL the controller takes the restarted broker's new
		// registration only once the old one's session has expired: 3s
		// here instead of 9s, with heartbeats often enough to keep it.
		"broker.session.timeout.ms=3000",
		"broker.heartbeat.interval.ms=500",
		"num.network.threads=2",
		"num.io.threads=4",
		"num.recovery.threads.per.data.dir=1",
		"log.cleaner.dedupe.buffer.size=16777216",
	}
	return os.WriteFile(b.configPath(), []byte(strings.Join(props, "\n")+"\n"), 0o644)
}

// format runs kafka.tools.StorageTool format on the log directory, as
// `kafka-storage.sh format` does.
func (b *Broker) format() error {
	logf, err := os.OpenFile(b.logs, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := b.javaArgs("kafka.tools.StorageTool", "format", "--cluster-id", ClusterID, "--config", b.configPath())
	fmt.Fprintf(logf, "== %s %s %s\n", time.Now().Format(time.RFC3339Nano), b.java, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), formatWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.java, args...)
	cmd.Dir = b.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = testproc.SysProcAttr()
	cmd.Cancel = func() error { return testproc.KillGroup(cmd.Process) }
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return nil
}

// start runs the broker and waits until it answers and every partition
// has a leader.
func (b *Broker) start() error {
	b.proc.Args = b.javaArgs("kafka.Kafka", b.configPath())
	return b.proc.Start(startWait, func(ctx context.Context) error { return b.ping(ctx, true) })
}

// ping waits until the broker answers a metadata request listing at least
// one broker and, with allLed, every partition of every topic has a leader
// (after a restart, partitions come back online a little after the broker
// answers).
func (b *Broker) ping(ctx context.Context, allLed bool) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Seeds()...),
		kgo.DialTimeout(time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		err = ready(ctx, adm, allLed)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ready(ctx context.Context, adm *kadm.Client, allLed bool) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := adm.Metadata(ctx)
	if err != nil {
		return err
	}
	if len(m.Brokers) == 0 {
		return errors.New("metadata lists no broker")
	}
	if !allLed {
		return nil
	}
	for _, td := range m.Topics {
		if td.Err != nil {
			return fmt.Errorf("topic %s: %w", td.Topic, td.Err)
		}
		for _, pd := range td.Partitions {
			if pd.Err != nil || pd.Leader < 0 {
				return fmt.Errorf("topic %s partition %d: no leader (%v)", td.Topic, pd.Partition, pd.Err)
			}
		}
	}
	return nil
}

func (b *Broker) stop() {
	if err := b.proc.Kill(stopWait); err != nil {
		b.t.Error(err)
	}
}

// FindLibs returns the directory of the broker's jars,
// ${SLUICE_CACHE:-$HOME/.cache/sluice}/kafka-VERSION/libs, or an error that
// says to run scripts/kafka-server install.
func FindLibs() (string, error) {
	dir := LibsDir()
	if dir == "" {
		return "", errors.New("no home directory for the Kafka jars: set " + EnvCache)
	}
	jar := filepath.Join(dir, "kafka_2.13-"+Version+".jar")
	if _, err := os.Stat(jar); err != nil {
		return "", fmt.Errorf("the Kafka %s jars are not in %s: run `scripts/kafka-server install` (seconds, once; needs Maven)", Version, dir)
	}
	return dir, nil
}

// LibsDir is the directory scripts/kafka-server installs the jars into.
func LibsDir() string {
	dir := os.Getenv(EnvCache)
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".cache", "sluice")
	}
	return filepath.Join(dir, "kafka-"+Version, "libs")
}

// findJava returns $JAVA_HOME/bin/java, or else java from PATH.
func findJava() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", errors.New("no java (17 or newer) on PATH nor in $JAVA_HOME; the Kafka broker needs one")
	}
	return p, nil
}
