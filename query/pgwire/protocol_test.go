package pgwire

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-dev/sluice/query"
)

// rawConn speaks the protocol message by message, for what drivers do not
// show: message order, skipping to Sync, suspended portals.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	fe *pgproto3.Frontend
}

func rawConnect(t *testing.T, connURL string) *rawConn {
	t.Helper()
	c := dialRaw(t, connURL, 30*time.Second)
	// SSLRequest first, as libpq does: the answer is a bare 'N'.
	if _, err := c.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'N' {
		t.Fatalf("SSLRequest answer %q, %v", b, err)
	}
	r := &rawConn{t: t, c: c, fe: pgproto3.NewFrontend(c, c)}
	r.send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "database": "d"}})
	got := r.untilReady()
	for _, want := range []string{"AuthenticationOk", "server_version=14.0 (sluice)", "TimeZone=UTC", "BackendKeyData", "ReadyForQuery(I)"} {
		if !strings.Contains(got, want) {
			t.Fatalf("startup: %s lacks %s", got, want)
		}
	}
	return r
}

// dialRaw opens a TCP connection to the server of connURL, closed at the
// end of the test, that gives up after deadline.
func dialRaw(t *testing.T, connURL string, deadline time.Duration) net.Conn {
	t.Helper()
	u, err := url.Parse(connURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(deadline))
	return c
}

func (r *rawConn) send(msgs ...pgproto3.FrontendMessage) {
	r.t.Helper()
	for _, m := range msgs {
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// exchange sends msgs and checks that the answers up to ReadyForQuery are
// want (in untilReady's short form); what names the step in a failure.
func (r *rawConn) exchange(what, want string, msgs ...pgproto3.FrontendMessage) {
	r.t.Helper()
	r.send(msgs...)
	if got := r.untilReady(); got != want {
		r.t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// untilReady reads messages up to ReadyForQuery and returns them in short
// form.
func (r *rawConn) untilReady() string {
	r.t.Helper()
	var out []string
	for {
		msg, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("after %v: %v", out, err)
		}
		var s string
		switch m := msg.(type) {
		case *pgproto3.AuthenticationOk:
			s = "AuthenticationOk"
		case *pgproto3.ParameterStatus:
			s = m.Name + "=" + m.Value
		case *pgproto3.BackendKeyData:
			s = "BackendKeyData"
		case *pgproto3.ReadyForQuery:
			s = fmt.Sprintf("ReadyForQuery(%c)", m.TxStatus)
		case *pgproto3.ErrorResponse:
			s = "Error(" + m.Code + ")"
		case *pgproto3.RowDescription:
			var f []string
			for _, d := range m.Fields {
				f = append(f, fmt.Sprintf("%s:%d/%d", d.Name, d.DataTypeOID, d.Format))
			}
			s = "Row(" + strings.Join(f, ",") + ")"
		case *pgproto3.DataRow:
			var f []string
			for _, v := range m.Values {
				f = append(f, fmt.Sprintf("%x", v))
			}
			s = "Data(" + strings.Join(f, ",") + ")"
		case *pgproto3.CommandComplete:
			s = "Complete(" + string(m.CommandTag) + ")"
		case *pgproto3.ParameterDescription:
			s = fmt.Sprintf("Params%v", m.ParameterOIDs)
		default:
			s = strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3.")
		}
		out = append(out, s)
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return strings.Join(out, " ")
		}
	}
}

func TestExtendedProtocolMessages(t *testing.T) {
	r := rawConnect(t, startServer(t, query.Config{}, nil))

	// An error skips everything up to Sync, and Sync answers once.
	r.exchange("error then skip", "Error(26000) ReadyForQuery(I)",
		&pgproto3.Bind{PreparedStatement: "nope"}, &pgproto3.Execute{}, &pgproto3.Parse{Query: "select 1"}, &pgproto3.Sync{})

	// A named statement with a parameter, described, then bound twice;
	// binary result for the int8, a portal fetched 2 rows at a time.
	r.exchange("describe statement", "ParseComplete Params[20] Row(id:20/0,msg:25/0) ReadyForQuery(I)",
		&pgproto3.Parse{Name: "s1", Query: "select id, msg from logs where id <= $1 order by id", ParameterOIDs: []uint32{oidInt8}},
		&pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
	r.exchange("execute portal", "BindComplete Data(0000000000000001,6d73672031) Data(0000000000000002,) PortalSuspended Data(0000000000000003,6d73672033) Complete(SELECT 1) ReadyForQuery(I)",
		&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1", ParameterFormatCodes: []int16{1},
			Parameters: [][]byte{binary.BigEndian.AppendUint64(nil, 3)}, ResultFormatCodes: []int16{1, 0}},
		&pgproto3.Execute{Portal: "p1", MaxRows: 2}, &pgproto3.Execute{Portal: "p1", MaxRows: 2}, &pgproto3.Sync{})
	// The portal ended with the implicit transaction; the statement lives on.
	r.exchange("portal after sync", "Error(34000) ReadyForQuery(I)",
		&pgproto3.Execute{Portal: "p1"}, &pgproto3.Sync{})
	r.exchange("describe portal, close", "BindComplete Row(id:20/0,msg:25/0) Data(31,6d73672031) Complete(SELECT 1) CloseComplete Error(26000) ReadyForQuery(I)",
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "s1"},
		&pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Sync{})

	// Wrong parameter count; a duplicate statement name.
	r.exchange("parameter count", "ParseComplete Error(08P01) ReadyForQuery(I)",
		&pgproto3.Parse{Name: "s2", Query: "select $1::int"}, &pgproto3.Bind{PreparedStatement: "s2"}, &pgproto3.Sync{})
	r.exchange("duplicate statement", "Error(42P05) ReadyForQuery(I)",
		&pgproto3.Parse{Name: "s2", Query: "select 1"}, &pgproto3.Sync{})

	// Simple query: empty, a transaction block, a failed block.
	r.exchange("empty query", "EmptyQueryResponse ReadyForQuery(I)",
		&pgproto3.Query{String: "  ;"})
	r.exchange("begin", "Complete(BEGIN) ReadyForQuery(T)",
		&pgproto3.Query{String: "begin"})
	r.exchange("error in block", "Error(42P01) ReadyForQuery(E)",
		&pgproto3.Query{String: "select x from nope"})
	r.exchange("commit of failed block", "Complete(ROLLBACK) ReadyForQuery(I)",
		&pgproto3.Query{String: "commit"})
	r.exchange("simple query", "Row(one:23/0) Data(31) Complete(SELECT 1) ReadyForQuery(I)",
		&pgproto3.Query{String: "select 1 as one"})
	r.send(&pgproto3.Terminate{})
	if _, err := r.fe.Receive(); err == nil {
		t.Fatal("connection still open after Terminate")
	}
}

func TestScanParameters(t *testing.T) {
	for _, tc := range []struct {
		sql, want string
		n         int
	}{
		{"select $1, $2", "select A, B", 2},
		{"select '$1', \"$1\", $1", `select '$1', "$1", A`, 1},
		{"select 'it''s $1' || $1", "select 'it''s $1' || A", 1},
		{`select E'\'$1' || $1`, `select E'\'$1' || A`, 1},
		{`select '\' || $1`, `select '\' || A`, 1},
		{"select $$ $1 $$, $q$ $1 $$ $q$, $1", "select $$ $1 $$, $q$ $1 $$ $q$, A", 1},
		{"select a$1, $1 -- $2\n/* $2 /* $2 */ $2 */", "select a$1, A -- $2\n/* $2 /* $2 */ $2 */", 1},
		{"select $2::int", "select B::int", 2},
	} {
		info, err := analyze(tc.sql)
		if err != nil {
			t.Fatalf("%q: %v", tc.sql, err)
		}
		if got := info.bind([]string{"A", "B"}); got != tc.want || info.nParams != tc.n {
			t.Errorf("%q: got %q (%d params), want %q (%d)", tc.sql, got, info.nParams, tc.want, tc.n)
		}
	}
	for _, bad := range []string{"select 'open", `select "open`, "select /* open", "select $q$ open", `select E'\'`} {
		if _, err := analyze(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	info, _ := analyze("select 1; -- done\n ; ")
	if got := info.trimmed(nil); got != "select 1" {
		t.Errorf("trimmed: %q", got)
	}
}

func TestFormatFloat(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		bits int
		want string
	}{
		{0.1, 64, "0.1"}, {1e15, 64, "1e+15"}, {123456789012345, 64, "123456789012345"}, {1e-5, 64, "1e-05"},
		{0.0001, 64, "0.0001"}, {-0.0, 64, "0"}, {float64(float32(0.1)), 32, "0.1"}, {1234567, 32, "1.234567e+06"},
		{123456, 32, "123456"},
	} {
		if got := formatFloat(tc.f, tc.bits); got != tc.want {
			t.Errorf("formatFloat(%v, %d) = %q, want %q", tc.f, tc.bits, got, tc.want)
		}
	}
}
