package pgwire

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/query"
)

// FuzzScan: the SQL lexer never panics, and its segments are the text
// itself, cut into pieces.
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
		"select $1, '$2', \"$3\", $$ $4 $$, $tag$ $5 $tag$ -- $6\n/* $7 /* nested */ */ $8",
		"select e'\\'$1' || $2", "select 'unterminated", "/* open", "$", "$1$2$", "select $999999999999",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		segs, err := scan(sql)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, s := range segs {
			b.WriteString(s.text)
		}
		if b.String() != sql {
			t.Fatalf("segments %q do not make up %q", b.String(), sql)
		}
	})
}

// FuzzParamLiteral: a text parameter's value, whatever it holds, becomes
// one quoted literal: placed in a statement it is a single string
// segment, so it cannot end the string and add SQL of its own.
func FuzzParamLiteral(f *testing.F) {
	for _, seed := range []string{"plain", "it's", "'); drop table x; --", "\\'", "$1", "''''", "\x00", "e'\\''"} {
		f.Add(seed)
	}
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, val string) {
		lit, err := paramLiteral(m, 25 /* text */, 0, []byte(val))
		if err != nil {
			return
		}
		segs, err := scan("select " + lit + " x")
		if err != nil {
			t.Fatalf("literal %q does not lex: %v", lit, err)
		}
		var strs int
		for _, s := range segs {
			switch s.kind {
			case segString:
				strs++
			case segCode:
			default:
				t.Fatalf("literal %q made a %v segment %q", lit, s.kind, s.text)
			}
		}
		if strs != 1 {
			t.Fatalf("literal %q made %d strings: %+v", lit, strs, segs)
		}
	})
}

// FuzzRewrite: the face's rewrite, COPY and cursor parsers never panic;
// tokens are the text itself, each at its offset; a text with no word the
// face knows comes out unchanged.
func FuzzRewrite(f *testing.F) {
	for _, seed := range []string{
		"select pg_catalog.version(), current_user, 'x'::regclass from pg_class c where c.relname OPERATOR(pg_catalog.~) '^a$' COLLATE pg_catalog.default",
		"SELECT x FROM generate_series(1, 2) AS i, string_to_array('a,b', ',') s", "show transaction isolation level",
		"COPY (select 1) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';', NULL 'n')", "copy logs to stdout csv header",
		"DECLARE \"c\" CURSOR WITH HOLD FOR select 1", "FETCH FORWARD 100 FROM c", "close all", "select 1 from t where a = 'it''s'",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		toks, err := tokens(sql)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, tk := range toks {
			if sql[tk.pos:tk.pos+len(tk.text)] != tk.text {
				t.Fatalf("token %q is not at %d of %q", tk.text, tk.pos, sql)
			}
			b.WriteString(tk.text)
		}
		if b.String() != sql {
			t.Fatalf("tokens %q do not make up %q", b.String(), sql)
		}
		out := rewrite(sql, "u")
		_, _, _ = parseCopy(sql)
		_, _, _ = parseCursorOp(sql)
		known := false
		for _, tk := range toks {
			w := strings.ToLower(tk.text)
			if tk.ident && (facePg[w] || faceInfo[w] || castTypes[w] != "" || userWords[w] || renamedFuncs[w] != "" || w == "pg_catalog" ||
				w == "information_schema" || w == "operator" || w == "collate" || w == "show" || w == "generate_series" || w == "string_to_array") {
				known = true
			}
		}
		if !known && out != sql {
			t.Fatalf("rewrite changed %q into %q", sql, out)
		}
	})
}

// FuzzMessages: whatever bytes a logged-in client sends after its startup
// message, the session ends or answers within its deadline, without
// panicking, and the server goes on serving others (a query on a fresh
// connection works after every input).
func FuzzMessages(f *testing.F) {
	msg := func(typ byte, body string) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
		return append(b, body...)
	}
	for _, seed := range [][]byte{
		msg('Q', "select 1\x00"),
		msg('Q', "select count(*) from logs\x00"),
		append(msg('P', "s\x00select $1\x00\x00\x00"), msg('S', "")...),
		msg('B', "\x00s\x00\x00\x01\x00\x01\xff\xff\xff\xff"),
		msg('E', "\x00\x00\x00\x00\x00"),
		{'Q', 0x7f, 0xff, 0xff, 0xff},      // a huge length
		{'Q', 0, 0, 0, 2},                  // a length below its own size
		msg('d', "copy data out of place"), // CopyData with no COPY
		msg('X', ""),
		[]byte("garbage that is no message at all"),
	} {
		f.Add(seed)
	}
	url := startServer(f, query.Config{}, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := dialRaw(t, url, 10*time.Second)
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "analyst", "database": "sluice"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for { // up to ReadyForQuery: logged in
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("startup: %v", err)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		for { // the answers, until the server ends the session
			if _, err := fe.Receive(); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("the session neither answered nor ended within 10s after %q", data)
				}
				break
			}
		}
		conn := connect(t, url, pgx.QueryExecModeSimpleProtocol)
		var n int
		if err := conn.QueryRow(t.Context(), "select 1").Scan(&n); err != nil || n != 1 {
			t.Fatalf("after %q the server does not answer: %v", data, err)
		}
		conn.Close(context.Background())
	})
}
