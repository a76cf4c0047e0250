package pgwire

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-dev/sluice/query"
)

// COPY (query) TO STDOUT and cursors (DECLARE, FETCH, CLOSE) stream a
// result through query.Engine.Stream, without the engine's row limit: the
// result waits in DuckDB's storage, and the session holds one page of it.

// maxCursors bounds a session's open cursors: each holds one of the
// engine's query slots (--query-concurrency) until it is closed.
const maxCursors = 4

// copyOut is a parsed COPY ... TO STDOUT.
type copyOut struct {
	query     string
	csv       bool
	header    bool
	delimiter string
	null      string
}

// sig returns the significant tokens of sql (no whitespace or comments).
func sig(sql string) ([]token, error) {
	toks, err := tokens(sql)
	if err != nil {
		return nil, err
	}
	out := toks[:0]
	for _, t := range toks {
		if !t.space && t.text != ";" {
			out = append(out, t)
		}
	}
	return out, nil
}

func lower(t token) string {
	if t.ident {
		return strings.ToLower(t.text)
	}
	return t.text
}

// unquoteName returns a name token's name: unquoted names fold to lower
// case, as Postgres folds them.
func unquoteName(t token) string {
	if strings.HasPrefix(t.text, `"`) {
		return strings.ReplaceAll(strings.Trim(t.text, `"`), `""`, `"`)
	}
	return strings.ToLower(t.text)
}

// unquoteString returns a string literal's value ('...' only).
func unquoteString(t token) string {
	return strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(t.text, "'"), "'"), "''", "'")
}

// parseCopy parses COPY (query) TO STDOUT [WITH] [(FORMAT csv, HEADER,
// DELIMITER 'c', NULL 's')] and the older COPY ... TO STDOUT [CSV]
// [HEADER] [DELIMITER 'c'] [NULL 's']; COPY table TO STDOUT reads the
// whole table. ok is false for a statement that is not COPY.
func parseCopy(sql string) (c copyOut, ok bool, err error) {
	toks, err := sig(sql)
	if err != nil || len(toks) == 0 || lower(toks[0]) != "copy" {
		return c, false, err
	}
	i := 1
	switch {
	case i < len(toks) && toks[i].text == "(":
		depth, start := 0, i
		for ; i < len(toks); i++ {
			if toks[i].text == "(" {
				depth++
			} else if toks[i].text == ")" {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if i == len(toks) {
			return c, true, newError(codeSyntax, "COPY: unbalanced parentheses")
		}
		c.query = textBetween(sql, toks[start+1:i])
		i++
	default:
		j := i
		for j < len(toks) && (toks[j].ident || strings.HasPrefix(toks[j].text, `"`) || toks[j].text == ".") && lower(toks[j]) != "to" {
			j++
		}
		if j == i {
			return c, true, newError(codeSyntax, "COPY: expected (query) or a table name")
		}
		c.query = "SELECT * FROM " + textBetween(sql, toks[i:j])
		i = j
	}
	if i+1 >= len(toks) || lower(toks[i]) != "to" || lower(toks[i+1]) != "stdout" {
		return c, true, newError(codeNotSupported, "only COPY (query) TO STDOUT is supported (psql's \\copy ... to 'file' uses it): the server writes no files and reads none")
	}
	c.delimiter, c.null = "\t", `\N`
	for i += 2; i < len(toks); i++ {
		switch w := lower(toks[i]); w {
		case "with", "(", ")", ",", "true", "on", "1":
		case "format":
			if i+1 < len(toks) {
				i++
				switch lower(toks[i]) {
				case "csv":
					c.csv = true
				case "text":
				default:
					return c, true, newError(codeNotSupported, "COPY format "+toks[i].text+" is not supported: text or csv")
				}
			}
		case "csv":
			c.csv = true
		case "header":
			c.header = true
			if i+1 < len(toks) && (lower(toks[i+1]) == "false" || lower(toks[i+1]) == "off" || toks[i+1].text == "0") {
				c.header = false
				i++
			}
		case "delimiter", "null":
			if i+1 >= len(toks) || !toks[i+1].str {
				return c, true, newError(codeSyntax, "COPY: "+w+" needs a quoted string")
			}
			i++
			if w == "delimiter" {
				c.delimiter = unquoteString(toks[i])
			} else {
				c.null = unquoteString(toks[i])
			}
		case "binary":
			return c, true, newError(codeNotSupported, "COPY format binary is not supported: text or csv")
		default:
			return c, true, newError(codeNotSupported, "COPY option "+toks[i].text+" is not supported")
		}
	}
	if c.csv {
		if c.delimiter == "\t" {
			c.delimiter = ","
		}
		if c.null == `\N` {
			c.null = ""
		}
	}
	if len(c.delimiter) != 1 {
		return c, true, newError(codeInvalidParam, "COPY delimiter must be a single one-byte character")
	}
	return c, true, nil
}

// textBetween is the text of sql from the first of toks to the end of
// the last.
func textBetween(sql string, toks []token) string {
	if len(toks) == 0 {
		return ""
	}
	last := toks[len(toks)-1]
	return sql[toks[0].pos : last.pos+len(last.text)]
}

// copyOut runs a COPY ... TO STDOUT: CopyOutResponse, one CopyData per
// row, CopyDone, CommandComplete "COPY n".
func (s *session) copyOut(c copyOut) error {
	w := &copyWriter{s: s, c: c}
	err := s.running(func(ctx context.Context) error {
		_, err := s.srv.Engine.Stream(ctx, c.query, w.page)
		return err
	})
	if err != nil {
		return err
	}
	s.be.Send(&pgproto3.CopyDone{})
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte("COPY " + strconv.Itoa(w.n))})
	return nil
}

// copyWriter sends a COPY's pages as they come.
type copyWriter struct {
	s       *session
	c       copyOut
	started bool
	n       int    // rows sent
	line    []byte // reused
}

// page sends one page of rows, after CopyOutResponse and the header on the
// first.
func (w *copyWriter) page(p *query.Result) error {
	cols := columnsOf(p)
	if !w.started {
		w.started = true
		w.s.be.Send(&pgproto3.CopyOutResponse{OverallFormat: 0, ColumnFormatCodes: make([]uint16, len(cols))})
		if w.c.header {
			names := make([]any, len(cols))
			for i, col := range cols {
				names[i] = col.name
			}
			w.send(names, nil)
		}
	}
	for _, row := range p.Rows {
		w.send(row, cols)
		if w.n++; w.n%flushEvery == 0 {
			if w.s.flush(); w.s.ioErr != nil {
				return w.s.ioErr
			}
		}
	}
	return nil
}

// send sends one line: row's values rendered for cols (nil: row holds
// strings, the header).
func (w *copyWriter) send(row []any, cols []column) {
	w.line = w.line[:0]
	for i, v := range row {
		if i > 0 {
			w.line = append(w.line, w.c.delimiter...)
		}
		switch {
		case v == nil:
			w.line = append(w.line, w.c.null...)
		case cols == nil:
			w.line = w.c.appendValue(w.line, []byte(v.(string)))
		default:
			w.line = w.c.appendValue(w.line, textValue(v, cols[i]))
		}
	}
	// CopyData is encoded when sent, so the line may be reused after.
	w.s.be.Send(&pgproto3.CopyData{Data: append(w.line, '\n')})
}

// appendValue appends v escaped for the format: text escapes backslash,
// the delimiter and line breaks; csv quotes a value holding the delimiter,
// a quote, a line break, or nothing (an empty string, not NULL).
func (c copyOut) appendValue(b, v []byte) []byte {
	if c.csv {
		if len(v) == 0 || strings.ContainsAny(string(v), c.delimiter+"\"\r\n") || string(v) == c.null {
			return append(append(b, '"'), append([]byte(strings.ReplaceAll(string(v), `"`, `""`)), '"')...)
		}
		return append(b, v...)
	}
	for _, ch := range v {
		switch {
		case ch == '\\':
			b = append(b, '\\', '\\')
		case ch == '\n':
			b = append(b, '\\', 'n')
		case ch == '\r':
			b = append(b, '\\', 'r')
		case ch == '\t':
			b = append(b, '\\', 't')
		case ch == c.delimiter[0]:
			b = append(b, '\\', ch)
		default:
			b = append(b, ch)
		}
	}
	return b
}
