package pgwire

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/testcert"
	"github.com/sluice-dev/sluice/query"
)

// engineWrapper is an Engine startServer hands the real engine to.
type engineWrapper interface {
	Engine
	wrap(Engine)
}

// principalRecorder runs queries on the real engine and records the
// principal each one carried.
type principalRecorder struct {
	Engine
	mu   sync.Mutex
	seen []*auth.Principal
}

func (r *principalRecorder) wrap(e Engine) { r.Engine = e }

func (r *principalRecorder) Query(ctx context.Context, sql string) (*query.Result, error) {
	r.mu.Lock()
	r.seen = append(r.seen, auth.FromContext(ctx))
	r.mu.Unlock()
	return r.Engine.Query(ctx, sql)
}

func (r *principalRecorder) principals() []*auth.Principal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*auth.Principal(nil), r.seen...)
}

// keyStore returns a store of API keys with one key per scope list, and
// their secrets.
func keyStore(t *testing.T, scopes ...[]string) (*auth.Store, []string) {
	t.Helper()
	ctx := context.Background()
	store, err := auth.Open(ctx, &objstore.Dir{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for _, sc := range scopes {
		secret := auth.NewSecret()
		if _, err := store.Create(ctx, secret, "test", sc, nil); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secret)
	}
	return store, secrets
}

// withLogin returns base (startServer's URL) with user, password and
// sslmode set.
func withLogin(t *testing.T, base, user, password, sslmode string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	q := u.Query()
	q.Set("sslmode", sslmode)
	u.RawQuery = q.Encode()
	return u.String()
}

func tryConnect(connURL string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, connURL)
}

func selectOne(t *testing.T, c *pgx.Conn) {
	t.Helper()
	for name, mode := range modes {
		var n int
		if err := c.QueryRow(context.Background(), "select 1", mode).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: select 1 = %d, %v", name, n, err)
		}
	}
}

func TestSCRAMLogin(t *testing.T) {
	store, secrets := keyStore(t, []string{"query:*"})
	rec := &principalRecorder{}
	base := startServer(t, query.Config{}, &Server{Keys: store, Engine: rec})
	id := auth.IDOf(secrets[0])
	c, err := tryConnect(withLogin(t, base, id, secrets[0], "disable"))
	if err != nil {
		t.Fatalf("connect with the right key: %v", err)
	}
	defer c.Close(context.Background())
	selectOne(t, c)
	if got := c.PgConn().ParameterStatus("session_authorization"); got != id {
		t.Errorf("session_authorization = %q, want %q", got, id)
	}
	seen := rec.principals()
	if len(seen) == 0 {
		t.Fatal("the engine saw no query")
	}
	for i, p := range seen {
		if p == nil || p.KeyID != id || !p.Can("query", "logs") || p.Can("admin", "") {
			t.Fatalf("query %d ran as %+v, want key %s", i, p, id)
		}
	}
}

func TestNoKeysRunsAsAdmin(t *testing.T) {
	rec := &principalRecorder{}
	base := startServer(t, query.Config{}, &Server{Engine: rec})
	c := connect(t, base, pgx.QueryExecModeCacheStatement)
	selectOne(t, c)
	seen := rec.principals()
	if len(seen) == 0 {
		t.Fatal("the engine saw no query")
	}
	for i, p := range seen {
		if p != auth.Admin {
			t.Fatalf("query %d ran as %+v, want auth.Admin", i, p)
		}
	}
}

func TestSCRAMRefused(t *testing.T) {
	ctx := context.Background()
	store, secrets := keyStore(t, []string{"query:*"}, []string{"query:logs"}, []string{"ingest:x"})
	good, revoked, ingestOnly := secrets[0], secrets[1], secrets[2]
	if err := store.Revoke(ctx, auth.IDOf(revoked)); err != nil {
		t.Fatal(err)
	}
	base := startServer(t, query.Config{}, &Server{Keys: store})
	for _, tc := range []struct {
		what, user, password, code, msg string
	}{
		{"wrong password", auth.IDOf(good), auth.NewSecret(), "28P01", ""},
		{"no password", auth.IDOf(good), "", "28P01", ""},
		{"the key as user name", good, good, "28P01", ""},
		{"unknown user", auth.IDOf(auth.NewSecret()), good, "28P01", ""},
		{"revoked key", auth.IDOf(revoked), revoked, "28P01", ""},
		{"no query scope", auth.IDOf(ingestOnly), ingestOnly, "28000", "may not query"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			c, err := tryConnect(withLogin(t, base, tc.user, tc.password, "disable"))
			if err == nil {
				c.Close(ctx)
				t.Fatal("connected")
			}
			msg := tc.msg
			if msg == "" {
				msg = `password authentication failed for user "` + tc.user + `"`
			}
			var pe *pgconn.PgError
			if pgCode(err) != tc.code || !errors.As(err, &pe) || !strings.Contains(pe.Message, msg) {
				t.Fatalf("got %v (code %q), want code %s with %q", err, pgCode(err), tc.code, msg)
			}
			if tc.code == "28P01" && pe.Message != msg {
				t.Fatalf("message %q, want exactly %q", pe.Message, msg)
			}
		})
	}
	// The refusals took no slot: the right key still logs in.
	c, err := tryConnect(withLogin(t, base, auth.IDOf(good), good, "disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	selectOne(t, c)
}

// scramStart opens a raw connection as user and reads AuthenticationSASL.
func scramStart(t *testing.T, base, user string) *pgproto3.Frontend {
	t.Helper()
	c := dialRaw(t, base, 10*time.Second)
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": user, "database": "d"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	sasl, ok := msg.(*pgproto3.AuthenticationSASL)
	if !ok || strings.Join(sasl.AuthMechanisms, " ") != "SCRAM-SHA-256" {
		t.Fatalf("after startup: %#v, want AuthenticationSASL offering SCRAM-SHA-256 only", msg)
	}
	return fe
}

func sendSASL(t *testing.T, fe *pgproto3.Frontend, msg pgproto3.FrontendMessage) pgproto3.BackendMessage {
	t.Helper()
	fe.Send(msg)
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestSCRAMProtocol(t *testing.T) {
	store, secrets := keyStore(t, []string{"query:*"})
	base := startServer(t, query.Config{}, &Server{Keys: store})
	id := auth.IDOf(secrets[0])

	// Channel binding is refused, and says so.
	fe := scramStart(t, base, id)
	got := sendSASL(t, fe, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("p=tls-server-end-point,,n=,r=abcdefgh")})
	if e, ok := got.(*pgproto3.ErrorResponse); !ok || e.Code != "28P01" || !strings.Contains(e.Detail, "channel binding") {
		t.Fatalf("channel binding: %#v", got)
	}

	// An unknown user gets a salt like a key's, the same at every try, and
	// is refused only after its proof.
	unknown := auth.IDOf(auth.NewSecret())
	var salts []string
	for range 2 {
		fe := scramStart(t, base, unknown)
		got := sendSASL(t, fe, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=clientnonce")})
		cont, ok := got.(*pgproto3.AuthenticationSASLContinue)
		if !ok {
			t.Fatalf("unknown user: %#v, want AuthenticationSASLContinue", got)
		}
		attrs := strings.Split(string(cont.Data), ",")
		if len(attrs) != 3 || !strings.HasPrefix(attrs[0], "r=clientnonce") || len(attrs[0]) < len("r=clientnonce")+16 ||
			!strings.HasPrefix(attrs[1], "s=") || attrs[2] != "i=4096" {
			t.Fatalf("server-first-message %q", cont.Data)
		}
		salts = append(salts, attrs[1])
		final := "c=biws,r=" + attrs[0][2:] + ",p=" + strings.Repeat("A", 43) + "="
		got = sendSASL(t, fe, &pgproto3.SASLResponse{Data: []byte(final)})
		if e, ok := got.(*pgproto3.ErrorResponse); !ok || e.Code != "28P01" || e.Message != `password authentication failed for user "`+unknown+`"` {
			t.Fatalf("unknown user's proof: %#v", got)
		}
	}
	if salts[0] != salts[1] {
		t.Fatalf("unknown user's salt changed: %s, %s", salts[0], salts[1])
	}

	// A nonce that is not the server's is refused.
	fe = scramStart(t, base, id)
	sendSASL(t, fe, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=clientnonce")})
	got = sendSASL(t, fe, &pgproto3.SASLResponse{Data: []byte("c=biws,r=clientnonce,p=" + strings.Repeat("A", 43) + "=")})
	if e, ok := got.(*pgproto3.ErrorResponse); !ok || e.Code != "28P01" {
		t.Fatalf("wrong nonce: %#v", got)
	}

	// Another mechanism is refused.
	fe = scramStart(t, base, id)
	got = sendSASL(t, fe, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256-PLUS", Data: []byte("p=tls-server-end-point,,n=,r=abc")})
	if e, ok := got.(*pgproto3.ErrorResponse); !ok || e.Code != "28P01" {
		t.Fatalf("SCRAM-SHA-256-PLUS: %#v", got)
	}
}

func TestParseClientFirst(t *testing.T) {
	for _, tc := range []struct {
		msg, gs2, bare, nonce, err string
	}{
		{msg: "n,,n=,r=abc", gs2: "n,,", bare: "n=,r=abc", nonce: "abc"},
		{msg: "y,,n=someone,r=x+/=y,ext=1", gs2: "y,,", bare: "n=someone,r=x+/=y,ext=1", nonce: "x+/=y"},
		{msg: "p=tls-server-end-point,,n=,r=abc", err: "channel binding"},
		{msg: "n,a=admin,n=,r=abc", err: "authorization identity"},
		{msg: "n,,m=ext,n=,r=abc", err: "extension"},
		{msg: "n,,n=,r=", err: "nonce"},
		{msg: "n,,n=,r=a\x01b", err: "nonce"},
		{msg: "n,,r=abc", err: "want n=USER,r=NONCE"},
		{msg: "x,,n=,r=abc", err: "gs2 header"},
		{msg: "n,n=,r=abc", err: "gs2 header"},
		{msg: "", err: "gs2 header"},
	} {
		f, err := parseClientFirst(tc.msg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.msg, err, tc.err)
			}
			continue
		}
		if err != nil || f.gs2Header != tc.gs2 || f.bare != tc.bare || f.nonce != tc.nonce {
			t.Errorf("%q: %+v, %v", tc.msg, f, err)
		}
	}
}

func TestParseClientFinal(t *testing.T) {
	proof := "AAECAw=="
	for _, tc := range []struct {
		msg, gs2, err string
	}{
		{msg: "c=biws,r=nonce,p=" + proof, gs2: "n,,"},
		{msg: "c=eSws,r=nonce,ext=x,p=" + proof, gs2: "y,,"},
		{msg: "c=biws,r=nonce,p=" + proof, gs2: "y,,", err: "channel binding"},
		{msg: "c=biws,r=other,p=" + proof, gs2: "n,,", err: "nonce"},
		{msg: "c=biws,r=nonce", gs2: "n,,", err: "no proof"},
		{msg: "c=biws,r=nonce,p=!!", gs2: "n,,", err: "malformed proof"},
	} {
		without, p, err := parseClientFinal(tc.msg, tc.gs2, "nonce")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.msg, err, tc.err)
			}
			continue
		}
		if err != nil || without != strings.TrimSuffix(tc.msg, ",p="+proof) || string(p) != "\x00\x01\x02\x03" {
			t.Errorf("%q: %q %x %v", tc.msg, without, p, err)
		}
	}
}

// selfSigned returns a TLS configuration with a fresh self-signed
// certificate for 127.0.0.1 and localhost.
func selfSigned(t *testing.T) *tls.Config { return testcert.New(t).ServerConfig() }

func TestTLS(t *testing.T) {
	store, secrets := keyStore(t, []string{"query:*"})
	id := auth.IDOf(secrets[0])
	base := startServer(t, query.Config{}, &Server{Keys: store, TLS: selfSigned(t)})

	c, err := tryConnect(withLogin(t, base, id, secrets[0], "require"))
	if err != nil {
		t.Fatalf("sslmode=require: %v", err)
	}
	defer c.Close(context.Background())
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("sslmode=require gave a %T, want *tls.Conn", c.PgConn().Conn())
	}
	selectOne(t, c)

	// Without RequireTLS a client may still go without.
	plain, err := tryConnect(withLogin(t, base, id, secrets[0], "disable"))
	if err != nil {
		t.Fatalf("sslmode=disable: %v", err)
	}
	defer plain.Close(context.Background())
	if _, ok := plain.PgConn().Conn().(*tls.Conn); ok {
		t.Fatal("sslmode=disable gave a TLS connection")
	}
	selectOne(t, plain)

	// A CancelRequest sent over TLS (pgx encrypts it as the session is)
	// reaches its session.
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "select sum(i) from range(1000000000000) t(i)")
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err := <-errc:
			if pgCode(err) != "57014" || !strings.Contains(err.Error(), "user request") {
				t.Fatalf("canceled query: %v", err)
			}
			done = true
		case <-tick.C:
			if time.Now().After(deadline) {
				t.Fatal("query not canceled within 10s")
			}
			if err := c.PgConn().CancelRequest(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	selectOne(t, c)
}

func TestRequireTLS(t *testing.T) {
	base := startServer(t, query.Config{}, &Server{TLS: selfSigned(t), RequireTLS: true})
	_, err := tryConnect(withLogin(t, base, "analyst", "", "disable"))
	if pgCode(err) != "28000" || !strings.Contains(err.Error(), "sslmode=require") {
		t.Fatalf("sslmode=disable: %v (code %q), want 28000 telling to use sslmode=require", err, pgCode(err))
	}
	c, err := tryConnect(withLogin(t, base, "analyst", "", "require"))
	if err != nil {
		t.Fatalf("sslmode=require: %v", err)
	}
	defer c.Close(context.Background())
	if _, ok := c.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("got a %T, want *tls.Conn", c.PgConn().Conn())
	}
	selectOne(t, c)
}

func TestNoTLSAnswersN(t *testing.T) {
	base := startServer(t, query.Config{}, nil)
	_, err := tryConnect(withLogin(t, base, "analyst", "", "require"))
	if err == nil || !strings.Contains(err.Error(), "server refused TLS connection") {
		t.Fatalf("sslmode=require without TLS: %v", err)
	}
}

func TestRequireTLSNeedsTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{RequireTLS: true}
	if err := srv.Serve(ln); err == nil || !strings.Contains(err.Error(), "RequireTLS") {
		t.Fatalf("Serve: %v", err)
	}
}

func TestPsql(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	store, secrets := keyStore(t, []string{"query:logs"})
	id := auth.IDOf(secrets[0])
	base := startServer(t, query.Config{}, &Server{Keys: store, TLS: selfSigned(t), RequireTLS: true})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	run := func(password, sslmode string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select count(*) from logs",
			"host="+host+" port="+port+" user="+id+" dbname=sluice sslmode="+sslmode)
		cmd.Env = append(cleanPGEnv(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := run(secrets[0], "require"); err != nil || out != "100" {
		t.Fatalf("psql sslmode=require: %q, %v", out, err)
	}
	if out, err := run(auth.NewSecret(), "require"); err == nil || !strings.Contains(out, `password authentication failed for user "`+id+`"`) {
		t.Fatalf("psql with a wrong key: %q, %v", out, err)
	}
	if out, err := run(secrets[0], "disable"); err == nil || !strings.Contains(out, "sslmode=require") {
		t.Fatalf("psql sslmode=disable: %q, %v", out, err)
	}
}

// cleanPGEnv is the environment without libpq's PG* variables, so that the
// caller's settings do not change the test's connections.
func cleanPGEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}
