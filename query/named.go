package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/internal/objstore"
)

// Named (saved) queries: a name, a SQL text with {{param}} placeholders,
// stored as NamedPrefix/<name>.json. Any key with a query scope may list,
// read and run them (a run is an async query of the runner's key, with the
// runner's rights: a parameter can only make SQL the runner could send
// anyway); only the key that saved one, or an admin key, deletes it. A
// name is saved once (a conditional create): delete it to change it.

// NamedPrefix is where named queries are stored.
const NamedPrefix = "_sluice/named-queries/"

// NamedQuery is a saved query.
type NamedQuery struct {
	Name        string    `json:"name"`
	SQL         string    `json:"sql"`
	Description string    `json:"description,omitempty"`
	Params      []string  `json:"params"` // the placeholders of SQL, in order of first use
	Owner       string    `json:"owner"`
	Created     time.Time `json:"created"`
}

var namedName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,127}$`)

// Errors of the named query API (wrapped).
var (
	ErrNoNamedQuery  = errors.New("no such named query")
	ErrNamedExists   = errors.New("a named query of that name exists")
	ErrBadNamedQuery = errors.New("invalid named query")
)

// bindParams replaces each {{name}} of sqlText that is outside string
// literals and comments by values[name] as a SQL literal (a JSON string
// becomes a quoted string, a number itself, true/false/null themselves).
// With values nil it only lists the placeholders.
func bindParams(sqlText string, values map[string]any) (string, []string, error) {
	var out strings.Builder
	var names []string
	s := sqlText
	for i := 0; i < len(s); {
		start := i
		switch {
		case skipNonCode(s, i) > i:
			i = skipNonCode(s, i)
		case strings.HasPrefix(s[i:], "{{"):
			end := strings.Index(s[i:], "}}")
			if end < 0 {
				return "", nil, fmt.Errorf("%w: {{ at byte %d is not closed with }}", ErrBadNamedQuery, i)
			}
			name := strings.TrimSpace(s[i+2 : i+end])
			if !namedName.MatchString(name) {
				return "", nil, fmt.Errorf("%w: parameter name %q: want letters, digits, _ and -", ErrBadNamedQuery, name)
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
			i += end + 2
			if values != nil {
				lit, err := sqlLiteral(name, values)
				if err != nil {
					return "", nil, err
				}
				out.WriteString(lit)
			}
			continue
		default:
			i++
		}
		out.WriteString(s[start:i])
	}
	for name := range values {
		if !slices.Contains(names, name) {
			return "", nil, fmt.Errorf("%w: parameter %q is not in the query (it has %v)", ErrBadNamedQuery, name, names)
		}
	}
	return out.String(), names, nil
}

// sqlLiteral renders values[name] as a SQL literal.
func sqlLiteral(name string, values map[string]any) (string, error) {
	v, ok := values[name]
	if !ok {
		return "", fmt.Errorf("%w: parameter %q has no value", ErrBadNamedQuery, name)
	}
	switch x := v.(type) {
	case string:
		return sqlString(x), nil
	case json.Number:
		if _, err := strconv.ParseFloat(x.String(), 64); err != nil {
			return "", fmt.Errorf("%w: parameter %q: %q is not a number", ErrBadNamedQuery, name, x)
		}
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil:
		return "NULL", nil
	default:
		return "", fmt.Errorf("%w: parameter %q: want a string, number, boolean or null", ErrBadNamedQuery, name)
	}
}

func namedKey(name string) string { return NamedPrefix + name + ".json" }

// SaveNamed stores q (Name, SQL, Description) as a new named query of ctx's
// key.
func (a *Async) SaveNamed(ctx context.Context, q NamedQuery) (*NamedQuery, error) {
	if !namedName.MatchString(q.Name) {
		return nil, fmt.Errorf("%w: name %q: want letters, digits, _ and -, starting with a letter or _, up to 128", ErrBadNamedQuery, q.Name)
	}
	if strings.TrimSpace(q.SQL) == "" {
		return nil, fmt.Errorf("%w: \"sql\" is empty", ErrBadNamedQuery)
	}
	_, params, err := bindParams(q.SQL, nil)
	if err != nil {
		return nil, err
	}
	q.Params, q.Created, q.Owner = params, time.Now().UTC(), ""
	if p := auth.FromContext(ctx); p != nil {
		q.Owner = p.KeyID
	}
	b, err := json.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("BUG: cannot encode named query %q: %w", q.Name, err)
	}
	vb, ok := a.Bucket.(objstore.Versioned)
	if !ok {
		return nil, fmt.Errorf("BUG: cannot save named query %q: the store cannot write conditionally", q.Name)
	}
	if _, err := vb.PutIfVersion(ctx, namedKey(q.Name), b, ""); objstore.IsConflict(err) {
		return nil, fmt.Errorf("cannot save named query %q: %w (delete it first to replace it)", q.Name, ErrNamedExists)
	} else if err != nil {
		return nil, fmt.Errorf("cannot save named query %q: %w", q.Name, err)
	}
	return &q, nil
}

// Named reads named query name.
func (a *Async) Named(ctx context.Context, name string) (*NamedQuery, error) {
	if !namedName.MatchString(name) {
		return nil, fmt.Errorf("cannot read named query %q: %w", name, ErrNoNamedQuery)
	}
	b, err := a.Bucket.Get(ctx, namedKey(name))
	if objstore.IsNotFound(err) {
		return nil, fmt.Errorf("cannot read named query %q: %w", name, ErrNoNamedQuery)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read named query %q: %w", name, err)
	}
	var q NamedQuery
	if err := json.Unmarshal(b, &q); err != nil {
		return nil, fmt.Errorf("cannot decode named query %q (object %s): %w", name, namedKey(name), err)
	}
	return &q, nil
}

// ListNamed returns every named query, by name.
func (a *Async) ListNamed(ctx context.Context) ([]*NamedQuery, error) {
	out := []*NamedQuery{}
	err := a.Bucket.List(ctx, NamedPrefix, func(key string) error {
		name, ok := strings.CutSuffix(strings.TrimPrefix(key, NamedPrefix), ".json")
		if !ok || !namedName.MatchString(name) {
			return nil
		}
		q, err := a.Named(ctx, name)
		if errors.Is(err, ErrNoNamedQuery) {
			return nil
		}
		if err == nil {
			out = append(out, q)
		}
		return err
	})
	return out, err
}

// DeleteNamed deletes named query name, if ctx's key saved it or is admin.
func (a *Async) DeleteNamed(ctx context.Context, name string) error {
	q, err := a.Named(ctx, name)
	if err != nil {
		return err
	}
	if p := auth.FromContext(ctx); p != nil && !p.Can("admin", "") && p.KeyID != q.Owner {
		return &forbiddenError{msg: fmt.Sprintf("cannot delete named query %q: key %s did not save it (%s did; or use an admin key)", name, p.KeyID, q.Owner)}
	}
	if err := a.Bucket.Delete(ctx, namedKey(name)); err != nil {
		return fmt.Errorf("cannot delete named query %q: %w", name, err)
	}
	return nil
}

// RunNamed submits named query name with values as an async query.
func (a *Async) RunNamed(ctx context.Context, name string, values map[string]any) (*Record, error) {
	q, err := a.Named(ctx, name)
	if err != nil {
		return nil, err
	}
	if values == nil {
		values = map[string]any{}
	}
	sqlText, _, err := bindParams(q.SQL, values)
	if err != nil {
		return nil, fmt.Errorf("cannot run named query %q: %w", name, err)
	}
	return a.Submit(ctx, sqlText)
}

// decodeBody decodes a JSON request body (at most maxBodyBytes) into v,
// numbers as json.Number.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxBodyBytes)); err != nil {
		return fmt.Errorf("cannot read request body: %w", err)
	}
	dec := json.NewDecoder(&buf)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("cannot decode request body: %w", err)
	}
	return nil
}

// registerNamed adds the named query routes (see Register).
func (a *Async) registerNamed(handle func(string, http.HandlerFunc)) {
	handle("POST /v1/named-queries", func(w http.ResponseWriter, r *http.Request) {
		var q NamedQuery
		if err := decodeBody(w, r, &q); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		saved, err := a.SaveNamed(r.Context(), q)
		if err != nil {
			a.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, saved)
	})
	handle("GET /v1/named-queries", func(w http.ResponseWriter, r *http.Request) {
		qs, err := a.ListNamed(r.Context())
		if err != nil {
			a.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"named_queries": qs})
	})
	handle("GET /v1/named-queries/{name}", func(w http.ResponseWriter, r *http.Request) {
		q, err := a.Named(r.Context(), r.PathValue("name"))
		if err != nil {
			a.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, q)
	})
	handle("DELETE /v1/named-queries/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.DeleteNamed(r.Context(), r.PathValue("name")); err != nil {
			a.writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	handle("POST /v1/named-queries/{name}/run", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Params map[string]any `json:"params"`
		}
		if r.ContentLength != 0 {
			if err := decodeBody(w, r, &body); err != nil {
				writeError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		rec, err := a.RunNamed(r.Context(), r.PathValue("name"), body.Params)
		if err != nil {
			a.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, rec)
	})
}
