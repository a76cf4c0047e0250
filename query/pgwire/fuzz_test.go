package pgwire

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
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
