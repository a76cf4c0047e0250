package query

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/sluice-dev/sluice/internal/objstore"
)

// Paging of GET /v1/queries/{id}/results?format=json.
const (
	defaultPageRows = 1000
	maxPageRows     = 10000
	maxPageBytes    = 16 << 20 // also the longest row a page can hold
)

// resultTypes are the downloadable formats and their content types.
var resultTypes = map[string]string{
	"parquet": "application/vnd.apache.parquet",
	"csv":     "text/csv; charset=utf-8",
	"ndjson":  "application/x-ndjson",
}

// Register adds the async query API to mux (behind a query-scope check:
// see auth.Guard.Require), each answer only for the key's own queries
// (admin: all):
//
//   - POST /v1/queries {"sql": "..."}: 202 with the new Record; 429 when
//     the queue is full.
//   - GET /v1/queries[?limit=N]: the newest records (default 100).
//   - GET /v1/queries/{id}: the Record (state, timings, rows, scanned).
//   - GET /v1/queries/{id}/results?format=parquet|csv|ndjson: the whole
//     result file, streamed from the object store; format=arrow: an Arrow
//     IPC stream converted from the Parquet file; format=json (the
//     default) a page {"rows": [...], "offset": N, "next_offset": M|null}
//     of at most limit (default 1000, at most 10000) rows and 16 MiB,
//     from offset. 409 while the query has not succeeded.
//   - DELETE /v1/queries/{id}: cancels it (202 with the record as it was).
//   - Named queries (named.go): POST /v1/named-queries {"name", "sql",
//     "description"} saves one (201; 409 if the name exists), GET lists
//     them, GET and DELETE /v1/named-queries/{name} read and delete one,
//     POST /v1/named-queries/{name}/run {"params": {...}} submits it (202).
//
// An unknown id, or another key's, is 404.
func (a *Async) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	a.init()
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, wrap(h)) }
	handle("POST /v1/queries", a.serveSubmit)
	handle("GET /v1/queries", a.serveList)
	handle("GET /v1/queries/{id}", a.serveGet)
	handle("DELETE /v1/queries/{id}", a.serveCancel)
	handle("GET /v1/queries/{id}/results", a.serveResults)
	a.registerNamed(handle)
}

func (a *Async) serveSubmit(w http.ResponseWriter, r *http.Request) {
	sqlText, status, err := readRequest(w, r)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	rec, err := a.Submit(r.Context(), sqlText)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, rec)
}

func (a *Async) serveList(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100, 1, 1000)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := a.List(r.Context(), limit)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queries": recs})
}

func (a *Async) serveGet(w http.ResponseWriter, r *http.Request) {
	rec, err := a.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *Async) serveCancel(w http.ResponseWriter, r *http.Request) {
	rec, err := a.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, rec)
}

func (a *Async) writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNoQuery), errors.Is(err, ErrNoNamedQuery):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrBadNamedQuery):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNamedExists):
		writeError(w, http.StatusConflict, err.Error())
	case IsForbidden(err):
		writeError(w, http.StatusForbidden, err.Error())
	case errors.Is(err, ErrQueueFull):
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, ErrNotQueryNode):
		writeError(w, http.StatusConflict, err.Error())
	default:
		a.Log.Error("async query API", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (a *Async) serveResults(w http.ResponseWriter, r *http.Request) {
	rec, err := a.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		a.writeErr(w, err)
		return
	}
	if rec.State != StateSucceeded {
		writeError(w, http.StatusConflict, fmt.Sprintf("async query %s is %s: results exist once it has succeeded%s", rec.ID, rec.State, errSuffix(rec.Error)))
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" || format == "json" {
		a.servePage(w, r, rec)
		return
	}
	if format == "arrow" {
		a.serveArrow(w, r, rec)
		return
	}
	ctype, ok := resultTypes[format]
	if !ok {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown format %q: want json, parquet, csv, ndjson or arrow", format))
		return
	}
	body, size, err := a.Bucket.Open(r.Context(), ResultKey(rec.ID, "result."+format))
	if objstore.IsNotFound(err) {
		err = fmt.Errorf("cannot read async query %s's %s result: %w (expired?)", rec.ID, format, ErrNoQuery)
	}
	if err != nil {
		a.writeErr(w, err)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, rec.ID, format))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		a.Log.Warn("async query result download cut short", "id", rec.ID, "format", format, "err", err)
	}
}

func errSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

// servePage answers one page of rows from the NDJSON result, read from
// the start (a page costs a read of the rows before it).
func (a *Async) servePage(w http.ResponseWriter, r *http.Request, rec *Record) {
	offset, err := intParam(r, "offset", 0, 0, int(^uint(0)>>1))
	if err == nil {
		var limit int
		limit, err = intParam(r, "limit", defaultPageRows, 1, maxPageRows)
		if err == nil {
			err = a.writePage(w, r, rec, int64(offset), limit)
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

func (a *Async) writePage(w http.ResponseWriter, r *http.Request, rec *Record, offset int64, limit int) error {
	body, _, err := a.Bucket.Open(r.Context(), ResultKey(rec.ID, "result.ndjson"))
	if err != nil {
		a.writeErr(w, fmt.Errorf("cannot read async query %s's result: %w", rec.ID, err))
		return nil
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxPageBytes)
	rows := []json.RawMessage{}
	size := 0
	var n int64
	for n < offset+int64(limit) && sc.Scan() {
		if n >= offset {
			if size += len(sc.Bytes()); size > maxPageBytes && len(rows) > 0 {
				break
			}
			rows = append(rows, json.RawMessage(append([]byte(nil), sc.Bytes()...)))
		}
		n++
	}
	if err := sc.Err(); err != nil {
		a.writeErr(w, fmt.Errorf("cannot read async query %s's result: %w (a row over %d bytes: download format=ndjson)", rec.ID, err, maxPageBytes))
		return nil
	}
	var next *int64
	if end := offset + int64(len(rows)); end < rec.Rows {
		next = &end
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows, "offset": offset, "next_offset": next, "total_rows": rec.Rows})
	return nil
}

// intParam parses query parameter name (def when absent) within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("invalid %s %q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}
