package pgwire

import (
	"regexp"
	"strings"

	"github.com/sluice-dev/sluice/query"
)

// The Postgres face: what psql's \d commands, SQLAlchemy, JDBC's
// DatabaseMetaData and BI tools' schema browsers ask of a Postgres server,
// answered from the engine's own catalog.
//
// DuckDB has a pg_catalog schema of its own, but it is partial (no
// pg_roles, pg_get_userbyid, quote_ident, version, regclass), uses DuckDB's
// type OIDs, and lives in DuckDB's system catalog where nothing can be
// added. So the server's own versions live in an attached in-memory
// database, FaceDB, in two schemas (pg_catalog and information_schema are
// reserved names in every DuckDB database): FaceDB.pg and FaceDB.info,
// created by CatalogSQL when the engine starts. rewrite points a
// statement's references at them, token by token after lexing the text
// (strings, quoted names and comments are never touched):
//
//   - pg_catalog.NAME and a bare NAME (not qualified, not a qualifier) for
//     the relations and functions of facePg → FaceDB.pg.NAME; any other
//     pg_catalog.f( loses its qualifier (DuckDB's own function); any other
//     pg_catalog.relation is left to DuckDB's own pg_catalog;
//   - information_schema.NAME for the views of faceInfo → FaceDB.info.NAME
//     (the last part stays the name, so NAME.column still resolves);
//   - 'text'::regclass → FaceDB.pg.to_regclass('text') (::regtype
//     alike), 'text'::regproc and the other reg* → 'text'; ::regclass,
//     ::regtype, ::oid and the other reg* casts → ::BIGINT, ::name →
//     ::VARCHAR; OPERATOR(pg_catalog.~) → ~; COLLATE pg_catalog.default
//     and COLLATE "C" are dropped;
//   - current_user, session_user, current_role and user → the session's
//     user (the key's ID);
//   - SHOW of a parameter of pgSettings → a one-row SELECT.
//
// The relations list the engine's tables as ordinary tables (relkind 'r')
// of schema main, which is where DuckDB has them, so SELECT * FROM
// main.logs works as tools write it.

// FaceDB is the attached database holding the Postgres face's objects.
const FaceDB = query.FaceCatalog

// facePg are the pg_catalog relations and functions FaceDB.pg defines.
var facePg = map[string]bool{
	"pg_namespace": true, "pg_class": true, "pg_attribute": true, "pg_type": true, "pg_database": true,
	"pg_roles": true, "pg_user": true, "pg_authid": true, "pg_index": true, "pg_description": true, "pg_proc": true,
	"pg_inherits": true, "pg_policy": true, "pg_statistic_ext": true, "pg_publication": true,
	"pg_publication_rel": true, "pg_publication_namespace": true, "pg_trigger": true, "pg_rewrite": true,
	"pg_partitioned_table": true, "pg_foreign_table": true, "pg_attrdef": true, "pg_constraint": true,
	"pg_tables": true, "pg_views": true, "pg_matviews": true, "pg_settings": true, "pg_extension": true,
	"pg_enum": true, "pg_opclass": true, "pg_stat_user_tables": true, "pg_range": true, "pg_am": true, "pg_collation": true, "pg_tablespace": true,
	"pg_get_userbyid": true, "quote_ident": true, "format_type": true, "pg_table_is_visible": true,
	"pg_type_is_visible": true, "current_setting": true, "version": true, "current_database": true,
	"current_schema": true, "pg_encoding_to_char": true, "obj_description": true, "col_description": true,
	"pg_get_expr": true, "pg_get_indexdef": true, "pg_get_constraintdef": true, "to_regclass": true, "to_regtype": true, "parse_ident": true, "pg_get_serial_sequence": true, "pg_get_function_result": true, "pg_get_function_arguments": true, "pg_collation_is_visible": true,
	"has_table_privilege": true, "has_schema_privilege": true, "has_database_privilege": true,
	"pg_relation_size": true, "pg_total_relation_size": true, "pg_table_size": true, "pg_backend_pid": true,
	"pg_postmaster_start_time": true, "txid_current": true, "pg_is_in_recovery": true,
	"pg_get_keywords": true, "pg_get_viewdef": true, "array_lower": true, "array_upper": true,
	"pg_get_function_identity_arguments": true, "pg_get_statisticsobjdef_columns": true,
	"pg_get_statisticsobjdef_expressions": true, "pg_get_partkeydef": true, "pg_get_triggerdef": true,
	"pg_get_ruledef": true, "pg_relation_is_publishable": true, "pg_function_is_visible": true, "current_schemas": true,
}

// faceInfo are the information_schema views FaceDB.info defines.
var faceInfo = map[string]bool{
	"tables": true, "columns": true, "schemata": true, "views": true, "table_constraints": true,
	"key_column_usage": true, "routines": true, "_pg_expandarray": true,
}

// castTypes are Postgres types a cast may name that DuckDB lacks.
var castTypes = map[string]string{
	"regclass": "BIGINT", "regtype": "BIGINT", "regproc": "BIGINT", "regprocedure": "BIGINT",
	"regnamespace": "BIGINT", "regrole": "BIGINT", "regoper": "BIGINT", "oid": "BIGINT", "xid": "BIGINT",
	"name": "VARCHAR", "bpchar": "VARCHAR", "int2vector": "VARCHAR", "oidvector": "VARCHAR",
}

// renamedFuncs are Postgres functions DuckDB has under another name
// (variadic ones, which a macro cannot be).
var renamedFuncs = map[string]string{"json_build_object": "json_object", "jsonb_build_object": "json_object"}

// userWords are the SQL keywords that name the session's user.
var userWords = map[string]bool{"current_user": true, "session_user": true, "current_role": true, "user": true}

// pgSettings are the parameters SHOW and current_setting answer.
var pgSettings = map[string]string{
	"server_version":                "14.0",
	"server_version_num":            "140000",
	"server_encoding":               "UTF8",
	"client_encoding":               "UTF8",
	"datestyle":                     "ISO, MDY",
	"intervalstyle":                 "postgres",
	"timezone":                      "UTC",
	"integer_datetimes":             "on",
	"standard_conforming_strings":   "on",
	"transaction_isolation":         "read committed",
	"default_transaction_isolation": "read committed",
	"time_zone":                     "UTC", // SHOW TIME ZONE
	"transaction_read_only":         "on",
	"default_transaction_read_only": "on",
	"search_path":                   "main",
	"max_identifier_length":         "63",
	"max_index_keys":                "32",
	"lc_collate":                    "C",
	"lc_ctype":                      "C",
	"is_superuser":                  "off",
	"application_name":              "",
	"extra_float_digits":            "1",
	"bytea_output":                  "hex",
	"statement_timeout":             "0",
	"block_size":                    "8192",
}

// token is a piece of a statement as rewrite sees it.
type token struct {
	text  string
	ident bool // an unquoted identifier or keyword
	space bool // whitespace or a comment
	str   bool // a string literal ('...', E'...', $$...$$)
	pos   int  // byte offset in the statement
}

// tokens splits sql into tokens (scan's segments, code split further).
func tokens(sql string) ([]token, error) {
	segs, err := scan(sql)
	if err != nil {
		return nil, err
	}
	var out []token
	pos := 0
	for _, s := range segs {
		var add []token
		switch s.kind {
		case segComment:
			add = []token{{text: s.text, space: true}}
		case segString, segParam:
			add = []token{{text: s.text, str: s.kind == segString && s.text[0] != '"'}}
		default:
			add = codeTokens(s.text)
		}
		for _, t := range add {
			t.pos = pos
			pos += len(t.text)
			out = append(out, t)
		}
	}
	return out, nil
}

func codeTokens(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		j := i + 1
		switch c := s[i]; {
		case identChar(c) && !isDigit(c):
			for j < len(s) && identChar(s[j]) {
				j++
			}
			out = append(out, token{text: s[i:j], ident: true})
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			for j < len(s) && strings.IndexByte(" \t\n\r\f", s[j]) >= 0 {
				j++
			}
			out = append(out, token{text: s[i:j], space: true})
		case isDigit(c):
			for j < len(s) && (isDigit(s[j]) || s[j] == '.') {
				j++
			}
			out = append(out, token{text: s[i:j]})
		case c == ':' && j < len(s) && s[j] == ':':
			j++
			out = append(out, token{text: "::"})
		default:
			out = append(out, token{text: s[i:j]})
		}
		i = j
	}
	return out
}

// rewriter walks a statement's tokens.
type rewriter struct {
	toks []token
	user string
}

// next returns the index of the first significant token after i (len if none).
func (r *rewriter) next(i int) int {
	for i++; i < len(r.toks) && r.toks[i].space; i++ {
	}
	return i
}

// prev returns the index of the last significant token before i (-1 if none).
func (r *rewriter) prev(i int) int {
	for i--; i >= 0 && r.toks[i].space; i-- {
	}
	return i
}

func (r *rewriter) is(i int, text string) bool {
	return i >= 0 && i < len(r.toks) && strings.EqualFold(r.toks[i].text, text)
}

func (r *rewriter) word(i int) string {
	if i < 0 || i >= len(r.toks) || !r.toks[i].ident {
		return ""
	}
	return strings.ToLower(r.toks[i].text)
}

// rewrite points sql's references to Postgres catalogs at the face (see
// the comment at the top of this file). user is the session's user. A text
// the lexer cannot split is returned as it is (the engine reports it).
func rewrite(sql, user string) string {
	toks, err := tokens(sql)
	if err != nil {
		return sql
	}
	r := &rewriter{toks: toks, user: user}
	if q, ok := r.show(); ok {
		return q
	}
	var b strings.Builder
	for i := 0; i < len(toks); i++ {
		i = r.one(&b, i)
	}
	return b.String()
}

// one writes the rewrite of the tokens from i and returns the last index
// it consumed.
func (r *rewriter) one(b *strings.Builder, i int) int {
	t := r.toks[i]
	w := r.word(i)
	qualified := r.is(r.prev(i), ".")
	switch {
	case t.str && r.is(r.next(i), "::") && (r.word(r.next(r.next(i))) == "regclass" || r.word(r.next(r.next(i))) == "regtype"):
		b.WriteString(FaceDB + ".pg.to_" + r.word(r.next(r.next(i))) + "(" + t.text + ")")
		return r.next(r.next(i))
	case t.str && r.is(r.next(i), "::") && strings.HasPrefix(r.word(r.next(r.next(i))), "reg") && castTypes[r.word(r.next(r.next(i)))] != "":
		// 'name'::regproc and the like: compared with names, so a name.
		b.WriteString(t.text)
		return r.next(r.next(i))
	case (w == "generate_series" || w == "string_to_array") && !qualified && r.is(r.next(i), "(") &&
		(r.is(r.prev(i), ",") || r.word(r.prev(i)) == "from"):
		if end, ok := r.fromFunction(b, i, w == "string_to_array"); ok {
			return end
		}
	case w == "operator" && r.is(r.next(i), "("):
		// OPERATOR(pg_catalog.~) → ~
		end := i
		var op strings.Builder
		for j := r.next(r.next(i)); j < len(r.toks) && !r.is(j, ")"); j++ {
			if !r.toks[j].space && !r.toks[j].ident && !r.is(j, ".") {
				op.WriteString(r.toks[j].text)
			}
			end = j + 1
		}
		b.WriteString(op.String())
		return end
	case w == "collate" && !qualified:
		n := r.next(i)
		if r.word(n) == "pg_catalog" && r.is(r.next(n), ".") {
			return r.next(r.next(n))
		}
		if n < len(r.toks) && (r.toks[n].text == `"C"` || r.toks[n].text == `"POSIX"` || r.toks[n].text == `"default"`) {
			return n
		}
	case w == "pg_catalog" && !qualified && r.is(r.next(i), "."):
		name := r.word(r.next(r.next(i)))
		j := r.next(r.next(i))
		switch {
		case facePg[name]:
			b.WriteString(FaceDB + ".pg." + name)
			return j
		case castTypes[name] != "" && r.is(r.prev(i), "::"):
			b.WriteString(castTypes[name])
			return j
		case name != "" && (r.is(r.next(j), "(") || r.is(r.prev(i), "::")):
			return r.next(i) // drop "pg_catalog." before DuckDB's function or type
		}
	case w == "information_schema" && !qualified && r.is(r.next(i), "."):
		j := r.next(r.next(i))
		if name := r.word(j); faceInfo[name] {
			b.WriteString(FaceDB + ".info." + name)
			return j
		}
	case w != "" && !qualified && !r.is(r.next(i), "."):
		// A cast: x::regclass, or CAST(x AS regclass) (after AS only the
		// reg* types, which are no alias, and oid right before ")").
		asCast := r.is(r.prev(i), "as") && (strings.HasPrefix(w, "reg") || r.is(r.next(i), ")"))
		if castTypes[w] != "" && (r.is(r.prev(i), "::") || asCast) {
			b.WriteString(castTypes[w])
			return i
		}
		if f, ok := renamedFuncs[w]; ok && r.is(r.next(i), "(") {
			b.WriteString(f)
			return i
		}
		if userWords[w] && !r.is(r.next(i), "(") && !r.is(r.prev(i), "as") {
			b.WriteString(FaceDB + `.pg."current_user"(` + sqlQuote(r.user) + ")")
			return i
		}
		if facePg[w] && (strings.HasPrefix(w, "pg_") || r.is(r.next(i), "(")) && !r.is(r.prev(i), "as") {
			b.WriteString(FaceDB + ".pg." + w)
			return i
		}
	}
	b.WriteString(t.text)
	return i
}

// closing returns the index of the ")" that closes the "(" at i (-1: none).
func (r *rewriter) closing(i int) int {
	depth := 0
	for j := i; j < len(r.toks); j++ {
		switch r.toks[j].text {
		case "(":
			depth++
		case ")":
			if depth--; depth == 0 {
				return j
			}
		}
	}
	return -1
}

// fromFunction rewrites a FROM item that is a function with a bare alias,
// which Postgres makes a one-column relation named like the alias (as
// Grafana's schema queries write them): generate_series(...) AS i →
// generate_series(...) AS i(i), and a scalar function, string_to_array(...)
// s → (SELECT string_to_array(...)) AS s(s). ok is false when the item does
// not have that form.
func (r *rewriter) fromFunction(b *strings.Builder, i int, scalar bool) (int, bool) {
	end := r.closing(r.next(i))
	if end < 0 {
		return 0, false
	}
	a := r.next(end)
	if r.word(a) == "as" {
		a = r.next(a)
	}
	alias := r.word(a)
	if alias == "" || r.is(r.next(a), "(") || sqlKeywords[alias] {
		return 0, false
	}
	var call strings.Builder
	call.WriteString(r.toks[i].text)
	for k := i + 1; k <= end; k++ {
		k = r.one(&call, k)
	}
	if scalar {
		b.WriteString("(SELECT " + call.String() + ")")
	} else {
		b.WriteString(call.String())
	}
	b.WriteString(" AS " + alias + "(" + alias + ")")
	return a, true
}

// sqlKeywords may follow a FROM item; they are no alias.
var sqlKeywords = map[string]bool{"where": true, "join": true, "left": true, "right": true, "inner": true, "cross": true,
	"full": true, "on": true, "group": true, "order": true, "limit": true, "union": true, "natural": true, "using": true,
	"having": true, "window": true, "offset": true, "except": true, "intersect": true, "with": true}

// show answers SHOW name (and SHOW TRANSACTION ISOLATION LEVEL) for the
// parameters of pgSettings as a SELECT of its value, named as Postgres
// names the column.
func (r *rewriter) show() (string, bool) {
	i := r.next(-1)
	if r.word(i) != "show" {
		return "", false
	}
	var words []string
	for j := r.next(i); j < len(r.toks) && !r.is(j, ";"); j = r.next(j) {
		if r.word(j) == "" {
			return "", false
		}
		words = append(words, r.word(j))
	}
	name := strings.Join(words, "_")
	if name == "transaction_isolation_level" {
		name = "transaction_isolation"
	}
	v, ok := pgSettings[name]
	if !ok {
		return "", false
	}
	return "SELECT " + sqlQuote(v) + " AS " + sqlIdentQuote(name), true
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqlIdentQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

var (
	callName = regexp.MustCompile(`^(?:(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]*")\.)*(?:"([^"]+)"|([A-Za-z_][A-Za-z0-9_$]*))\(.*\)(?:_[0-9]+)?$`)
	castName = regexp.MustCompile(`^CAST\((.*) AS [^()]*\)$`)
	plainID  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
)

// pgColumnName names a result column as Postgres would where DuckDB named
// it after the expression: a function call by the function (count(*) is
// count, not count_star()), a cast by what it casts, a literal or other
// expression ?column?. Names that are not DuckDB's expression text (an
// alias, a column) stay as they are.
func pgColumnName(name string) string {
	if m := castName.FindStringSubmatch(name); m != nil {
		if inner := pgColumnName(m[1]); inner != m[1] || plainID.MatchString(inner) {
			return inner
		}
		return "?column?"
	}
	if m := callName.FindStringSubmatch(name); m != nil {
		f := m[1] + m[2]
		switch f {
		case "count_star":
			return "count"
		case "current_user":
			return "current_user"
		}
		return f
	}
	if name != "" && (name[0] == '\'' || name[0] == '(' || isDigit(name[0])) {
		return "?column?"
	}
	return name
}
