package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/sluice-dev/sluice/auth"
)

// userErrorTypes are the DuckDB error types caused by the SQL text or by
// what it asks for. Everything else (IO, out of memory, internal, fatal,
// connection, ...) is treated as the server's problem: a corrupt or vanished
// Parquet file, or a database too small for the load, are not the user's
// fault. Out of memory is counted as the server's, as memory_limit is shared
// by all concurrent queries. duckdb.ErrorTypeDecimal is left out on purpose:
// in duckdb-go v2.10505.0 it is defined from the DECIMAL *type* id and so
// equals ErrorTypeIndex.
var userErrorTypes = map[duckdb.ErrorType]bool{
	duckdb.ErrorTypeParser:               true,
	duckdb.ErrorTypeSyntax:               true,
	duckdb.ErrorTypeBinder:               true,
	duckdb.ErrorTypeCatalog:              true,
	duckdb.ErrorTypePermission:           true, // the sandbox refused a file, an extension, a setting
	duckdb.ErrorTypeInterrupt:            true, // timeout or client gone
	duckdb.ErrorTypeConversion:           true,
	duckdb.ErrorTypeOutOfRange:           true,
	duckdb.ErrorTypeDivideByZero:         true,
	duckdb.ErrorTypeInvalidInput:         true, // includes "configuration has been locked"
	duckdb.ErrorTypeMismatchType:         true,
	duckdb.ErrorTypeInvalidType:          true,
	duckdb.ErrorTypeNotImplemented:       true,
	duckdb.ErrorTypeExpression:           true,
	duckdb.ErrorTypeParameterNotResolved: true,
	duckdb.ErrorTypeParameterNotAllowed:  true,
	duckdb.ErrorTypeSettings:             true,
	duckdb.ErrorTypeMissingExtension:     true,
	duckdb.ErrorTypeAutoLoad:             true,
}

// userError is an error this package raises because of the request itself
// (several statements, an empty query, a statement kind that is not allowed).
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

// queryError is what Engine.Query returns when the query fails. It keeps
// DuckDB's error reachable through errors.As, and carries problems met while
// (re)creating views, which often explain a "table does not exist".
type queryError struct {
	err     error
	setup   error         // optional: view setup problems
	timeout time.Duration // non-zero when the query timed out
}

func (e *queryError) Error() string {
	msg := "cannot run query: " + e.err.Error()
	if e.timeout > 0 {
		msg = fmt.Sprintf("cannot run query: timed out (limit %s): %v", e.timeout, e.err)
	}
	if e.setup != nil {
		msg += "\n(table setup problems: " + e.setup.Error() + ")"
	}
	return msg
}

func (e *queryError) Unwrap() []error {
	if e.setup == nil {
		return []error{e.err}
	}
	return []error{e.err, e.setup}
}

// publicMessage is the text an HTTP client sees: DuckDB's own message for
// SQL errors, else the whole error.
func publicMessage(err error) string {
	var qe *queryError
	if !errors.As(err, &qe) || qe.timeout > 0 {
		return err.Error()
	}
	var de *duckdb.Error
	var ue *userError
	var msg string
	switch {
	case errors.As(qe.err, &ue):
		msg = ue.msg
	case errors.As(qe.err, &de) && de.Type == duckdb.ErrorTypeOutOfMemory:
		msg = "the query needs more memory than the server gives queries (--query-memory, shared by every running query): " +
			"filter, aggregate or select fewer or narrower columns, or retry when fewer queries run (" + firstLine(de.Msg) + ")"
	case errors.As(qe.err, &de):
		msg = de.Msg
	default:
		return err.Error()
	}
	if qe.setup != nil {
		msg += "\n(table setup problems: " + qe.setup.Error() + ")"
	}
	return msg
}

// IsUserError reports whether err is the user's fault: a SQL parse, bind or
// catalog error, a query touching a forbidden file or setting, a disallowed
// statement kind, several statements in one request, or a timeout. The HTTP
// handler answers those with 400 (timeouts with 408 Request Timeout, see
// statusFor) rather than 500. It relies on duckdb-go's typed errors
// (*duckdb.Error and its Type field), never on message text.
func IsUserError(err error) bool {
	if err == nil {
		return false
	}
	var ue *userError
	if errors.As(err, &ue) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		return userErrorTypes[de.Type]
	}
	return false
}

// isTimeout reports whether the query failed because its deadline passed.
func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded)
}

// isOutOfMemory reports whether DuckDB ran out of its memory limit.
func isOutOfMemory(err error) bool {
	var de *duckdb.Error
	return errors.As(err, &de) && de.Type == duckdb.ErrorTypeOutOfMemory
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// isIOError reports whether DuckDB failed with an IO error, which is what a
// view raises when its files are gone ("No files found that match ...").
func isIOError(err error) bool {
	var de *duckdb.Error
	return errors.As(err, &de) && de.Type == duckdb.ErrorTypeIO
}

// ErrorKinds are what ErrorKind returns for a failed query, one per HTTP
// status statusFor gives.
var ErrorKinds = []string{"timeout", "forbidden", "out_of_memory", "rate_limited", "user", "server"}

// ErrorKind classifies a query's error for metrics ("" for nil): timeout,
// forbidden (a table outside the key's scopes), out_of_memory,
// rate_limited (the key's usage plan), user (the SQL's fault) or server.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	switch statusFor(err) {
	case http.StatusRequestTimeout:
		return "timeout"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusServiceUnavailable:
		return "out_of_memory"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadRequest:
		return "user"
	}
	return "server"
}

// statusFor maps a query error to an HTTP status: 408 for a timeout (the
// request took too long, retrying it unchanged will not help, but it is not
// malformed either: 408 lets clients tell the two apart), 400 for other user
// errors, 500 for the rest.
func statusFor(err error) int {
	switch {
	case isTimeout(err):
		return http.StatusRequestTimeout
	case IsForbidden(err):
		return http.StatusForbidden
	case isOutOfMemory(err):
		return http.StatusServiceUnavailable
	case errors.As(err, new(*auth.RateLimited)):
		return http.StatusTooManyRequests
	case IsUserError(err):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}
