package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"
)

var osHostname = os.Hostname

// CreateRequest is the body of POST /v1/keys.
type CreateRequest struct {
	Name    string     `json:"name,omitempty"`
	Scopes  []string   `json:"scopes"`
	Expires *time.Time `json:"expires,omitempty"` // RFC 3339; none: never
	Limits  Limits     `json:"limits,omitzero"`
}

// Created is the answer of POST /v1/keys: the only time the key is shown.
type Created struct {
	KeyInfo
	Key string `json:"key"`
}

// Register adds the key endpoints to mux, each behind an admin check:
//
//	POST /v1/keys         {"scopes": ["ingest:logs"], "expires": "2027-01-01T00:00:00Z", "name": "..."}
//	GET  /v1/keys         every key (no secrets)
//	PUT  /v1/keys/{id}/limits  {"ingest_requests_per_sec": 10, "ingest_bytes_per_sec": 1048576, "queries_per_minute": 60}
//	DELETE /v1/keys/{id}  revoke
func (s *Store) Register(mux *http.ServeMux, g *Guard) {
	admin := func(h http.HandlerFunc) http.Handler { return g.Require("admin", nil, h) }
	mux.Handle("GET /v1/keys", admin(func(w http.ResponseWriter, r *http.Request) {
		out := []KeyInfo{}
		for _, k := range s.List() {
			out = append(out, k.KeyInfo)
		}
		writeJSON(w, http.StatusOK, out)
	}))
	mux.Handle("POST /v1/keys", admin(func(w http.ResponseWriter, r *http.Request) {
		var req CreateRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("empty body")
			}
			WriteError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return
		}
		secret := NewSecret()
		k, err := s.Create(r.Context(), secret, req.Name, req.Scopes, req.Expires, req.Limits)
		if err != nil {
			WriteError(w, ErrorStatus(err), err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, Created{KeyInfo: k.KeyInfo, Key: secret})
	}))
	mux.Handle("PUT /v1/keys/{id}/limits", admin(func(w http.ResponseWriter, r *http.Request) {
		var l Limits
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			WriteError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
			return
		}
		k, err := s.SetLimits(r.Context(), r.PathValue("id"), l)
		if err != nil {
			WriteError(w, ErrorStatus(err), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, k.KeyInfo)
	}))
	mux.Handle("DELETE /v1/keys/{id}", admin(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if p := FromContext(r.Context()); p != nil && p.KeyID == id && len(s.adminKeys()) == 1 {
			WriteError(w, http.StatusConflict, fmt.Sprintf("cannot revoke key %s: it is the last admin key (create another admin key first)", id))
			return
		}
		if err := s.Revoke(r.Context(), id); err != nil {
			WriteError(w, ErrorStatus(err), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
	}))
}

// adminKeys returns the unexpired keys with the admin scope.
func (s *Store) adminKeys() []Key {
	var out []Key
	for _, k := range s.List() {
		if !k.Expired(s.now()) && slices.Contains(k.Scopes, "admin") {
			out = append(out, k)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
