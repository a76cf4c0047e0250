// Package pgwire serves sluice's SQL query engine over the PostgreSQL wire
// protocol (version 3.0), so psql, pgx, JDBC, psycopg and BI tools can run
// queries. Messages are framed by github.com/jackc/pgx/v5/pgproto3; this
// package maps them onto query.Engine.Query.
//
// What it does, and the choices made:
//
//   - No authentication and no TLS: SSLRequest and GSSENCRequest are
//     answered 'N', any user and database name are accepted, and
//     AuthenticationOk follows the startup message. sluice has no
//     authentication anywhere; the listener binds loopback by default.
//   - Simple query protocol: one statement per Query message (the engine
//     runs one); an empty one answers EmptyQueryResponse. Results are sent
//     in text format with Postgres's text representations (see textValue);
//     a result cut at the engine's row limit ends with a WARNING notice.
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
//     psycopg send them; queries are read-only, so they change nothing else.
//     SET of a few client settings drivers send (extra_float_digits,
//     application_name, ...) is accepted and ignored.
//   - CancelRequest interrupts the running query of the backend it names.
//   - At most MaxConns sessions at once; more are refused with SQLSTATE
//     53300. Each query runs with the engine's timeout and memory limit.
package pgwire

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/query"
)

// DefaultMaxConns is the default limit on concurrent sessions.
const DefaultMaxConns = 64

// ServerVersion is the server_version reported to clients. Clients use it
// to pick features; 16 is a current Postgres.
const ServerVersion = "16.0 (sluice)"

const (
	startupTimeout = 10 * time.Second
	writeTimeout   = 2 * time.Minute
	maxMessageLen  = 16 << 20
)

// Engine runs one SQL statement; *query.Engine is one.
type Engine interface {
	Query(ctx context.Context, sql string) (*query.Result, error)
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("pgwire: server closed")

// Server serves the Postgres wire protocol. Set the fields, then call
// Serve; Close stops it.
type Server struct {
	Engine Engine
	// MaxConns bounds concurrent sessions; 0 means DefaultMaxConns.
	MaxConns int
	// Log receives connection problems at debug level; nil: slog.Default().
	Log *slog.Logger

	mu       sync.Mutex
	closed   bool
	lns      map[net.Listener]struct{}
	conns    map[net.Conn]struct{}
	sessions map[uint32]*session // by process ID, for CancelRequest
	nextPID  uint32
	wg       sync.WaitGroup
}

// Serve accepts connections on ln until Close; it returns ErrServerClosed
// then, or the error that stopped accepting.
func (s *Server) Serve(ln net.Listener) error {
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

// handle runs one connection: the startup phase, then a session.
func (s *Server) handle(c net.Conn) {
	be := pgproto3.NewBackend(c, c)
	be.SetMaxBodyLen(maxMessageLen)
	c.SetDeadline(time.Now().Add(startupTimeout))
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			s.log().Debug("pgwire: bad startup", "remote", c.RemoteAddr().String(), "err", err)
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest, *pgproto3.GSSEncRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
		case *pgproto3.CancelRequest:
			s.cancel(m.ProcessID, m.SecretKey)
			return // Postgres closes a cancel connection without an answer
		case *pgproto3.StartupMessage:
			startup = m
		}
	}
	sess, ok := s.register(c, be, startup)
	if !ok {
		be.Send((&pgError{severity: "FATAL", code: codeTooManyConns,
			msg: fmt.Sprintf("sorry, too many clients already (sluice accepts %d)", s.maxConns())}).response())
		be.Flush()
		return
	}
	defer s.unregister(sess)
	c.SetDeadline(time.Time{})
	sess.run()
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

// register creates a session with a fresh process ID and secret key, or
// returns false when MaxConns sessions exist.
func (s *Server) register(c net.Conn, be *pgproto3.Backend, startup *pgproto3.StartupMessage) (*session, bool) {
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
		srv: s, conn: c, be: be, pid: s.nextPID, secret: secret[:],
		protocol: startup.ProtocolVersion, params: params,
		types: pgtype.NewMap(), tx: 'I',
		stmts: map[string]*statement{}, portals: map[string]*portal{},
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
