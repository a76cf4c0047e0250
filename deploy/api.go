package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// API serves the admin endpoints:
//
//	GET  /v1/streams              POST /v1/streams     GET /v1/streams/{name}
//	GET  /v1/tables               POST /v1/tables      GET /v1/tables/{name}
//	GET  /v1/pipelines            POST /v1/pipelines   GET /v1/pipelines/{name}
//	GET  /v1/pipelines/{name}/status
type API struct {
	Reg *Registry
	// Status reports a pipeline's partitions as this process runs them; nil
	// when this process runs no workers.
	Status func(ctx context.Context, pipeline string) (any, bool)
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
	mux.HandleFunc("POST /v1/pipelines", create(a.Reg.CreatePipeline))
	mux.HandleFunc("GET /v1/pipelines/{name}/status", a.status)
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
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxAdminBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("empty body")
			}
			writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return
		}
		out, err := f(r.Context(), v)
		switch {
		case errors.Is(err, ErrInvalid):
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, ErrExists):
			writeError(w, http.StatusConflict, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			writeJSON(w, http.StatusCreated, out)
		}
	}
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p, ok := a.Reg.Pipeline(name)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("pipeline %q does not exist", name))
		return
	}
	var parts any = []any{}
	if a.Status != nil {
		if st, ok := a.Status(r.Context(), name); ok {
			parts = st
		}
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
