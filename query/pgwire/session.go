package pgwire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/query"
)

const (
	// flushEvery is how many DataRows are buffered before they are written.
	flushEvery = 256
	// maxStatements and maxPortals bound what one session keeps: a portal
	// can hold a result of up to the engine's row limit.
	maxStatements = 1000
	maxPortals    = 16
)

// session is one client connection after startup. Its methods run on the
// connection's goroutine, except interrupt (CancelRequest, Close).
type session struct {
	srv    *Server
	conn   net.Conn
	be     *pgproto3.Backend
	pid    uint32
	secret []byte
	// principal is who logged in (auth.Admin without authentication);
	// every query runs with it in its context.
	principal *auth.Principal
	protocol  uint32
	params    map[string]string // startup parameters
	types     *pgtype.Map       // not safe for concurrent use: one per session

	tx         byte // ReadyForQuery status: 'I' idle, 'T' in a block, 'E' failed block
	stmts      map[string]*statement
	portals    map[string]*portal
	cursors    map[string]*cursor // DECLAREd, open until CLOSE or the block ends
	skipToSync bool               // after an error in the extended protocol
	ioErr      error              // the connection is broken

	mu       sync.Mutex
	stop     context.CancelFunc // of the running query; nil when idle
	canceled bool               // a CancelRequest hit the running query
	shutdown bool               // the server is closing
}

// statement is a prepared statement (Parse).
type statement struct {
	sql       string
	info      statementInfo
	paramOIDs []uint32 // one per parameter; 0 when the client left it open
	cols      []column // from Describe; nil until described
}

// portal is a bound statement (Bind), run at its first Describe or Execute.
type portal struct {
	stmt    *statement
	sql     string  // with parameter values substituted
	formats []int16 // result format codes as sent
	cols    []column
	res     *query.Result
	pos     int // rows sent so far
}

// interrupt cancels the running query, if any.
func (s *session) interrupt(shutdown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if shutdown {
		s.shutdown = true
	}
	if s.stop != nil {
		s.canceled = true
		s.stop()
	}
}

func (s *session) run() {
	var unknownOpts []string
	for k := range s.params {
		if strings.HasPrefix(k, "_pq_.") {
			unknownOpts = append(unknownOpts, k)
		}
	}
	if s.protocol != pgproto3.ProtocolVersion30 || len(unknownOpts) > 0 {
		sort.Strings(unknownOpts)
		s.be.Send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknownOpts})
	}
	s.be.Send(&pgproto3.AuthenticationOk{})
	for _, p := range [][2]string{
		{"server_version", ServerVersion},
		{"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"},
		{"IntervalStyle", "postgres"},
		{"TimeZone", "UTC"},
		{"integer_datetimes", "on"},
		{"standard_conforming_strings", "on"},
		{"is_superuser", "off"},
		{"application_name", s.params["application_name"]},
		{"session_authorization", s.params["user"]},
	} {
		s.be.Send(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	s.be.Send(&pgproto3.BackendKeyData{ProcessID: s.pid, SecretKey: s.secret})
	s.ready()
	defer s.closeCursors("")
	idle := s.srv.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	for s.ioErr == nil {
		if idle > 0 {
			s.conn.SetReadDeadline(time.Now().Add(idle))
		}
		msg, err := s.be.Receive()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			s.be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeIdleTimeout,
				Message: fmt.Sprintf("terminating connection due to idle-session timeout (%s without a message)", idle)})
			s.be.Flush()
			return
		}
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
				s.srv.log().Debug("pgwire: connection ended", "pid", s.pid, "err", err)
			}
			return
		}
		if _, ok := msg.(*pgproto3.Terminate); ok {
			return
		}
		if _, ok := msg.(*pgproto3.Sync); s.skipToSync && !ok {
			continue // Postgres discards everything until Sync after an error
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			s.simpleQuery(m.String)
		case *pgproto3.Parse:
			s.extended(s.parse(m))
		case *pgproto3.Bind:
			s.extended(s.bind(m))
		case *pgproto3.Describe:
			s.extended(s.describe(m))
		case *pgproto3.Execute:
			s.extended(s.execute(m))
		case *pgproto3.Close:
			s.extended(s.closeMsg(m))
		case *pgproto3.Sync:
			s.skipToSync = false
			if s.tx == 'I' {
				clear(s.portals) // the implicit transaction ends
			}
			s.ready()
		case *pgproto3.Flush:
			s.flush()
		case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail:
			// Ignored outside COPY, as Postgres does.
		default:
			s.sendError(newError(codeProtocol, fmt.Sprintf("unsupported message %T", m)))
			s.ready()
		}
	}
}

func (s *session) flush() {
	if s.ioErr != nil {
		return
	}
	s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	s.ioErr = s.be.Flush()
}

func (s *session) ready() {
	s.be.Send(&pgproto3.ReadyForQuery{TxStatus: s.tx})
	s.flush()
}

func (s *session) sendError(err error) {
	var pe *pgError
	if !errors.As(err, &pe) {
		pe = newError(codeInternal, err.Error())
	}
	if s.tx == 'T' {
		s.tx = 'E'
	}
	s.be.Send(pe.response())
}

// extended finishes an extended-protocol message: after an error, the
// rest up to Sync is skipped.
func (s *session) extended(err error) {
	if err != nil {
		s.sendError(err)
		s.skipToSync = true
	}
}

func (s *session) simpleQuery(sql string) {
	defer s.ready()
	sql = rewrite(sql, s.params["user"])
	info, err := analyze(sql)
	if err != nil {
		s.sendError(newError(codeSyntax, err.Error()))
		return
	}
	if info.empty {
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return
	}
	if handled, err := s.streamCommand(sql, info, nil, true); handled {
		if err != nil {
			s.sendError(err)
		}
		return
	}
	if tag, ok, err := s.command(info); ok {
		if err != nil {
			s.sendError(err)
		} else {
			s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		}
		return
	}
	res, err := s.runQuery(sql)
	if err != nil {
		s.sendError(err)
		return
	}
	cols := columnsOf(res)
	formats := make([]int16, len(cols))
	s.be.Send(rowDescription(cols, formats))
	if err := s.sendRows(res, cols, formats, 0, len(res.Rows)); err != nil {
		s.sendError(err)
		return
	}
	s.complete(len(res.Rows))
}

// complete ends a result with CommandComplete.
func (s *session) complete(n int) {
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT " + strconv.Itoa(n))})
}

// truncatedError is what a result cut by the engine's row or byte limit
// answers: an ERROR, since drivers drop notices and a silently short
// result looks complete. COPY and cursors stream past the row limit.
func truncatedError(res *query.Result) error {
	e := newError(codeLimit, "cannot return the result: it exceeds "+res.TruncatedBy)
	e.hint = "Add a LIMIT, filter or aggregate, or read it with a cursor (DECLARE ... CURSOR, FETCH) or COPY (...) TO STDOUT, which stream without the row limit."
	return e
}

// ignoredSettings are the settings drivers SET on connect whose values do
// not change what sluice sends; SET of any other one goes to the engine,
// which refuses it.
var ignoredSettings = map[string]bool{
	"EXTRA_FLOAT_DIGITS": true, "APPLICATION_NAME": true, "CLIENT_MIN_MESSAGES": true,
	"STATEMENT_TIMEOUT": true, "LOCK_TIMEOUT": true, "IDLE_IN_TRANSACTION_SESSION_TIMEOUT": true,
	"BYTEA_OUTPUT": true, "SEARCH_PATH": true,
}

// command runs the statements the server answers itself: transaction
// control (queries are read-only, so a transaction only changes the
// ReadyForQuery status) and SET of the settings drivers send on connect.
func (s *session) command(info statementInfo) (tag string, ok bool, err error) {
	w := append(info.words, "", "", "")
	switch w[0] {
	case "BEGIN", "START":
		if w[0] == "START" && w[1] != "TRANSACTION" {
			return "", false, nil
		}
		if s.tx == 'E' {
			return "", true, failedTx()
		}
		s.tx = 'T'
		return "BEGIN", true, nil
	case "COMMIT", "END":
		s.closeCursors("")
		tag = "COMMIT"
		if s.tx == 'E' {
			tag = "ROLLBACK"
		}
		s.tx = 'I'
		return tag, true, nil
	case "ROLLBACK", "ABORT":
		if w[1] == "TO" && s.tx != 'I' {
			s.tx = 'T' // ROLLBACK TO SAVEPOINT: the block goes on
			return "ROLLBACK", true, nil
		}
		s.tx = 'I'
		s.closeCursors("")
		return "ROLLBACK", true, nil
	case "SAVEPOINT", "RELEASE":
		// Savepoints (psycopg's nested transactions) change nothing either.
		if s.tx == 'E' {
			return "", true, failedTx()
		}
		return w[0], true, nil
	case "SET":
		name := w[1]
		if name == "SESSION" || name == "LOCAL" {
			name = w[2]
		}
		if !ignoredSettings[name] {
			return "", false, nil
		}
		if s.tx == 'E' {
			return "", true, failedTx()
		}
		return "SET", true, nil
	}
	return "", false, nil
}

func failedTx() error {
	return newError(codeInFailedTx, "current transaction is aborted, commands ignored until end of transaction block")
}

// runQuery runs one statement on the engine as the session's principal,
// interruptible by a CancelRequest.
func (s *session) runQuery(sql string) (*query.Result, error) {
	var res *query.Result
	err := s.running(func(ctx context.Context) (err error) {
		res, err = s.srv.Engine.Query(ctx, sql)
		return err
	})
	if err != nil {
		return nil, err
	}
	if res.Truncated {
		return nil, truncatedError(res)
	}
	for _, f := range res.SkippedFiles { // --query-skip-unreadable
		s.be.Send(&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "58030",
			Message: fmt.Sprintf("left out unreadable file %s of table %q: %s", f.File, f.Table, f.Error)})
	}
	return res, nil
}

// running runs fn (a call of the engine) with the session's principal in
// its context, interruptible by a CancelRequest and by the server's
// shutdown, and maps its error to a SQLSTATE.
func (s *session) running(fn func(ctx context.Context) error) error {
	if s.tx == 'E' {
		return failedTx()
	}
	ctx, cancel := context.WithCancel(auth.WithPrincipal(context.Background(), s.principal))
	defer cancel()
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		return queryError(context.Canceled, false, true)
	}
	s.stop, s.canceled = cancel, false
	s.mu.Unlock()
	err := fn(ctx)
	s.mu.Lock()
	s.stop = nil
	canceled, shutdown := s.canceled, s.shutdown
	s.mu.Unlock()
	if err != nil {
		return queryError(err, canceled, shutdown)
	}
	return nil
}

func rowDescription(cols []column, formats []int16) *pgproto3.RowDescription {
	fields := make([]pgproto3.FieldDescription, len(cols))
	for i, c := range cols {
		fields[i] = pgproto3.FieldDescription{Name: []byte(c.name), DataTypeOID: c.oid,
			DataTypeSize: typeSize(c.oid), TypeModifier: -1, Format: formats[i]}
	}
	return &pgproto3.RowDescription{Fields: fields}
}

// sendRows sends rows [from, to) of res. Values are rendered as text for
// their actual type; a binary column is converted to the type in cols,
// the columns the client was told about.
func (s *session) sendRows(res *query.Result, cols []column, formats []int16, from, to int) error {
	actual := columnsOf(res)
	for r := from; r < to; r++ {
		row := res.Rows[r]
		vals := make([][]byte, len(row))
		for i, v := range row {
			vals[i] = textValue(v, actual[i])
			if formats[i] == pgtype.BinaryFormatCode {
				b, err := binaryValue(s.types, vals[i], cols[i].oid)
				if err != nil {
					return newError(codeInvalidText, fmt.Sprintf("column %q: %v", cols[i].name, err))
				}
				vals[i] = b
			}
		}
		s.be.Send(&pgproto3.DataRow{Values: vals})
		if (r-from+1)%flushEvery == 0 {
			if s.flush(); s.ioErr != nil {
				return s.ioErr
			}
		}
	}
	return nil
}

// formatCodes expands Bind's result format codes to one per column.
func formatCodes(codes []int16, n int) ([]int16, error) {
	out := make([]int16, n)
	switch len(codes) {
	case 0:
	case 1:
		for i := range out {
			out[i] = codes[0]
		}
	case n:
		copy(out, codes)
	default:
		return nil, newError(codeProtocol, fmt.Sprintf("bind message has %d result formats but query has %d columns", len(codes), n))
	}
	for _, c := range out {
		if c != pgtype.TextFormatCode && c != pgtype.BinaryFormatCode {
			return nil, newError(codeProtocol, fmt.Sprintf("unsupported format code: %d", c))
		}
	}
	return out, nil
}

func (s *session) parse(m *pgproto3.Parse) error {
	if _, ok := s.stmts[m.Name]; ok && m.Name != "" {
		return newError(codeDupStatement, fmt.Sprintf("prepared statement %q already exists", m.Name))
	}
	if _, ok := s.stmts[m.Name]; !ok && len(s.stmts) >= maxStatements {
		return newError(codeLimit, fmt.Sprintf("too many prepared statements (at most %d per session): close some", maxStatements))
	}
	sql := rewrite(m.Query, s.params["user"])
	info, err := analyze(sql)
	if err != nil {
		return newError(codeSyntax, err.Error())
	}
	oids := make([]uint32, max(info.nParams, len(m.ParameterOIDs)))
	copy(oids, m.ParameterOIDs)
	s.stmts[m.Name] = &statement{sql: sql, info: info, paramOIDs: oids}
	s.be.Send(&pgproto3.ParseComplete{})
	return nil
}

func statementName(name string) string {
	if name == "" {
		return "unnamed prepared statement"
	}
	return fmt.Sprintf("prepared statement %q", name)
}

func (s *session) bind(m *pgproto3.Bind) error {
	st, ok := s.stmts[m.PreparedStatement]
	if !ok {
		return newError(codeNoStatement, statementName(m.PreparedStatement)+" does not exist")
	}
	if _, ok := s.portals[m.DestinationPortal]; ok && m.DestinationPortal != "" {
		return newError(codeDupPortal, fmt.Sprintf("portal %q already exists", m.DestinationPortal))
	}
	if _, ok := s.portals[m.DestinationPortal]; !ok && len(s.portals) >= maxPortals {
		return newError(codeLimit, fmt.Sprintf("too many open portals (at most %d per session): close some", maxPortals))
	}
	if len(m.Parameters) != len(st.paramOIDs) {
		return newError(codeProtocol, fmt.Sprintf("bind message supplies %d parameters, but %s requires %d",
			len(m.Parameters), statementName(m.PreparedStatement), len(st.paramOIDs)))
	}
	pformats, err := formatCodes(m.ParameterFormatCodes, len(m.Parameters))
	if err != nil {
		return err
	}
	sql := st.sql
	if len(st.paramOIDs) > 0 {
		lits := make([]string, len(st.paramOIDs))
		for i, oid := range st.paramOIDs {
			if lits[i], err = paramLiteral(s.types, oid, pformats[i], m.Parameters[i]); err != nil {
				return newError(codeInvalidText, fmt.Sprintf("parameter $%d: %v", i+1, err))
			}
		}
		sql = st.info.bind(lits)
	}
	s.portals[m.DestinationPortal] = &portal{stmt: st, sql: sql, formats: append([]int16(nil), m.ResultFormatCodes...), cols: st.cols}
	s.be.Send(&pgproto3.BindComplete{})
	return nil
}

// returnsRows tells whether a statement goes to the engine (and so
// returns rows) rather than being answered by the server or empty.
func returnsRows(info statementInfo) bool {
	if info.empty {
		return false
	}
	w := append(info.words, "", "", "")
	switch w[0] {
	case "BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "COPY", "DECLARE", "CLOSE":
		return false
	case "START":
		return w[1] != "TRANSACTION"
	case "SET":
		name := w[1]
		if name == "SESSION" || name == "LOCAL" {
			name = w[2]
		}
		return !ignoredSettings[name]
	}
	return true
}

func (s *session) describe(m *pgproto3.Describe) error {
	switch m.ObjectType {
	case 'S':
		st, ok := s.stmts[m.Name]
		if !ok {
			return newError(codeNoStatement, statementName(m.Name)+" does not exist")
		}
		oids := st.paramOIDs
		if ok, err := s.describeFetchStatement(st); ok {
			return err
		}
		if !returnsRows(st.info) {
			s.be.Send(&pgproto3.ParameterDescription{ParameterOIDs: oids})
			s.be.Send(&pgproto3.NoData{})
			return nil
		}
		cols, err := s.describeStatement(st)
		if err != nil {
			return err
		}
		st.cols = cols
		s.be.Send(&pgproto3.ParameterDescription{ParameterOIDs: oids})
		s.be.Send(rowDescription(cols, make([]int16, len(cols))))
		return nil
	case 'P':
		p, ok := s.portals[m.Name]
		if c, isCursor := s.cursors[m.Name]; !ok && isCursor {
			s.be.Send(rowDescription(c.cols, make([]int16, len(c.cols))))
			return nil
		}
		if !ok {
			return newError(codeNoPortal, fmt.Sprintf("portal %q does not exist", m.Name))
		}
		if ok, err := s.describeFetch(p.sql, p.stmt.info, p.formats); ok {
			return err
		}
		if !returnsRows(p.stmt.info) {
			s.be.Send(&pgproto3.NoData{})
			return nil
		}
		if err := s.runPortal(p); err != nil {
			return err
		}
		p.cols = columnsOf(p.res)
		formats, err := formatCodes(p.formats, len(p.cols))
		if err != nil {
			return err
		}
		s.be.Send(rowDescription(p.cols, formats))
		return nil
	}
	return newError(codeProtocol, fmt.Sprintf("invalid DESCRIBE message subtype %d", m.ObjectType))
}

// describeStatement learns a statement's result columns without running
// it: as SELECT * FROM (...) LIMIT 0, with NULL for the parameters (typed
// when the client declared the parameter's type). The NULLs are scalar
// subqueries first, which DuckDB does not fold into a NULL constant (a
// folded expression loses its type: CAST(NULL AS VARCHAR) || ” reports
// INTEGER), then plain NULLs, which fit where a subquery does not. A
// statement that cannot be wrapped (EXPLAIN) is run as it is.
func (s *session) describeStatement(st *statement) ([]column, error) {
	sub := make([]string, len(st.paramOIDs))
	plain := make([]string, len(st.paramOIDs))
	for i, oid := range st.paramOIDs {
		plain[i], _ = paramLiteral(s.types, oid, 0, nil)
		sub[i] = "(SELECT " + plain[i] + ")"
	}
	attempts := []string{"SELECT * FROM (\n" + st.info.trimmed(sub) + "\n) LIMIT 0"}
	if len(sub) > 0 {
		attempts = append(attempts, "SELECT * FROM (\n"+st.info.trimmed(plain)+"\n) LIMIT 0")
	}
	attempts = append(attempts, st.info.bind(plain))
	var err error
	for _, q := range attempts {
		var res *query.Result
		if res, err = s.runQuery(q); err == nil {
			return columnsOf(res), nil
		}
		var pe *pgError
		if errors.As(err, &pe) && (pe.code == codeCanceled || pe.code == codeAdminShutdown || pe.code == codeInFailedTx) {
			break
		}
	}
	return nil, err
}

func (s *session) execute(m *pgproto3.Execute) error {
	p, ok := s.portals[m.Portal]
	if !ok {
		return newError(codeNoPortal, fmt.Sprintf("portal %q does not exist", m.Portal))
	}
	info := p.stmt.info
	if info.empty {
		s.be.Send(&pgproto3.EmptyQueryResponse{})
		return nil
	}
	if handled, err := s.streamCommand(p.sql, info, p.formats, false); handled {
		return err
	}
	if !returnsRows(info) {
		tag, _, err := s.command(info)
		if err != nil {
			return err
		}
		s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
		return nil
	}
	if err := s.runPortal(p); err != nil {
		return err
	}
	actual := columnsOf(p.res)
	cols := p.cols
	if cols == nil {
		cols = actual
	}
	if len(cols) != len(actual) {
		return newError(codeNotSupported, fmt.Sprintf("the query returned %d columns but was described with %d", len(actual), len(cols)))
	}
	formats, err := formatCodes(p.formats, len(cols))
	if err != nil {
		return err
	}
	from, to := p.pos, len(p.res.Rows)
	if m.MaxRows > 0 && int(m.MaxRows) < to-from {
		to = from + int(m.MaxRows)
	}
	if err := s.sendRows(p.res, cols, formats, from, to); err != nil {
		return err
	}
	p.pos = to
	if to < len(p.res.Rows) {
		s.be.Send(&pgproto3.PortalSuspended{})
		return nil
	}
	s.complete(to - from)
	return nil
}

// runPortal runs a portal's query unless its first Describe or Execute
// already did.
func (s *session) runPortal(p *portal) error {
	if p.res != nil {
		return nil
	}
	res, err := s.runQuery(p.sql)
	if err != nil {
		return err
	}
	p.res = res
	return nil
}

func (s *session) closeMsg(m *pgproto3.Close) error {
	switch m.ObjectType {
	case 'S':
		delete(s.stmts, m.Name)
	case 'P':
		delete(s.portals, m.Name)
	default:
		return newError(codeProtocol, fmt.Sprintf("invalid CLOSE message subtype %d", m.ObjectType))
	}
	s.be.Send(&pgproto3.CloseComplete{})
	return nil
}
