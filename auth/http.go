package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal ctx carries (nil: none).
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

// Guard checks the API key of HTTP requests. With Store nil, authentication
// is off and every request acts as Admin (allowed only on loopback, see
// cmd/sluice).
type Guard struct {
	Store *Store
	// Audit gets a line for every refused request and every admin change.
	Audit *slog.Logger
	// Events, when set, also gets each of them (the audit table).
	Events func(Event)
}

// Event is one line of the audit log: an admin change, or a request (or a
// login) that was refused.
type Event struct {
	Time     time.Time `json:"time"`
	Key      string    `json:"key,omitempty"` // the key's id ("": none or unknown)
	Listener string    `json:"listener"`      // http, postgres
	Action   string    `json:"action"`        // the HTTP method, or "login"
	Object   string    `json:"object"`        // the path, or the user name
	Allowed  bool      `json:"allowed"`
	Status   int       `json:"status,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

func (g *Guard) record(ev Event) {
	ev.Time = time.Now().UTC()
	if g.Audit != nil {
		level := slog.LevelInfo
		if !ev.Allowed {
			level = slog.LevelWarn
		}
		g.Audit.Log(context.Background(), level, "audit", "key", ev.Key, "action", ev.Action, "object", ev.Object,
			"allowed", ev.Allowed, "status", ev.Status, "remote", ev.Remote)
	}
	if g.Events != nil {
		g.Events(ev)
	}
}

// Require serves h to requests whose key may do kind (admin, ingest,
// query) on the object name returns (nil or "": any one); others get 401
// (no key, or one that is unknown, revoked or expired) or 403.
func (g *Guard) Require(kind string, name func(*http.Request) string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := g.principal(r)
		if err != nil {
			g.refuse(w, r, "", http.StatusUnauthorized, err.Error()+": send it as the header \"Authorization: Bearer KEY\" (sluice reads --key, $SLUICE_KEY or DATA/admin.key)")
			return
		}
		object := ""
		if name != nil {
			object = name(r)
		}
		if !p.Can(kind, object) {
			what := kind
			if object != "" {
				what += ":" + object
			}
			g.refuse(w, r, p.KeyID, http.StatusForbidden, fmt.Sprintf("%s: key %s has scopes %v, this needs %s", ErrForbidden, p.KeyID, p.Scopes(), what))
			return
		}
		if kind == "ingest" {
			if err := g.chargeIngest(w, r, p); err != nil {
				WriteRateLimited(w, err)
				return
			}
		}
		if kind == "admin" && r.Method != http.MethodGet && r.Method != http.MethodHead {
			g.record(Event{Key: p.KeyID, Listener: "http", Action: r.Method, Object: r.URL.Path, Allowed: true, Remote: r.RemoteAddr})
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// chargeIngest charges the request to p's plan: by its Content-Length,
// or, for a body of unknown length under a byte limit, as the handler reads
// it (planReader): a read past the plan fails with *RateLimited, and the
// handler, which writes nothing before it has the whole body, refuses the
// request whole (429).
func (g *Guard) chargeIngest(w http.ResponseWriter, r *http.Request, p *Principal) error {
	if r.ContentLength >= 0 || p.plan == nil || p.plan.limits.IngestBytesPerSec == 0 {
		return p.AllowIngest(max(r.ContentLength, 0))
	}
	if err := p.AllowIngest(0); err != nil { // the request itself
		return err
	}
	r.Body = &planReader{ReadCloser: r.Body, p: p, full: p.plan.bytesFull()}
	return nil
}

// planReader charges a body of unknown length to its key's bytes/s as it
// is read. A request that started with a full bucket may go into debt, like
// one of known length larger than a second's worth.
type planReader struct {
	io.ReadCloser
	p    *Principal
	full bool
}

func (pr *planReader) Read(b []byte) (int, error) {
	n, err := pr.ReadCloser.Read(b)
	if n > 0 {
		if rerr := pr.p.plan.chargeBytes(pr.p.KeyID, int64(n), pr.full); rerr != nil {
			return n, rerr
		}
	}
	return n, err
}

// WriteRateLimited answers 429 with Retry-After for a RateLimited error
// (other errors: 400).
func WriteRateLimited(w http.ResponseWriter, err error) {
	var rl *RateLimited
	if !errors.As(err, &rl) {
		WriteError(w, http.StatusBadRequest, "cannot read the request body: "+err.Error())
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(rl.RetryAfterSeconds()))
	WriteError(w, http.StatusTooManyRequests, rl.Error())
}

func (g *Guard) principal(r *http.Request) (*Principal, error) {
	if g.Store == nil {
		return Admin, nil
	}
	h := r.Header.Get("Authorization")
	scheme, secret, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "Bearer") {
		return nil, ErrNoKey
	}
	return g.Store.Authenticate(r.Context(), strings.TrimSpace(secret))
}

func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, keyID string, status int, msg string) {
	g.record(Event{Key: keyID, Listener: "http", Action: r.Method, Object: r.URL.Path, Status: status, Remote: r.RemoteAddr, Reason: msg})
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	WriteError(w, status, msg)
}

// WriteError answers {"error": msg}, as every sluice endpoint does.
func WriteError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Protect refuses what a web page could make a browser send to a server
// on the user's machine: a request whose Host is not one of hosts (DNS
// rebinding: an attacker's name resolving to 127.0.0.1), a cross-origin
// state change (net/http's CrossOriginProtection, from Sec-Fetch-Site and
// Origin), and a state change whose Content-Type a form or a "simple"
// fetch could send (text/plain, form encodings), which has no preflight,
// unless it carries an Authorization header (which no page can add without
// a preflight, so such a request is a program's: text/plain ingest of raw
// lines stays possible).
// hosts holds host names and IPs without ports; "*" allows any Host.
func Protect(hosts []string, h http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, n := range hosts {
		allowed[strings.ToLower(strings.Trim(n, "[]"))] = true
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusForbidden, "cross-origin request refused: a web page of another origin cannot change sluice")
	}))
	checked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed["*"] && !allowed[hostOnly(r.Host)] {
			WriteError(w, http.StatusMisdirectedRequest, fmt.Sprintf("Host %q is not an address of this server (add its name to --allowed-hosts)", r.Host))
			return
		}
		// A page cannot add an Authorization header to a request without a
		// preflight, so a request that carries one is not a form's.
		if changesState(r.Method) && r.ContentLength != 0 && r.Header.Get("Authorization") == "" {
			ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if ct == "" || ct == "text/plain" || ct == "application/x-www-form-urlencoded" || ct == "multipart/form-data" {
				WriteError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is refused for %s (a web form could send it): use application/json or application/x-ndjson", r.Header.Get("Content-Type"), r.Method))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
	return cop.Handler(checked)
}

func changesState(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

func hostOnly(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// LocalHosts returns the Host names a server listening on addr answers to
// without --allowed-hosts: localhost and the loopback addresses, the
// listen IP, and, for an unspecified IP (0.0.0.0, ::), every address of
// the machine's interfaces and its host name.
func LocalHosts(addr string) []string {
	out := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return out
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return append(out, host)
	}
	if !ip.IsUnspecified() {
		return append(out, ip.String())
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				out = append(out, n.IP.String())
			}
		}
	}
	if name, err := osHostname(); err == nil {
		out = append(out, name)
	}
	return out
}

// IsLoopback reports whether addr (host:port) binds only loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrorStatus maps an auth error to its HTTP status.
func ErrorStatus(err error) int {
	switch {
	case errors.Is(err, ErrNoKey), errors.Is(err, ErrBadKey):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.As(err, new(*RateLimited)):
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}
