package pgwire

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/query"
)

// cursor is an open DECLARE ... CURSOR: its query streams on a goroutine
// of its own (query.Engine.Stream), which waits for FETCH to take each
// page, so the session holds at most one page of it.
type cursor struct {
	cols   []column // of the result, as the client was told
	pages  chan *query.Result
	done   chan error // Stream's outcome, once pages is closed
	cancel context.CancelFunc
	page   *query.Result // the page FETCH reads from
	pos    int           // rows of page sent
	ended  bool
}

// cursorOp is a parsed DECLARE, FETCH or CLOSE.
type cursorOp struct {
	kind  string // "declare", "fetch", "close"
	name  string // "" with CLOSE ALL
	query string // DECLARE's
	count int    // FETCH's; -1 is ALL
}

// parseCursorOp parses DECLARE name [BINARY] [INSENSITIVE] [[NO] SCROLL]
// CURSOR [WITH[OUT] HOLD] FOR query, FETCH [FORWARD|NEXT] [n|ALL]
// [FROM|IN] name, and CLOSE name|ALL.
func parseCursorOp(sql string) (op cursorOp, ok bool, err error) {
	toks, err := sig(sql)
	if err != nil || len(toks) < 2 {
		return op, false, err
	}
	switch lower(toks[0]) {
	case "declare":
		op = cursorOp{kind: "declare", name: unquoteName(toks[1])}
		for i := 2; i < len(toks); i++ {
			switch lower(toks[i]) {
			case "binary":
				return op, true, newError(codeNotSupported, "binary cursors are not supported")
			case "for":
				op.query = textBetween(sql, toks[i+1:])
				if op.query == "" {
					return op, true, newError(codeSyntax, "DECLARE: no query after FOR")
				}
				return op, true, nil
			}
		}
		return op, true, newError(codeSyntax, "DECLARE: expected CURSOR ... FOR query")
	case "fetch":
		op = cursorOp{kind: "fetch", count: 1}
		rest := toks[1:]
		for len(rest) > 1 {
			w := lower(rest[0])
			switch {
			case w == "forward" || w == "next" || w == "from" || w == "in":
			case w == "all":
				op.count = -1
			case isDigit(w[0]):
				n, err := strconv.Atoi(w)
				if err != nil {
					return op, true, newError(codeSyntax, "FETCH: bad count "+w)
				}
				op.count = n
			default:
				return op, true, newError(codeNotSupported, "FETCH "+rest[0].text+" is not supported: FETCH [FORWARD] n|ALL FROM name")
			}
			rest = rest[1:]
		}
		op.name = unquoteName(rest[0])
		return op, true, nil
	case "close":
		op = cursorOp{kind: "close", name: unquoteName(toks[1])}
		if op.name == "all" && toks[1].ident {
			op.name = ""
		}
		return op, true, nil
	}
	return op, false, nil
}

// declare opens a cursor: its query starts, and its first page (or its
// error) is awaited, so that a bad query fails the DECLARE.
func (s *session) declare(op cursorOp) error {
	if s.tx == 'E' {
		return failedTx()
	}
	if _, ok := s.cursors[op.name]; ok {
		return newError(codeDupPortal, fmt.Sprintf("cursor %q already exists", op.name))
	}
	if len(s.cursors) >= maxCursors {
		return newError(codeLimit, fmt.Sprintf("too many open cursors (at most %d per session, each holds a query slot): close some", maxCursors))
	}
	ctx, cancel := context.WithCancel(auth.WithPrincipal(context.Background(), s.principal))
	c := &cursor{pages: make(chan *query.Result), done: make(chan error, 1), cancel: cancel}
	go func() {
		defer close(c.pages)
		_, err := s.srv.Engine.Stream(ctx, op.query, func(p *query.Result) error {
			select {
			case c.pages <- p:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		c.done <- err
	}()
	if err := c.next(); err != nil {
		c.close()
		return err
	}
	c.cols = columnsOf(c.page)
	s.cursors[op.name] = c
	return nil
}

// next waits for the cursor's next page (c.ended at the end).
func (c *cursor) next() error {
	p, ok := <-c.pages
	if !ok {
		c.ended = true
		if err := <-c.done; err != nil {
			return queryError(err, false, false)
		}
		return nil
	}
	c.page, c.pos = p, 0
	return nil
}

// close stops the cursor's query and waits for its goroutine.
func (c *cursor) close() {
	c.cancel()
	for range c.pages {
	}
}

// fetch sends up to n rows of the cursor (-1: all), in formats, with a
// RowDescription first if describe, and returns how many it sent.
func (s *session) fetch(name string, n int, formats []int16, describe bool) (int, error) {
	c, ok := s.cursors[name]
	if !ok {
		return 0, newError(codeNoPortal, fmt.Sprintf("cursor %q does not exist", name))
	}
	formats, err := formatCodes(formats, len(c.cols))
	if err != nil {
		return 0, err
	}
	if describe {
		s.be.Send(rowDescription(c.cols, formats))
	}
	sent := 0
	for (n < 0 || sent < n) && !c.ended {
		if c.pos == len(c.page.Rows) {
			if err := c.next(); err != nil {
				return sent, err
			}
			continue
		}
		k := len(c.page.Rows) - c.pos
		if n >= 0 {
			k = min(k, n-sent)
		}
		if err := s.sendRows(c.page, c.cols, formats, c.pos, c.pos+k); err != nil {
			return sent, err
		}
		c.pos += k
		sent += k
	}
	return sent, nil
}

// closeCursors closes the named cursor, or every one with name "".
func (s *session) closeCursors(name string) error {
	if name == "" {
		for k, c := range s.cursors {
			c.close()
			delete(s.cursors, k)
		}
		return nil
	}
	c, ok := s.cursors[name]
	if !ok {
		return newError(codeNoPortal, fmt.Sprintf("cursor %q does not exist", name))
	}
	c.close()
	delete(s.cursors, name)
	return nil
}

// cursorCommand runs a DECLARE, FETCH or CLOSE; formats are the result
// formats of a FETCH's rows (nil: text), describe sends its RowDescription.
func (s *session) cursorCommand(op cursorOp, formats []int16, describe bool) error {
	switch op.kind {
	case "declare":
		if err := s.declare(op); err != nil {
			return err
		}
		s.sendTag("DECLARE CURSOR")
	case "fetch":
		n, err := s.fetch(op.name, op.count, formats, describe)
		if err != nil {
			return err
		}
		s.sendTag("FETCH " + strconv.Itoa(n))
	case "close":
		if err := s.closeCursors(op.name); err != nil {
			return err
		}
		s.sendTag("CLOSE CURSOR")
	}
	return nil
}

// isCursorSQL tells a DECLARE, FETCH or CLOSE by its first word.
func isCursorSQL(info statementInfo) bool {
	if len(info.words) == 0 {
		return false
	}
	switch strings.ToUpper(info.words[0]) {
	case "DECLARE", "FETCH", "CLOSE":
		return true
	}
	return false
}

func (s *session) sendTag(tag string) {
	s.be.Send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
}

// streamCommand runs sql if it is a COPY ... TO STDOUT or a cursor
// command (handled), with formats and describe as for cursorCommand.
func (s *session) streamCommand(sql string, info statementInfo, formats []int16, describe bool) (handled bool, err error) {
	if len(info.words) == 0 {
		return false, nil
	}
	if info.words[0] == "COPY" {
		c, ok, err := parseCopy(sql)
		if ok && err == nil {
			err = s.copyOut(c)
		}
		return ok, err
	}
	if !isCursorSQL(info) {
		return false, nil
	}
	op, ok, err := parseCursorOp(sql)
	if ok && err == nil {
		err = s.cursorCommand(op, formats, describe)
	}
	return ok, err
}

// describeFetch sends the RowDescription of a FETCH's cursor (ok false:
// sql is no FETCH).
func (s *session) describeFetch(sql string, info statementInfo, formats []int16) (ok bool, err error) {
	if len(info.words) == 0 || info.words[0] != "FETCH" {
		return false, nil
	}
	op, ok, err := parseCursorOp(sql)
	if !ok || err != nil {
		return ok, err
	}
	c, found := s.cursors[op.name]
	if !found {
		return true, newError(codeNoPortal, fmt.Sprintf("cursor %q does not exist", op.name))
	}
	if formats, err = formatCodes(formats, len(c.cols)); err != nil {
		return true, err
	}
	s.be.Send(rowDescription(c.cols, formats))
	return true, nil
}

// describeFetchStatement answers Describe of a prepared FETCH: no
// parameters, the cursor's columns in text.
func (s *session) describeFetchStatement(st *statement) (bool, error) {
	if len(st.info.words) == 0 || st.info.words[0] != "FETCH" {
		return false, nil
	}
	s.be.Send(&pgproto3.ParameterDescription{ParameterOIDs: st.paramOIDs})
	return s.describeFetch(st.sql, st.info, nil)
}
