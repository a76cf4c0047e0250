package pgwire

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// segment is a piece of SQL text as scan sees it.
type segment struct {
	kind  segKind
	text  string
	param int // for segParam: n of $n
}

type segKind int

const (
	segCode    segKind = iota // keywords, identifiers, operators, numbers, whitespace
	segString                 // '...', E'...', $tag$...$tag$ and "quoted identifiers"
	segComment                // -- ... and /* ... */
	segParam                  // $n
)

// scan splits SQL text into code, literals, comments and $n parameters,
// following DuckDB's (Postgres's) lexical rules: ” inside quotes, backslash
// escapes in E'...' strings only, nested /* */ comments, dollar quoting, and
// $n only where it does not continue an identifier (a$1 is a name).
func scan(sql string) ([]segment, error) {
	var segs []segment
	code := 0 // start of the pending code segment
	flush := func(end int) {
		if end > code {
			segs = append(segs, segment{kind: segCode, text: sql[code:end]})
		}
	}
	add := func(kind segKind, start, end, param int) {
		flush(start)
		segs = append(segs, segment{kind: kind, text: sql[start:end], param: param})
		code = end
	}
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql)
			} else {
				end += i
			}
			add(segComment, i, end, 0)
			i = end
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			depth, j := 1, i+2
			for j < len(sql) && depth > 0 {
				switch {
				case strings.HasPrefix(sql[j:], "/*"):
					depth, j = depth+1, j+2
				case strings.HasPrefix(sql[j:], "*/"):
					depth, j = depth-1, j+2
				default:
					j++
				}
			}
			if depth > 0 {
				return nil, errors.New("unterminated /* comment")
			}
			add(segComment, i, j, 0)
			i = j
		case c == '\'' || c == '"':
			escapes := c == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i == 1 || !identChar(sql[i-2]))
			j := i + 1
			for {
				if j >= len(sql) {
					if c == '"' {
						return nil, errors.New("unterminated quoted identifier")
					}
					return nil, errors.New("unterminated quoted string")
				}
				if escapes && sql[j] == '\\' {
					j += 2
					continue
				}
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			add(segString, i, j+1, 0)
			i = j + 1
		case c == '$' && (i == 0 || !identChar(sql[i-1])):
			j := i + 1
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			if j > i+1 {
				n, err := strconv.Atoi(sql[i+1 : j])
				if err != nil || n < 1 || n > 65535 {
					return nil, fmt.Errorf("invalid parameter %s", sql[i:j])
				}
				add(segParam, i, j, n)
				i = j
				continue
			}
			// Dollar quoting: $tag$ ... $tag$, tag empty or an identifier.
			j = i + 1
			for j < len(sql) && identChar(sql[j]) && sql[j] != '$' {
				j++
			}
			if j < len(sql) && sql[j] == '$' && (j == i+1 || !isDigit(sql[i+1])) {
				tag := sql[i : j+1]
				end := strings.Index(sql[j+1:], tag)
				if end < 0 {
					return nil, errors.New("unterminated dollar-quoted string")
				}
				end += j + 1 + len(tag)
				add(segString, i, end, 0)
				i = end
				continue
			}
			i++
		case identChar(c):
			for i < len(sql) && identChar(sql[i]) {
				i++
			}
		default:
			i++
		}
	}
	flush(len(sql))
	return segs, nil
}

func identChar(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// statementInfo is what the server needs to know about a SQL text before
// running it.
type statementInfo struct {
	segs    []segment
	nParams int      // highest $n
	words   []string // the first three words, upper-cased
	empty   bool     // only whitespace, comments and semicolons
}

func analyze(sql string) (statementInfo, error) {
	segs, err := scan(sql)
	if err != nil {
		return statementInfo{}, err
	}
	info := statementInfo{segs: segs, empty: true}
	for _, s := range segs {
		switch s.kind {
		case segParam:
			info.nParams = max(info.nParams, s.param)
			info.empty = false
		case segString:
			info.empty = false
		case segCode:
			if strings.Trim(s.text, " \t\r\n\f;") != "" {
				info.empty = false
			}
			if len(info.words) < 3 {
				for _, w := range strings.FieldsFunc(s.text, func(r rune) bool { return r > 0x7f || !identChar(byte(r)) }) {
					if len(info.words) < 3 {
						info.words = append(info.words, strings.ToUpper(w))
					}
				}
			}
		}
	}
	return info, nil
}

// bind replaces each $n with lits[n-1].
func (info statementInfo) bind(lits []string) string {
	var b strings.Builder
	for _, s := range info.segs {
		if s.kind == segParam {
			b.WriteString(lits[s.param-1])
		} else {
			b.WriteString(s.text)
		}
	}
	return b.String()
}

// trimmed is bind without trailing comments, semicolons and whitespace,
// so the text can be wrapped in a subquery.
func (info statementInfo) trimmed(lits []string) string {
	last := -1
	for i, s := range info.segs {
		if s.kind != segComment && (s.kind != segCode || strings.Trim(s.text, " \t\r\n\f;") != "") {
			last = i
		}
	}
	kept := statementInfo{segs: append([]segment(nil), info.segs[:last+1]...)}
	if last >= 0 && kept.segs[last].kind == segCode {
		kept.segs[last].text = strings.TrimRight(kept.segs[last].text, " \t\r\n\f;")
	}
	return kept.bind(lits)
}

// castFor is the DuckDB type a parameter declared with a Postgres type is
// cast to. Parameters of other types (text, unknown) stay untyped string
// literals, which DuckDB casts implicitly to what the context needs
// (WHERE n = '5' compares numbers).
var castFor = map[uint32]string{
	oidBool:        "BOOLEAN",
	oidInt2:        "SMALLINT",
	oidInt4:        "INTEGER",
	oidInt8:        "BIGINT",
	oidFloat4:      "FLOAT",
	oidFloat8:      "DOUBLE",
	oidDate:        "DATE",
	oidTime:        "TIME",
	oidTimestamp:   "TIMESTAMP",
	oidTimestampTZ: "TIMESTAMPTZ",
	oidJSON:        "JSON",
	oidJSONB:       "JSON",
	oidUUID:        "UUID",
	oidInterval:    "INTERVAL",
	oidBytea:       "BLOB",
	oidNumeric:     "DECIMAL",
}

// paramLiteral turns one Bind parameter into a SQL literal: a quoted string
// (” doubled; DuckDB has no backslash escapes in plain strings), cast to
// the declared type when there is one. A quoted literal followed by ::TYPE
// is one operand wherever it lands, so a value cannot change the
// statement's structure.
func paramLiteral(m *pgtype.Map, oid uint32, format int16, val []byte) (string, error) {
	cast := castFor[oid]
	if val == nil {
		if cast == "" || oid == oidNumeric {
			return "NULL", nil
		}
		return "NULL::" + cast, nil
	}
	var text string
	switch format {
	case pgtype.TextFormatCode:
		text = string(val)
	case pgtype.BinaryFormatCode:
		var err error
		if text, err = textFromBinary(m, val, oid); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("unknown parameter format code %d", format)
	}
	if !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 {
		return "", errors.New("parameter value is not valid UTF-8 text (or contains a NUL byte)")
	}
	switch oid {
	case oidBytea:
		var b []byte
		if err := m.Scan(oidBytea, pgtype.TextFormatCode, []byte(text), &b); err != nil {
			return "", fmt.Errorf("invalid bytea parameter: %w", err)
		}
		return "'" + blobEscape(b) + "'::BLOB", nil
	case oidNumeric:
		cast = numericCast(text)
	}
	lit := "'" + strings.ReplaceAll(text, "'", "''") + "'"
	if cast != "" {
		lit += "::" + cast
	}
	return lit, nil
}

// numericCast picks a DECIMAL wide enough for a numeric parameter's text,
// or DOUBLE when it does not fit DuckDB's 38 digits (or is NaN, ...).
func numericCast(text string) string {
	t := strings.TrimLeft(text, "+-")
	intPart, frac, _ := strings.Cut(t, ".")
	if intPart == "" && frac == "" || strings.Trim(intPart+frac, "0123456789") != "" {
		return "DOUBLE"
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart)+len(frac) > 38 {
		return "DOUBLE"
	}
	return fmt.Sprintf("DECIMAL(38,%d)", len(frac))
}

// blobEscape writes bytes as DuckDB's BLOB string syntax: \xHH per byte.
func blobEscape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		s.WriteString(`\x`)
		s.WriteString(hex.EncodeToString([]byte{c}))
	}
	return s.String()
}
