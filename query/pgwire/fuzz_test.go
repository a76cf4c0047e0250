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
