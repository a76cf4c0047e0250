package pgwire

import (
	"context"
	"errors"
	"strings"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/query"
)

// SQLSTATE codes this server sends.
const (
	codeSyntax                = "42601"
	codeUndefinedTable        = "42P01"
	codeSyntaxOrAccess        = "42000"
	codeDatatype              = "42804"
	codeUndefinedParam        = "42P02"
	codeInsufficient          = "42501"
	codeDataException         = "22000"
	codeInvalidText           = "22P02"
	codeOutOfRange            = "22003"
	codeDivisionByZero        = "22012"
	codeInvalidParam          = "22023"
	codeCanceled              = "57014"
	codeAdminShutdown         = "57P01"
	codeOutOfMemory           = "53200"
	codeTooManyConns          = "53300"
	codeNotSupported          = "0A000"
	codeInsufficientPrivilege = "42501"
	codeTooManyQueries        = "53400" // configuration_limit_exceeded: the key's usage plan
	codeIdleTimeout           = "57P05" // idle_session_timeout
	codeProtocol              = "08P01"
	codeIOError               = "58030"
	codeInternal              = "XX000"
	codeDupStatement          = "42P05"
	codeDupPortal             = "42P03"
	codeNoStatement           = "26000"
	codeNoPortal              = "34000"
	codeInFailedTx            = "25P02"
	codeWarning               = "01000"
	codeLimit                 = "54000"

	codeInvalidPassword      = "28P01"
	codeInvalidAuthorization = "28000"
)

// pgError is an error with the SQLSTATE and fields of an ErrorResponse.
type pgError struct {
	severity string // default ERROR
	code     string
	msg      string
	detail   string
	hint     string
}

func (e *pgError) Error() string { return e.msg }

func newError(code, msg string) *pgError { return &pgError{code: code, msg: msg} }

func (e *pgError) response() *pgproto3.ErrorResponse {
	sev := e.severity
	if sev == "" {
		sev = "ERROR"
	}
	return &pgproto3.ErrorResponse{Severity: sev, SeverityUnlocalized: sev, Code: e.code, Message: e.msg, Detail: e.detail, Hint: e.hint}
}

// duckCodes maps DuckDB's error types to SQLSTATEs; unlisted types are
// XX000 (internal error).
var duckCodes = map[duckdb.ErrorType]string{
	duckdb.ErrorTypeParser:               codeSyntax,
	duckdb.ErrorTypeSyntax:               codeSyntax,
	duckdb.ErrorTypeCatalog:              codeUndefinedTable,
	duckdb.ErrorTypeBinder:               codeSyntaxOrAccess,
	duckdb.ErrorTypeMismatchType:         codeDatatype,
	duckdb.ErrorTypeInvalidType:          codeDatatype,
	duckdb.ErrorTypeConversion:           codeInvalidText,
	duckdb.ErrorTypeOutOfRange:           codeOutOfRange,
	duckdb.ErrorTypeDivideByZero:         codeDivisionByZero,
	duckdb.ErrorTypeInvalidInput:         codeInvalidParam,
	duckdb.ErrorTypeExpression:           codeDataException,
	duckdb.ErrorTypeNotImplemented:       codeNotSupported,
	duckdb.ErrorTypePermission:           codeInsufficient,
	duckdb.ErrorTypeSettings:             codeInsufficient,
	duckdb.ErrorTypeMissingExtension:     codeInsufficient,
	duckdb.ErrorTypeAutoLoad:             codeInsufficient,
	duckdb.ErrorTypeParameterNotResolved: codeUndefinedParam,
	duckdb.ErrorTypeParameterNotAllowed:  codeUndefinedParam,
	duckdb.ErrorTypeInterrupt:            codeCanceled,
	duckdb.ErrorTypeOutOfMemory:          codeOutOfMemory,
	duckdb.ErrorTypeIO:                   codeIOError,
}

// queryError converts an error of query.Engine.Query: DuckDB's own message
// with a SQLSTATE from its error type; a timeout or a cancel is 57014; a
// statement the engine refuses (its kind, several statements) is 0A000.
// Problems the engine met while setting up views go to DETAIL.
// canceled tells that a CancelRequest (or shutdown) stopped the query.
func queryError(err error, canceled, shutdown bool) *pgError {
	main, setup := err, error(nil)
	// The engine's error wraps [the query's error, view setup problems].
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		if parts := u.Unwrap(); len(parts) > 0 {
			main = parts[0]
			if len(parts) > 1 {
				setup = parts[1]
			}
		}
	}
	var e *pgError
	var de *duckdb.Error
	switch {
	case shutdown:
		e = &pgError{code: codeAdminShutdown, msg: "canceling statement: the server is shutting down"}
	case canceled:
		e = newError(codeCanceled, "canceling statement due to user request")
	case errors.Is(err, context.DeadlineExceeded):
		e = newError(codeCanceled, oneLine(strings.TrimPrefix(err.Error(), "cannot run query: ")))
		setup = nil // already in the message
	case query.IsForbidden(main):
		e = newError(codeInsufficientPrivilege, main.Error())
	case errors.As(main, new(*auth.RateLimited)):
		e = newError(codeTooManyQueries, main.Error())
	case errors.As(main, &de):
		code, ok := duckCodes[de.Type]
		if !ok {
			code = codeInternal
		}
		e = newError(code, de.Msg)
	case query.IsUserError(main):
		// The engine's own refusals: statement kind, several statements,
		// parameters, an empty text.
		e = newError(codeNotSupported, main.Error())
	default:
		e = newError(codeInternal, oneLine(err.Error()))
		setup = nil
	}
	if setup != nil {
		e.detail = "table setup problems: " + setup.Error()
	}
	return e
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", ": ") }
