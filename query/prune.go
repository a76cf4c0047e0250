package query

// File pruning: before a statement runs, its WHERE clauses are read (with
// DuckDB's own parser, through json_serialize_sql) to find, for each table
// it reads, bounds on the time column and on the Hive partition columns;
// a file whose stats or path lie outside them cannot hold a row the
// statement needs and is not handed to DuckDB.
//
// Everything here is conservative: the one unforgivable mistake is to drop
// a file the statement needs, so whatever is not understood keeps files.
//
//   - Bounds come only from a SELECT whose FROM is exactly the table (no
//     join, no sample, no column aliases), from the top-level AND conjuncts
//     of its WHERE that compare a bare column with a constant (=, <, <=, >,
//     >=, BETWEEN, IN list). Other conjuncts are ignored: dropping a
//     conjunct of an AND only widens what is kept. Any other reference to
//     the table (a join, a WHERE-less scan) keeps all its files, and a file
//     is kept if any reference of the table keeps it.
//   - A constant is evaluated by DuckDB on the same connection, only when
//     its expression tree holds nothing but literals, casts and a short
//     allow-list of functions (see constFuncs), and only when casting it
//     to the column's type is exactly what the comparison does (or, for a
//     few lossy casts such as TIMESTAMP to DATE, with inclusive bounds,
//     which the cast's rounding cannot get wrong).
//   - Expressions of the current time (now(), current_date...) are
//     evaluated before the statement starts, so their value then is at most
//     the statement's: they give lower bounds only, and only through
//     operations that do not decrease with time (+, - of a constant,
//     date_trunc, casts between time types).
//   - Statements read tables in ways the parse tree does not show through
//     table functions (query_table, query, table macros) and SUMMARIZE:
//     any table function but a few file readers and generators, or any
//     SHOW/DESCRIBE/SUMMARIZE, disables pruning for the whole statement.
//   - Files of the dt (DATE) and hour (INTEGER) partitions hold rows whose
//     time column has that UTC date and hour (the sink writes them so), so
//     bounds on the time column also prune by path when stats are missing.

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TableInfo is what pruning needs to know about one table.
type TableInfo struct {
	// TimeColumn is the table's time column (TIMESTAMP WITH TIME ZONE in
	// DuckDB), "" if none.
	TimeColumn string
	// PartitionColumns are the Hive partition columns present in file
	// paths, name → DuckDB type ("DATE" for dt, "INTEGER" for hour, else
	// VARCHAR, BIGINT, INTEGER, BOOLEAN or DATE). Other types never prune.
	PartitionColumns map[string]string
}

// FileStats is what the manifest knows about one file.
type FileStats struct {
	// MinTime and MaxTime bound the file's time column values; nil: unknown.
	MinTime, MaxTime *time.Time
	// Part holds the Hive partition values as written in the path (dt
	// "2026-12-03", hour "09", region "eu"), %XX-escaped;
	// "__HIVE_DEFAULT_PARTITION__" stands for NULL.
	Part map[string]string
}

// Filter is what one statement conservatively requires of the rows it
// reads from one table: a file is needed if, for some reference to the
// table, it may hold a row within all of that reference's bounds. The zero
// Filter keeps every file.
type Filter struct {
	alts         [][]colBound // one per reference, each non-empty; none: keep all
	dayCol, hour string       // dt (DATE) and hour (INTEGER) partition columns, "" if none
}

// Keep reports whether a file may hold rows the statement needs; it is
// true whenever that cannot be ruled out (unknown stats, unparsable path
// values...).
func (f Filter) Keep(fs FileStats) bool {
	if len(f.alts) == 0 {
		return true
	}
	for _, alt := range f.alts {
		if f.altKeeps(alt, fs) {
			return true
		}
	}
	return false
}

// Pruning reports whether f can drop any file at all (false for the zero
// Filter).
func (f Filter) Pruning() bool { return len(f.alts) > 0 }

func (f Filter) altKeeps(alt []colBound, fs FileStats) bool {
	for _, b := range alt {
		if b.col == "" {
			lo, hi, ok := f.timeRange(fs)
			if ok && !b.overlaps(lo, hi) {
				return false
			}
			continue
		}
		raw, ok := partValue(fs.Part, b.col)
		if !ok {
			continue
		}
		if raw == hiveNull {
			return false // NULL satisfies no comparison
		}
		if v, ok := parsePart(raw, b.kind); ok && !b.overlaps(&v, &v) {
			return false
		}
	}
	return true
}

const hiveNull = "__HIVE_DEFAULT_PARTITION__"

// timeRange returns the range of a file's time column values, in
// microseconds since the epoch, as the intersection of its stats and of
// what its dt/hour path says; nil ends are unbounded. ok is false when
// these disagree (then nothing is assumed).
func (f Filter) timeRange(fs FileStats) (lo, hi *valKey, ok bool) {
	if fs.MinTime != nil {
		lo = &valKey{n: fs.MinTime.UnixMicro()}
	}
	if fs.MaxTime != nil {
		n := fs.MaxTime.UnixMicro()
		if fs.MaxTime.Nanosecond()%1000 != 0 {
			n++ // round up
		}
		hi = &valKey{n: n}
	}
	if plo, phi, ok := f.pathRange(fs); ok {
		if lo == nil || lo.n < plo {
			lo = &valKey{n: plo}
		}
		if hi == nil || hi.n > phi {
			hi = &valKey{n: phi}
		}
	}
	return lo, hi, lo == nil || hi == nil || lo.n <= hi.n
}

// pathRange is the time range [lo, hi] (µs) implied by the dt and hour of
// a file's path.
func (f Filter) pathRange(fs FileStats) (lo, hi int64, ok bool) {
	const day, hour = 86400 * 1e6, 3600 * 1e6
	if f.dayCol == "" {
		return 0, 0, false
	}
	raw, ok := partValue(fs.Part, f.dayCol)
	if !ok || raw == hiveNull {
		return 0, 0, false
	}
	d, ok := parsePart(raw, kindDate)
	if !ok || d.n < -1e6 || d.n > 1e6 { // keep clear of overflow
		return 0, 0, false
	}
	lo, hi = d.n*day, d.n*day+day-1
	if f.hour == "" {
		return lo, hi, true
	}
	if raw, ok := partValue(fs.Part, f.hour); ok && raw != hiveNull {
		if h, ok := parsePart(raw, kindInt); ok && h.n >= 0 && h.n < 24 {
			lo += h.n * hour
			hi = lo + hour - 1
		}
	}
	return lo, hi, true
}

// partValue looks a partition value up by column name, exactly first and
// then case-insensitively (DuckDB identifiers are).
func partValue(part map[string]string, col string) (string, bool) {
	if v, ok := part[col]; ok {
		return v, true
	}
	for k, v := range part {
		if strings.EqualFold(k, col) {
			return v, true
		}
	}
	return "", false
}

// parsePart parses a path value as DuckDB reads it for the column's type;
// ok is false for anything it is not sure of.
func parsePart(raw string, k valKind) (valKey, bool) {
	s, ok := unescapeHive(raw)
	if !ok {
		return valKey{}, false
	}
	switch k {
	case kindDate:
		t, err := time.Parse("2006-01-02", s)
		if err != nil || len(s) != 10 {
			return valKey{}, false
		}
		return valKey{n: t.Unix() / 86400}, true
	case kindInt, kindInt32:
		n, err := strconv.ParseInt(s, 10, map[valKind]int{kindInt: 64, kindInt32: 32}[k])
		return valKey{n: n}, err == nil
	case kindBool:
		b := strings.ToLower(s)
		return valKey{n: map[string]int64{"true": 1}[b]}, b == "true" || b == "false"
	case kindString:
		return valKey{s: s}, true
	}
	return valKey{}, false
}

// unescapeHive decodes %XX escapes; a stray % makes the value unknown.
func unescapeHive(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), true
}

// valKind is how a column's values are keyed: times as microseconds since the
// epoch, dates as days, booleans as 0/1, integers as themselves.
type valKind int

const (
	kindNone valKind = iota
	kindTime
	kindDate
	kindInt
	kindInt32
	kindBool
	kindString
)

func partitionKind(typ string) valKind {
	switch strings.ToUpper(strings.TrimSpace(typ)) {
	case "DATE":
		return kindDate
	case "INTEGER", "INT", "INT4":
		return kindInt32
	case "BIGINT", "INT8":
		return kindInt
	case "BOOLEAN", "BOOL":
		return kindBool
	case "VARCHAR", "TEXT", "STRING":
		return kindString
	}
	return kindNone
}

type valKey struct {
	n int64
	s string
}

func (k valKind) cmp(a, b valKey) int {
	if k == kindString {
		return strings.Compare(a.s, b.s)
	}
	return cmp.Compare(a.n, b.n)
}

// colBound says a column's value lies in one of spans.
type colBound struct {
	col   string // partition column; "" for the time column
	kind  valKind
	spans []valSpan
}

// valSpan is an interval; nil ends are unbounded.
type valSpan struct {
	lo, hi       *valKey
	loExc, hiExc bool
}

// overlaps reports whether some span may meet [lo, hi] (nil: unbounded).
func (b colBound) overlaps(lo, hi *valKey) bool {
	for _, s := range b.spans {
		if (s.lo == nil || hi == nil || b.kind.cmp(*s.lo, *hi) < 0 || b.kind.cmp(*s.lo, *hi) == 0 && !s.loExc) &&
			(s.hi == nil || lo == nil || b.kind.cmp(*lo, *s.hi) < 0 || b.kind.cmp(*lo, *s.hi) == 0 && !s.hiExc) {
			return true
		}
	}
	return false
}

// filtersFor parses sqlText with DuckDB (json_serialize_sql on conn, the
// text passed as a parameter) and returns a Filter for each table of
// tables (keys: lower-case names) that the statement reads with bounds
// (see the comment at the top of this file). A table absent from the
// result keeps all its files, as does every table when the statement is
// not one json_serialize_sql supports (EXPLAIN, PRAGMA...) or does not
// parse. Constants are evaluated on conn. The error is only ever that of
// the connection or ctx: a statement the user got wrong prunes nothing,
// and fails later as it would have.
func filtersFor(ctx context.Context, conn *sql.Conn, sqlText string, tables map[string]TableInfo) (map[string]Filter, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	text, err := serializeSQL(ctx, conn, sqlText)
	if err != nil {
		return nil, connFailure(ctx, err)
	}
	tree, _ := decodeJSON(text).(map[string]any)
	if tree == nil || tree["error"] != false {
		return nil, nil
	}
	w := &pruneWalker{ctx: ctx, conn: conn, tables: tables, ctes: map[string]bool{}, templates: map[valKind]string{}}
	w.visit(tree["statements"])
	if w.bail {
		return nil, nil
	}
	return w.filters()
}

// connFailure returns the error to report for a failed query of
// filtersFor's own: nil unless ctx is done or the connection broke.
func connFailure(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = errors.Join(err, cerr)
	} else if cerr == nil && !errors.Is(err, driver.ErrBadConn) && !errors.Is(err, sql.ErrConnDone) {
		return nil
	}
	return fmt.Errorf("cannot read the statement's predicates: %w", err)
}

// serializeSQL is DuckDB's parse tree of sqlText as JSON text
// (json_serialize_sql; a statement it cannot serialize is {"error": true}).
func serializeSQL(ctx context.Context, conn *sql.Conn, sqlText string) (string, error) {
	var text string
	err := conn.QueryRowContext(ctx, "SELECT CAST(json_serialize_sql(CAST(? AS VARCHAR)) AS VARCHAR)", sqlText).Scan(&text)
	return text, err
}

func decodeJSON(text string) any {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber() // numbers go back to DuckDB unchanged (query_location is a uint64)
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

// pruneWalker collects the references to tables of a parse tree, and what may
// make pruning unsafe.
type pruneWalker struct {
	ctx    context.Context
	conn   *sql.Conn
	tables map[string]TableInfo
	refs   []pruneRef
	ctes   map[string]bool // CTE names
	others []string        // names of base tables that are not ours
	// bail: the statement may read a table in a way not seen here.
	bail bool
	// For current_date/current_timestamp, which parse as column names and
	// are columns if one of that name is in scope: foreign (a source whose
	// column names are unknown: PIVOT, a table function), lambda, and the
	// strings mentioning them against the column references that do.
	foreign, lambda     bool
	curStrings, curRefs int
	curState            int // 0 unknown, 1 functions, 2 maybe columns
	templates           map[valKind]string
	err                 error
}

// pruneRef is one reference to a table of ours; sel is the SELECT whose
// FROM is exactly that table, nil if the reference is anywhere else.
type pruneRef struct {
	name      string
	from, sel map[string]any
}

const selKey = "\x00select" // marks a BASE_TABLE with the SELECT_NODE it is the FROM of

func (w *pruneWalker) visit(v any) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			w.visit(e)
		}
	case string:
		if mentionsCurrent(x) {
			w.curStrings++
		}
	case map[string]any:
		w.node(x)
		for k, e := range x {
			if k != selKey {
				w.visit(e)
			}
		}
	}
}

func mentionsCurrent(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "current_date") || strings.Contains(s, "current_timestamp")
}

// readerFuncs are the table functions that cannot read a table's view;
// genFuncs those of them whose column names are known.
var (
	readerFuncs = nameSet("range", "generate_series", "unnest", "read_parquet", "parquet_scan",
		"read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_ndjson",
		"read_ndjson_auto", "read_text", "read_blob", "glob")
	genFuncs = nameSet("range", "generate_series", "unnest")
)

func (w *pruneWalker) node(x map[string]any) {
	if class, expr := x["class"]; expr {
		switch {
		case class == "LAMBDA":
			w.lambda = true
		case isCurrent(x):
			w.curRefs++
		}
		return
	}
	if cm, ok := x["cte_map"].(map[string]any); ok {
		for _, e := range jlist(cm["map"]) {
			w.ctes[strings.ToLower(jstr(e, "key"))] = true
		}
	}
	switch x["type"] {
	case "SELECT_NODE":
		if ft, ok := x["from_table"].(map[string]any); ok && ft["type"] == "BASE_TABLE" {
			ft[selKey] = x
		}
	case "BASE_TABLE":
		name := strings.ToLower(jstr(x, "table_name"))
		if _, ours := w.tables[name]; !ours {
			w.others = append(w.others, name)
			return
		}
		sel, _ := x[selKey].(map[string]any)
		if schema := strings.ToLower(jstr(x, "schema_name")); jstr(x, "catalog_name") != "" || schema != "" && schema != "main" {
			sel = nil // temp.logs, memory.main.logs...: no bounds, but still the table
		}
		w.refs = append(w.refs, pruneRef{name: name, from: x, sel: sel})
	case "TABLE_FUNCTION":
		name := strings.ToLower(jstr(jmap(x["function"]), "function_name"))
		w.bail = w.bail || !readerFuncs[name] // query_table('logs'), histogram(logs, ts)...
		w.foreign = w.foreign || !genFuncs[name]
	case "PIVOT":
		w.foreign = true
	case "SHOW_REF", "COLUMN_DATA", "DELIM_GET", "BOUND_TABLE_REF":
		w.bail = true // SUMMARIZE reads all of a table
	}
}

// filters turns the references into Filters: a table with a reference
// without bounds gets none (keep all).
func (w *pruneWalker) filters() (map[string]Filter, error) {
	out := map[string]Filter{}
	keepAll := map[string]bool{}
	for _, r := range w.refs {
		if keepAll[r.name] {
			continue
		}
		alt := w.refBounds(r)
		if w.err != nil {
			return nil, w.err
		}
		if len(alt) == 0 {
			keepAll[r.name] = true
			delete(out, r.name)
			continue
		}
		f := out[r.name]
		f.dayCol, f.hour = pathColumns(w.tables[r.name])
		f.alts = append(f.alts, alt)
		out[r.name] = f
	}
	return out, nil
}

// pathColumns returns the dt and hour partition columns whose values are
// the UTC date and hour of the time column.
func pathColumns(info TableInfo) (day, hour string) {
	if info.TimeColumn == "" {
		return "", ""
	}
	for name, typ := range info.PartitionColumns {
		switch k := partitionKind(typ); {
		case strings.EqualFold(name, "dt") && k == kindDate:
			day = name
		case strings.EqualFold(name, "hour") && (k == kindInt32 || k == kindInt):
			hour = name
		}
	}
	return day, hour
}

// refBounds returns the bounds of one reference, nil if it needs all rows.
func (w *pruneWalker) refBounds(r pruneRef) []colBound {
	sel, from := r.sel, r.from
	if sel == nil || sel["sample"] != nil || from["sample"] != nil || from["at_clause"] != nil ||
		len(jlist(from["column_name_alias"])) > 0 { // logs t(a, ts) renames columns
		return nil
	}
	where := jmap(sel["where_clause"])
	if where == nil {
		return nil
	}
	sc := whereScope{info: w.tables[r.name], qual: strings.ToLower(jstr(from, "alias")), aliases: map[string]bool{}}
	if sc.qual == "" {
		sc.qual = r.name
	}
	for _, e := range jlist(sel["select_list"]) {
		sc.aliases[strings.ToLower(jstr(e, "alias"))] = true
	}
	var out []colBound
	for _, c := range andConjuncts(where) {
		if b, ok := w.conjunct(sc, c); ok {
			out = append(out, b)
		}
		if w.err != nil {
			return nil
		}
	}
	return out
}

func andConjuncts(e map[string]any) []map[string]any {
	if e["type"] != "CONJUNCTION_AND" {
		return []map[string]any{e}
	}
	var out []map[string]any
	for _, c := range jlist(e["children"]) {
		if m := jmap(c); m != nil {
			out = append(out, andConjuncts(m)...)
		}
	}
	return out
}

// whereScope is what a column reference of a WHERE may name.
type whereScope struct {
	info    TableInfo
	qual    string          // the table's alias, or its name
	aliases map[string]bool // select list aliases (a WHERE may use them)
}

type pruneCol struct {
	part string // partition column name; "" for the time column
	kind valKind
}

// column returns the column of ours a bare (or table-qualified) column
// reference names.
func (sc whereScope) column(e map[string]any) (pruneCol, bool) {
	names := jlist(e["column_names"])
	if e["class"] != "COLUMN_REF" || len(names) == 0 {
		return pruneCol{}, false
	}
	if q, _ := names[0].(string); len(names) == 2 && strings.ToLower(q) == sc.qual {
		names = names[1:]
	}
	name, _ := names[0].(string)
	if len(names) != 1 || sc.aliases[strings.ToLower(name)] {
		return pruneCol{}, false
	}
	if sc.info.TimeColumn != "" && strings.EqualFold(name, sc.info.TimeColumn) {
		return pruneCol{kind: kindTime}, true
	}
	for p, typ := range sc.info.PartitionColumns {
		if k := partitionKind(typ); strings.EqualFold(p, name) && k != kindNone {
			return pruneCol{part: p, kind: k}, true
		}
	}
	return pruneCol{}, false
}

var flippedCompare = map[string]string{
	"COMPARE_EQUAL":                "COMPARE_EQUAL",
	"COMPARE_LESSTHAN":             "COMPARE_GREATERTHAN",
	"COMPARE_GREATERTHAN":          "COMPARE_LESSTHAN",
	"COMPARE_LESSTHANOREQUALTO":    "COMPARE_GREATERTHANOREQUALTO",
	"COMPARE_GREATERTHANOREQUALTO": "COMPARE_LESSTHANOREQUALTO",
}

// conjunct returns the bound one conjunct puts on a column, if any.
func (w *pruneWalker) conjunct(sc whereScope, c map[string]any) (colBound, bool) {
	var col pruneCol
	var spans []valSpan
	switch t := jstr(c, "type"); {
	case flippedCompare[t] != "":
		l, r := jmap(c["left"]), jmap(c["right"])
		lcol, lok := sc.column(l)
		rcol, rok := sc.column(r)
		switch {
		case lok && !rok:
			col, spans = lcol, w.spans(lcol, t, r)
		case rok && !lok:
			col, spans = rcol, w.spans(rcol, flippedCompare[t], l)
		}
	case t == "COMPARE_BETWEEN":
		var ok bool
		if col, ok = sc.column(jmap(c["input"])); ok {
			lo := w.spans(col, "COMPARE_GREATERTHANOREQUALTO", jmap(c["lower"]))
			hi := w.spans(col, "COMPARE_LESSTHANOREQUALTO", jmap(c["upper"]))
			if s := append(lo, hi...); len(s) > 0 {
				spans = []valSpan{{lo: s[0].lo, hi: s[len(s)-1].hi}}
			}
		}
	case t == "COMPARE_IN":
		items := jlist(c["children"])
		var ok bool
		if len(items) < 2 {
			break
		}
		if col, ok = sc.column(jmap(items[0])); ok {
			for _, it := range items[1:] {
				s := w.spans(col, "COMPARE_EQUAL", jmap(it))
				if s == nil {
					return colBound{}, false // one unknown item: no bound
				}
				spans = append(spans, s...)
			}
		}
	}
	return colBound{col: col.part, kind: col.kind, spans: spans}, len(spans) > 0
}

// spans returns the spans "column op e" allows, nil if e is not a constant
// we can evaluate exactly enough.
func (w *pruneWalker) spans(col pruneCol, op string, e map[string]any) []valSpan {
	v, vol, exact, ok := w.value(col, e)
	if !ok {
		return nil
	}
	var s valSpan
	switch op {
	case "COMPARE_EQUAL":
		s.lo, s.hi = &v, &v
	case "COMPARE_LESSTHAN":
		s.hi, s.hiExc = &v, exact
	case "COMPARE_LESSTHANOREQUALTO":
		s.hi = &v
	case "COMPARE_GREATERTHAN":
		s.lo, s.loExc = &v, exact
	case "COMPARE_GREATERTHANOREQUALTO":
		s.lo = &v
	}
	if vol {
		s.hi, s.hiExc = nil, false // the statement's "now" is later than ours
	}
	if s.lo == nil && s.hi == nil {
		return nil
	}
	return []valSpan{s}
}

// value evaluates e as the comparison with col would see it. exact is
// false when the cast to the column's type may round (then the span must
// include its ends); vol when e depends on the current time.
func (w *pruneWalker) value(col pruneCol, e map[string]any) (v valKey, vol, exact, ok bool) {
	ci := classifyConst(e)
	if !ci.ok || !ci.mono || ci.cur && !w.currentIsFunction() {
		return valKey{}, false, false, false
	}
	v, typ, ok := w.eval(col.kind, e)
	if !ok {
		return valKey{}, false, false, false
	}
	lit := e["class"] == "CONSTANT" && jstr(jmap(jmap(e["value"])["type"]), "id") == "VARCHAR"
	exact, ok = castExact(col.kind, typ, lit)
	return v, ci.vol, exact, ok
}

// castExact tells whether casting a value of type typ to the column's type
// is what DuckDB's comparison does (exact), or is off by less than one
// unit of the column's type (!exact), or neither (!ok). String literals are
// cast to the other side's type by DuckDB, as here.
func castExact(k valKind, typ string, stringLiteral bool) (exact, ok bool) {
	typ = strings.ToUpper(typ)
	stamp := typ == "TIMESTAMP" || typ == "TIMESTAMP WITH TIME ZONE" || typ == "TIMESTAMP_S" || typ == "TIMESTAMP_MS"
	switch {
	case stringLiteral && typ == "VARCHAR", k == kindString && typ == "VARCHAR", k == kindBool && typ == "BOOLEAN":
		return true, true
	case k == kindTime:
		return stamp || typ == "DATE", stamp || typ == "DATE" || typ == "TIMESTAMP_NS"
	case k == kindDate:
		return typ == "DATE", typ == "DATE" || stamp || typ == "TIMESTAMP_NS"
	case k == kindInt || k == kindInt32:
		return true, integerTypes[typ]
	}
	return false, false
}

var integerTypes = nameSet("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
	"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")

// constKind describes an expression: ok if it is a constant we may
// evaluate; vol if it depends on the current time; mono if it does not
// decrease as time passes (always true when !vol); cur if it uses
// current_date or current_timestamp, which are columns when one of that
// name is in scope.
type constKind struct{ ok, vol, mono, cur bool }

// constFuncs are the functions a constant may use; nowFuncs those of them
// that read the current time.
var (
	constFuncs = nameSet("now", "current_timestamp", "get_current_timestamp", "transaction_timestamp",
		"current_date", "today", "date_trunc", "make_timestamp", "make_timestamptz", "make_date",
		"to_timestamp", "epoch_ms", "strptime", "trunc", "+", "-", "to_years", "to_months",
		"to_weeks", "to_days", "to_hours", "to_minutes", "to_seconds", "to_milliseconds",
		"to_microseconds", "to_centuries", "to_decades", "to_millennia")
	nowFuncs  = nameSet("now", "current_timestamp", "get_current_timestamp", "transaction_timestamp", "current_date", "today")
	timeCasts = nameSet("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_TZ", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
)

func classifyConst(e map[string]any) constKind {
	switch e["class"] {
	case "CONSTANT":
		return constKind{ok: true, mono: true}
	case "CAST":
		c := classifyConst(jmap(e["child"]))
		c.mono = c.mono && (!c.vol || timeCasts[jstr(jmap(e["cast_type"]), "id")])
		return c
	case "COLUMN_REF":
		if isCurrent(e) {
			return constKind{ok: true, vol: true, mono: true, cur: true}
		}
	case "FUNCTION":
		return classifyConstFunc(e)
	}
	return constKind{}
}

func classifyConstFunc(e map[string]any) constKind {
	name := strings.ToLower(jstr(e, "function_name"))
	if !constFuncs[name] || jstr(e, "schema") != "" || jstr(e, "catalog") != "" || e["filter"] != nil ||
		e["distinct"] == true || e["export_state"] == true || len(jlist(jmap(e["order_bys"])["orders"])) > 0 {
		return constKind{}
	}
	args := jlist(e["children"])
	if nowFuncs[name] {
		return constKind{ok: len(args) == 0, vol: true, mono: true}
	}
	c := constKind{ok: true, mono: true}
	parts := make([]constKind, len(args))
	for i, a := range args {
		p := classifyConst(jmap(a))
		parts[i] = p
		c.ok, c.vol, c.cur = c.ok && p.ok, c.vol || p.vol, c.cur || p.cur
		c.mono = c.mono && p.mono
	}
	switch {
	case !c.vol, name == "+":
	case name == "-" && len(args) == 2:
		c.mono = c.mono && !parts[1].vol
	case name == "date_trunc" && len(args) == 2:
		c.mono = c.mono && !parts[0].vol
	default:
		c.mono = false
	}
	return c
}

// isCurrent: a column reference current_date or current_timestamp.
func isCurrent(e map[string]any) bool {
	names := jlist(e["column_names"])
	if e["class"] != "COLUMN_REF" || len(names) != 1 {
		return false
	}
	n, _ := names[0].(string)
	return strings.EqualFold(n, "current_date") || strings.EqualFold(n, "current_timestamp")
}

// currentIsFunction reports whether current_date and current_timestamp
// are sure to mean the functions in this statement: no column of that name
// (nor a struct field, alias...) exists in the database or is mentioned by
// the statement, and every source of columns is known.
func (w *pruneWalker) currentIsFunction() bool {
	if w.curState == 0 {
		w.curState = 2
		known := !w.lambda && !w.foreign && w.curStrings == w.curRefs
		for _, name := range w.others {
			known = known && w.ctes[name]
		}
		var n int
		if known {
			err := w.conn.QueryRowContext(w.ctx, `SELECT count(*) FROM duckdb_columns()
				WHERE regexp_matches(lower(column_name || ' ' || data_type), 'current_(date|timestamp)')`).Scan(&n)
			if err != nil {
				w.fail(err)
			} else if n == 0 {
				w.curState = 1
			}
		}
	}
	return w.curState == 1
}

// evalSQL has, for each kind, a query whose NULLs are replaced by the
// expression: the value cast to the column's type as a key, and its type.
var evalSQL = map[valKind]string{
	kindTime:   "SELECT epoch_us(CAST(NULL AS TIMESTAMPTZ)), typeof(NULL)",
	kindDate:   "SELECT CAST(CAST(NULL AS DATE) - DATE '1970-01-01' AS BIGINT), typeof(NULL)",
	kindInt:    "SELECT CAST(NULL AS BIGINT), typeof(NULL)",
	kindInt32:  "SELECT CAST(NULL AS BIGINT), typeof(NULL)",
	kindBool:   "SELECT CAST(CAST(NULL AS BOOLEAN) AS BIGINT), typeof(NULL)",
	kindString: "SELECT CAST(NULL AS VARCHAR), typeof(NULL)",
}

// eval evaluates the constant e on the connection: its parse tree is put
// into evalSQL's, turned back into SQL by json_deserialize_sql and run.
// A NULL result is not ok: it may be a value our cast cannot express.
func (w *pruneWalker) eval(k valKind, e map[string]any) (valKey, string, bool) {
	tmpl, ok := w.templates[k]
	if !ok {
		var err error
		if tmpl, err = serializeSQL(w.ctx, w.conn, evalSQL[k]); err != nil {
			w.fail(err)
			return valKey{}, "", false
		}
		w.templates[k] = tmpl
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(replaceNulls(decodeJSON(tmpl), e)) != nil {
		return valKey{}, "", false
	}
	var text, typ string
	var n sql.NullInt64
	var s sql.NullString
	dest := any(&n)
	if k == kindString {
		dest = &s
	}
	err := w.conn.QueryRowContext(w.ctx, "SELECT json_deserialize_sql(CAST(? AS JSON))", buf.String()).Scan(&text)
	if err == nil {
		err = w.conn.QueryRowContext(w.ctx, text).Scan(dest, &typ)
	}
	if err != nil {
		w.fail(err)
		return valKey{}, "", false
	}
	return valKey{n: n.Int64, s: s.String}, typ, n.Valid || s.Valid
}

// replaceNulls returns v with every NULL constant replaced by e.
func replaceNulls(v any, e map[string]any) any {
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = replaceNulls(x[i], e)
		}
	case map[string]any:
		if x["class"] == "CONSTANT" && jmap(x["value"])["is_null"] == true {
			return e
		}
		for k := range x {
			x[k] = replaceNulls(x[k], e)
		}
	}
	return v
}

func (w *pruneWalker) fail(err error) {
	if w.err == nil {
		w.err = connFailure(w.ctx, err)
	}
}

func jmap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func jlist(v any) []any { l, _ := v.([]any); return l }

func jstr(v any, k string) string { s, _ := jmap(v)[k].(string); return s }

func nameSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
