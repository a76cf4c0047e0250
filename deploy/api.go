package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// API serves the admin endpoints:
//
//	GET  /v1/streams              POST /v1/streams     GET /v1/streams/{name}
//	GET  /v1/tables               POST /v1/tables      GET /v1/tables/{name}   PUT|PATCH /v1/tables/{name}
//	GET  /v1/pipelines            POST /v1/pipelines   GET /v1/pipelines/{name}
//	GET  /v1/pipelines/{name}/status   POST /v1/pipelines/{name}/pause|resume
//	GET  /v1/functions                GET /v1/functions/{name}   PUT /v1/functions/{name}
//	POST /v1/functions/{name}/versions
//	PUT  /v1/functions/{name}/aliases/{alias}
//	GET  /v1/functions/{name}/logs
type API struct {
	Reg *Registry
	// Status reports a pipeline's partitions (nil: none are shown).
	Status StatusReporter
	// Logs reads functions' log lines (nil: none are kept).
	Logs LogReader
}

// MaxAdminBody bounds an admin request body.
const MaxAdminBody = 1 << 20

// Register adds the endpoints to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/streams", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Reg.Streams()) })
	mux.HandleFunc("GET /v1/tables", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Reg.Tables()) })
	mux.HandleFunc("GET /v1/pipelines", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Reg.Pipelines()) })
	mux.HandleFunc("GET /v1/streams/{name}", getOne("stream", a.Reg.Stream))
	mux.HandleFunc("GET /v1/tables/{name}", getOne("table", a.Reg.Table))
	mux.HandleFunc("GET /v1/pipelines/{name}", getOne("pipeline", a.Reg.Pipeline))
	mux.HandleFunc("POST /v1/streams", create(a.Reg.CreateStream))
	mux.HandleFunc("POST /v1/tables", create(a.Reg.CreateTable))
	mux.HandleFunc("PUT /v1/tables/{name}", a.updateTable)
	mux.HandleFunc("PATCH /v1/tables/{name}", a.patchTable)
	mux.HandleFunc("POST /v1/pipelines", create(a.Reg.CreatePipeline))
	mux.HandleFunc("GET /v1/pipelines/{name}/status", a.status)
	mux.HandleFunc("POST /v1/pipelines/{name}/pause", a.pause(true))
	mux.HandleFunc("POST /v1/pipelines/{name}/resume", a.pause(false))
	mux.HandleFunc("GET /v1/functions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, a.Reg.Functions()) })
	mux.HandleFunc("GET /v1/functions/{name}", getOne("function", a.Reg.Function))
	mux.HandleFunc("PUT /v1/functions/{name}", a.deployFunction)
	mux.HandleFunc("POST /v1/functions/{name}/versions", a.publish)
	mux.HandleFunc("PUT /v1/functions/{name}/aliases/{alias}", a.alias)
	mux.HandleFunc("GET /v1/functions/{name}/logs", a.logs)
}

// DeployRequest is the body of PUT /v1/functions/{name}.
type DeployRequest struct {
	FunctionConfig
	Code []byte `json:"code"` // base64 in JSON
}

func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", limit))
		case errors.Is(err, io.EOF):
			writeError(w, http.StatusBadRequest, "invalid JSON body: empty body")
		default:
			writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		}
		return false
	}
	return true
}

func writeResult(w http.ResponseWriter, status int, v any, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrExists), errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, status, v)
	}
}

func (a *API) deployFunction(w http.ResponseWriter, r *http.Request) {
	var req DeployRequest
	if !decodeBody(w, r, MaxCodeBytes/3*4+MaxAdminBody, &req) {
		return
	}
	f, err := a.Reg.DeployFunction(r.Context(), r.PathValue("name"), req.FunctionConfig, req.Code)
	writeResult(w, http.StatusOK, f, err)
}

// patchTable changes only the fields the body names (Registry.PatchTable).
func (a *API) patchTable(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", MaxAdminBody))
		return
	}
	out, err := a.Reg.PatchTable(r.Context(), r.PathValue("name"), body)
	writeResult(w, http.StatusOK, out, err)
}

func (a *API) updateTable(w http.ResponseWriter, r *http.Request) {
	var t Table
	if !decodeBody(w, r, MaxAdminBody, &t) {
		return
	}
	if t.Name == "" {
		t.Name = r.PathValue("name")
	}
	if t.Name != r.PathValue("name") {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("body names table %q, the path %q", t.Name, r.PathValue("name")))
		return
	}
	out, err := a.Reg.UpdateTable(r.Context(), t)
	writeResult(w, http.StatusOK, out, err)
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	v, err := a.Reg.PublishFunction(r.Context(), r.PathValue("name"))
	writeResult(w, http.StatusCreated, v, err)
}

func (a *API) alias(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Version int `json:"version"`
	}
	if !decodeBody(w, r, MaxAdminBody, &req) {
		return
	}
	f, err := a.Reg.SetAlias(r.Context(), r.PathValue("name"), r.PathValue("alias"), req.Version)
	writeResult(w, http.StatusOK, f, err)
}

func (a *API) pause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Reg.SetPaused(r.Context(), r.PathValue("name"), paused)
		writeResult(w, http.StatusOK, p, err)
	}
}

// MaxLogLines bounds the lines one logs request returns.
const MaxLogLines = 10_000

func (a *API) logs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := a.Reg.Function(name); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("function %q does not exist", name))
		return
	}
	limit := 1000
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLogLines {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d, got %q", MaxLogLines, s))
			return
		}
		limit = n
	}
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("since must be an RFC 3339 time (a line's \"time\"), got %q", s))
			return
		}
		since = t
	}
	lines := []LogLine{}
	if a.Logs != nil {
		var err error
		if lines, err = a.Logs.Tail(r.Context(), name, limit, since); err != nil {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("cannot read the logs of function %q: %v", name, err))
			return
		}
	}
	writeJSON(w, http.StatusOK, lines)
}

func getOne[T any](kind string, get func(string) (T, bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := get(r.PathValue("name"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("%s %q does not exist", kind, r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func create[T any](f func(context.Context, T) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var v T
		if !decodeBody(w, r, MaxAdminBody, &v) {
			return
		}
		out, err := f(r.Context(), v)
		writeResult(w, http.StatusCreated, out, err)
	}
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, ok := a.Reg.Pipeline(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("pipeline %q does not exist", name))
		return
	}
	parts := []PartitionStatus{}
	if a.Status != nil {
		st, err := a.Status.Status(r.Context(), name)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "cannot read status: "+err.Error())
			return
		}
		parts = st
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipeline": p, "partitions": parts})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
