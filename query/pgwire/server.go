// Package pgwire serves sluice's SQL query engine over the PostgreSQL wire
// protocol (version 3.0), so psql, pgx, JDBC, psycopg and BI tools can run
// queries. Messages are framed by github.com/jackc/pgx/v5/pgproto3; this
// package maps them onto query.Engine.Query.
//
// What it does, and the choices made:
//
//   - Authentication, with Server.Keys set: SASL SCRAM-SHA-256 as Postgres
//     does it (no channel binding: SCRAM-SHA-256-PLUS is not offered). The
//     user name is the ID of an API key and the password is the key itself
//     (see package auth). Every failure, an unknown, revoked or expired key
//     included, answers 28P01 "password authentication failed for user ..."
//     after a full exchange (an unknown key gets a made-up salt), so the
//     answers do not tell which keys exist; a key with no query scope is
//     refused with 28000. Every query runs with the key's principal in its
//     context (auth.FromContext). With Keys nil there is no authentication:
//     any user name is accepted, AuthenticationOk follows the startup
//     message, and queries run as auth.Admin.
//   - TLS, with Server.TLS set: SSLRequest is answered 'S' and the session
//     runs over TLS; otherwise 'N'. With RequireTLS a startup message on a
//     connection without TLS is refused (28000). GSSENCRequest is always
//     answered 'N'. The startup phase (TLS handshake and authentication
//     included) must end within 10 seconds.
//   - Any database name is accepted: there is one catalog.
//   - Simple query protocol: one statement per Query message (the engine
//     runs one); an empty one answers EmptyQueryResponse. Results are sent
//     in text format with Postgres's text representations (see textValue);
//     a result past the engine's row or byte limit is an ERROR (54000)
//     sent before any row, since drivers drop notices.
//   - The Postgres face (face.go): pg_catalog and information_schema as BI
//     tools and drivers read them, SHOW, version(), current_user, and
//     Postgres's column names.
//   - COPY (query) TO STDOUT and cursors (DECLARE/FETCH/CLOSE) stream a
//     result past the row limit through Engine.Stream (copy.go, cursor.go).
//   - Extended query protocol (Parse/Bind/Describe/Execute/Close/Sync/Flush,
//     named and unnamed statements and portals). Parameters $1..$n are
//     substituted into the SQL text as quoted literals (cast to the declared
//     type, if any) after lexing the text as DuckDB does, so a value is
//     always one operand; the engine then refuses everything but SELECT and
//     EXPLAIN as it does for every query. Describe of a statement runs it as
//     SELECT * FROM (...) LIMIT 0 (parameters NULL) to learn its columns;
//     Describe of a portal runs the query and keeps the result for the
//     Execute that follows. Result columns may be requested in binary
//     format: values are converted from their text form by pgx's codecs.
//   - BEGIN/COMMIT/ROLLBACK (and START TRANSACTION, END, ABORT) are
//     accepted and tracked in ReadyForQuery's status, since drivers such as
//     psycopg send them, and so are SAVEPOINT, RELEASE and ROLLBACK TO;
//     queries are read-only, so they change nothing else (but a block's end
//     closes its cursors).
//     SET of a few client settings drivers send (extra_float_digits,
//     application_name, ...) is accepted and ignored.
//   - CancelRequest interrupts the running query of the backend it names
//     (its process ID and secret key are given only to an authenticated
//     session).
//   - At most MaxConns sessions at once (authenticated ones: a client is
//     counted once it has logged in); more are refused with SQLSTATE
//     53300. Each query runs with the engine's timeout and memory limit.
package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/query"
)

func (s *Server) audit(ev auth.Event) {
	if s.Audit != nil {
		ev.Time = time.Now().UTC()
		s.Audit(ev)
	}
}

// DefaultIdleTimeout is the default Server.IdleTimeout.
const DefaultIdleTimeout = 10 * time.Minute

// DefaultMaxConns is the default limit on concurrent sessions.
const DefaultMaxConns = 64

// ServerVersion is the server_version reported to clients. Clients use it
// to pick features: 14, whose catalog queries (psql's \d among them) the
// face answers; newer psql asks 15's for publication column lists.
const ServerVersion = "14.0 (sluice)"

const (
	startupTimeout = 10 * time.Second
	writeTimeout   = 2 * time.Minute
	maxMessageLen  = 16 << 20
)

// Engine runs one SQL statement; *query.Engine is one.
type Engine interface {
	Query(ctx context.Context, sql string) (*query.Result, error)
	// Stream runs a query without the row limit, handing its result page
	// by page (COPY TO STDOUT and cursors).
	Stream(ctx context.Context, sql string, fn func(page *query.Result) error) (*query.Result, error)
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("pgwire: server closed")

// Server serves the Postgres wire protocol. Set the fields, then call
// Serve; Close stops it.
type Server struct {
	Engine Engine
	// MaxConns bounds concurrent sessions; 0 means DefaultMaxConns.
	MaxConns int
	// Keys authenticates sessions: the user name is a key's ID, the
	// password the key (SCRAM-SHA-256). nil: no authentication, every
	// session runs as auth.Admin.
	Keys KeyStore
	// TLS is the configuration of the TLS sessions clients ask for with
	// SSLRequest (sslmode=require and up). nil: no TLS.
	TLS *tls.Config
	// RequireTLS refuses a session that did not set up TLS. It needs TLS.
	RequireTLS bool
	// IdleTimeout ends a session that sends nothing for that long between
	// queries (FATAL 57P05, as Postgres's idle_session_timeout does), so
	// idle clients cannot hold every session slot; 0: DefaultIdleTimeout,
	// negative: never.
	IdleTimeout time.Duration
	// Log receives connection problems at debug level, and refused
	// authentications at warning level; nil: slog.Default().
	Log *slog.Logger
	// Audit, when set, gets each refused login (the audit table).
	Audit func(auth.Event)

	mockOnce   sync.Once
	mockSecret []byte // makes the salts of unknown users (mockCredential)

	mu       sync.Mutex
	closed   bool
	lns      map[net.Listener]struct{}
	conns    map[net.Conn]struct{}
	sessions map[uint32]*session // by process ID, for CancelRequest
	nextPID  uint32
	wg       sync.WaitGroup
}

// Serve accepts connections on ln until Close; it returns ErrServerClosed
// then, or the error that stopped accepting. RequireTLS without TLS is an
// error.
func (s *Server) Serve(ln net.Listener) error {
	if s.RequireTLS && s.TLS == nil {
		ln.Close()
		return errors.New("pgwire: RequireTLS is set but TLS is not")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.lns == nil {
		s.lns = map[net.Listener]struct{}{}
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.handle(c)
		}()
	}
}

// Close stops accepting, interrupts running queries, closes every
// connection and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for _, sess := range s.sessions {
		sess.interrupt(true)
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	c.Close()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// handle runs one connection: the startup phase (TLS, authentication),
// then a session.
func (s *Server) handle(c net.Conn) {
	deadline := time.Now().Add(startupTimeout)
	c.SetDeadline(deadline) // covers the TLS handshake and authentication too
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	conn, be, startup := s.startup(c)
	if startup == nil {
		return
	}
	_, secure := conn.(*tls.Conn)
	refuse := func(pe *pgError) {
		be.Send(pe.response())
		be.Flush()
	}
	user := startup.Parameters["user"]
	if s.RequireTLS && !secure {
		s.log().Warn("pgwire: refused a connection without TLS", "remote", c.RemoteAddr().String(), "user", logUser(user))
		s.audit(auth.Event{Listener: "postgres", Action: "login", Object: logUser(user), Remote: c.RemoteAddr().String(), Reason: "no TLS"})
		refuse(&pgError{severity: "FATAL", code: codeInvalidAuthorization,
			msg:  "this sluice server accepts only TLS connections: connect with sslmode=require (or verify-ca, verify-full)",
			hint: "Set sslmode=require in the connection string, or PGSSLMODE=require."})
		return
	}
	principal := auth.Admin
	if s.Keys != nil {
		p, fail := s.authenticate(ctx, be, user)
		if fail != nil {
			s.log().Warn("pgwire: authentication failed", "remote", c.RemoteAddr().String(), "user", logUser(user), "tls", secure, "err", fail.reason)
			s.audit(auth.Event{Listener: "postgres", Action: "login", Object: logUser(user), Remote: c.RemoteAddr().String(), Reason: fail.reason.Error()})
			refuse(fail.resp)
			return
		}
		principal = p
	}
	sess, ok := s.register(conn, be, startup, principal)
	if !ok {
		refuse(&pgError{severity: "FATAL", code: codeTooManyConns,
			msg: fmt.Sprintf("sorry, too many clients already (sluice accepts %d)", s.maxConns())})
		return
	}
	defer s.unregister(sess)
	c.SetDeadline(time.Time{})
	sess.run()
}

// startup reads the messages that come before a session's StartupMessage:
// SSLRequest (answered 'S' and followed by a TLS handshake when TLS is
// set, 'N' otherwise), GSSENCRequest ('N') and CancelRequest (carried out;
// the connection ends). It returns the connection to go on with (a
// *tls.Conn after a handshake), its backend and the startup message, or a
// nil message when the connection is done.
func (s *Server) startup(c net.Conn) (net.Conn, *pgproto3.Backend, *pgproto3.StartupMessage) {
	conn := c
	newBackend := func(conn net.Conn) *pgproto3.Backend {
		be := pgproto3.NewBackend(conn, conn)
		be.SetMaxBodyLen(maxMessageLen)
		return be
	}
	be := newBackend(conn)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			s.log().Debug("pgwire: bad startup", "remote", c.RemoteAddr().String(), "err", err)
			return nil, nil, nil
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if _, secure := conn.(*tls.Conn); secure {
				s.log().Debug("pgwire: SSLRequest over TLS", "remote", c.RemoteAddr().String())
				be.Send((&pgError{severity: "FATAL", code: codeProtocol, msg: "SSLRequest on a connection that already uses TLS"}).response())
				be.Flush()
				return nil, nil, nil
			}
			if s.TLS == nil {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return nil, nil, nil
				}
				continue
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return nil, nil, nil
			}
			tc := tls.Server(c, s.TLS)
			if err := tc.Handshake(); err != nil {
				s.log().Debug("pgwire: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
				return nil, nil, nil
			}
			// A new backend: whatever the old one read past the SSLRequest
			// was sent in the clear and is not part of the TLS session.
			conn, be = tc, newBackend(tc)
		case *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, nil, nil
			}
		case *pgproto3.CancelRequest:
			s.cancel(m.ProcessID, m.SecretKey)
			return nil, nil, nil // Postgres closes a cancel connection without an answer
		case *pgproto3.StartupMessage:
			return conn, be, m
		}
	}
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

// register creates a session of principal with a fresh process ID and
// secret key, or returns false when MaxConns sessions exist.
func (s *Server) register(c net.Conn, be *pgproto3.Backend, startup *pgproto3.StartupMessage, principal *auth.Principal) (*session, bool) {
	var secret [4]byte
	rand.Read(secret[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) >= s.maxConns() || s.closed {
		return nil, false
	}
	if s.sessions == nil {
		s.sessions = map[uint32]*session{}
	}
	for {
		s.nextPID++
		if s.nextPID&0x7fffffff == 0 {
			s.nextPID = 1
		}
		if _, taken := s.sessions[s.nextPID]; !taken {
			break
		}
	}
	params := make(map[string]string, len(startup.Parameters))
	for k, v := range startup.Parameters {
		params[k] = v
	}
	sess := &session{
		srv: s, conn: c, be: be, pid: s.nextPID, secret: secret[:], principal: principal,
		protocol: startup.ProtocolVersion, params: params,
		types: pgtype.NewMap(), tx: 'I',
		stmts: map[string]*statement{}, portals: map[string]*portal{}, cursors: map[string]*cursor{},
	}
	s.sessions[sess.pid] = sess
	return sess, true
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess.pid)
}

// cancel interrupts the running query of the session pid, if the secret
// key matches.
func (s *Server) cancel(pid uint32, key []byte) {
	s.mu.Lock()
	sess := s.sessions[pid]
	s.mu.Unlock()
	if sess == nil || subtle.ConstantTimeCompare(sess.secret, key) != 1 {
		s.log().Debug("pgwire: cancel request for no such backend", "pid", pid)
		return
	}
	sess.interrupt(false)
}
