// Command accesslog is a sluice function (Go SDK, wasm warm mode) that turns
// raw Apache/Nginx access-log lines into typed rows. See README.md.
package main

import (
	"strings"

	"github.com/sluice-dev/sluice/sdk/go/sluicefn"
)

func main() {
	sluicefn.HandleRecords(handle)
}

var row sluicefn.Row

// handle emits one row per line, none for health checks, and a row with
// parse_error set (and the raw line) for a line it cannot parse.
func handle(r *sluicefn.Record, emit sluicefn.Emit) error {
	line, ok := r.String()
	if !ok {
		line, ok = r.String("line")
	}
	if !ok {
		return emit(errorRow(r, "data is neither a string nor an object with a line", ""))
	}
	e, err := parseLine(line)
	if err != nil {
		return emit(errorRow(r, err.Error(), line))
	}
	if isHealthCheck(&e) {
		return nil
	}
	row.Reset().Time("ts", e.ts).String("remote_addr", e.remoteAddr)
	optString(&row, "method", e.method)
	optString(&row, "path", e.path)
	optString(&row, "protocol", e.protocol)
	row.Int("status", e.status).Int("bytes", e.bytes)
	optString(&row, "referer", e.referer)
	optString(&row, "user_agent", e.userAgent)
	return emit(row.Null("parse_error"))
}

// errorRow keeps an unparseable line, at the record's time, so it can be found
// with `where parse_error is not null` instead of failing the batch.
func errorRow(r *sluicefn.Record, msg, line string) *sluicefn.Row {
	row.Reset().Time("ts", r.Timestamp()).String("parse_error", msg)
	if line != "" {
		row.String("raw", line)
	}
	return &row
}

func optString(row *sluicefn.Row, name, v string) {
	if v == "" || v == "-" {
		row.Null(name)
		return
	}
	row.String(name, v)
}

func isHealthCheck(e *entry) bool {
	path := e.path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	return path == "/healthz" || path == "/health" || strings.Contains(e.userAgent, "kube-probe")
}
