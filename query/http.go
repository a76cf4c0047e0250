package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice/auth"
)

// maxBodyBytes bounds a query request body.
const maxBodyBytes = 1 << 20

// queryRequest is the body of POST /v1/query.
type queryRequest struct {
	SQL *string `json:"sql"`
}

// errorBody is the body of every non-200 answer.
type errorBody struct {
	Error string `json:"error"`
}

// Handler serves POST /v1/query with body {"sql": "..."} and answers:
//
//   - 200 with the Result as JSON;
//   - 400 {"error": "<DuckDB's message>"} for a SQL error or a disallowed
//     statement, and {"error": "..."} saying what is wrong with a malformed
//     JSON body or a missing/empty "sql";
//   - 408 when the query timed out;
//   - 405 for any method but POST, 413 for a body over 1 MiB;
//   - 500 for failures that are not the user's (see IsUserError).
//
// The Content-Type is not enforced (curl -d sends a form type by default);
// the body must be JSON regardless. The request context is passed to the
// query, so a client that goes away interrupts it.
func (e *Engine) Handler() http.Handler {
	return http.HandlerFunc(e.serveQuery)
}

func (e *Engine) serveQuery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use POST")
		return
	}
	sqlText, status, err := readRequest(w, r)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	res, err := e.Query(r.Context(), sqlText)
	if rl := (*auth.RateLimited)(nil); errors.As(err, &rl) {
		auth.WriteRateLimited(w, rl)
		return
	}
	if err != nil {
		writeError(w, statusFor(err), publicMessage(err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// readRequest decodes the body; on failure it returns the status to answer.
func readRequest(w http.ResponseWriter, r *http.Request) (string, int, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return "", http.StatusRequestEntityTooLarge, fmt.Errorf("cannot read request body: larger than %d bytes", tooBig.Limit)
		}
		return "", http.StatusBadRequest, fmt.Errorf("cannot read request body: %w", err)
	}
	var req queryRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return "", http.StatusBadRequest, fmt.Errorf(`cannot decode request body: want a JSON object like {"sql": "select 1"}: %w`, err)
	}
	if dec.More() {
		return "", http.StatusBadRequest, errors.New("cannot decode request body: unexpected data after the JSON object")
	}
	if req.SQL == nil {
		return "", http.StatusBadRequest, errors.New(`cannot decode request body: missing "sql" field`)
	}
	if strings.TrimSpace(*req.SQL) == "" {
		return "", http.StatusBadRequest, errors.New(`cannot decode request body: "sql" is empty`)
	}
	return *req.SQL, 0, nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client is gone if this fails
}

// Client talks to a sluice server's query API.
type Client struct {
	// BaseURL is the server's root, e.g. "http://localhost:8080".
	BaseURL string
	// HTTP is the client used; nil means http.DefaultClient. Its Timeout,
	// if any, should exceed the server's query timeout.
	HTTP *http.Client
	// Key is the API key sent as "Authorization: Bearer KEY" ("": none).
	Key string
}

// Query posts sql to BaseURL/v1/query. A non-200 answer becomes an error
// carrying the status and the server's message. Numbers in the result are
// decoded as json.Number, so 64-bit integers and decimals stay exact.
func (c *Client) Query(ctx context.Context, sql string) (*Result, error) {
	body, err := json.Marshal(map[string]string{"sql": sql})
	if err != nil {
		return nil, fmt.Errorf("cannot encode query request: %w", err)
	}
	url := strings.TrimRight(c.BaseURL, "/") + "/v1/query"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build query request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot send query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot run query: server answered %s: %s", resp.Status, serverMessage(resp.Body))
	}
	var res Result
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("cannot decode query result: %w", err)
	}
	return &res, nil
}

// serverMessage extracts {"error": ...} from an error answer, or falls back
// to the (bounded) raw body.
func serverMessage(body io.Reader) string {
	raw, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	var eb errorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error != "" {
		return eb.Error
	}
	if s := strings.TrimSpace(string(raw)); s != "" {
		return s
	}
	return "(no message)"
}
