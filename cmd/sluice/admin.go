package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/auth"
	"github.com/sluice-dev/sluice/deploy"
	"github.com/sluice-dev/sluice/schemas"
)

// admin is a client of the admin API.
type admin struct {
	server, key string
	keyErr      error // reading the key failed: every call fails with it
}

// call sends body (JSON-encoded if not nil) and prints the JSON answer.
func (a admin) call(method, path string, body any) error {
	data, err := a.do(method, path, body)
	if err != nil {
		return err
	}
	_, err = stdout.Write(data)
	return err
}

// stdout is where commands print (a variable for tests).
var stdout io.Writer = os.Stdout

// do sends a request with body as JSON and returns the answer's body, or
// the error the answer carries.
func (a admin) do(method, path string, body any) ([]byte, error) {
	if a.keyErr != nil {
		return nil, a.keyErr
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, strings.TrimRight(a.server, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach sluice server %s (set --server or SLUICE_SERVER): %w", a.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, data)
	}
	return data, nil
}

// followLogs prints the lines of path (a function's logs), then every
// interval the lines written since the last one printed, one JSON object per
// line, until it fails or the process is interrupted.
func (a admin) followLogs(path string, out io.Writer, interval time.Duration) error {
	var since string
	for {
		p := path
		if since != "" {
			p += "&since=" + url.QueryEscape(since)
		}
		last, err := a.printLogs(p, out)
		if err != nil {
			return err
		}
		if last != "" {
			since = last
		}
		time.Sleep(interval)
	}
}

// printLogs prints the log lines GET path answers (a JSON list) as NDJSON,
// one object per line, the format of both `fn logs` and `fn logs --follow`,
// and returns the time of the last one.
func (a admin) printLogs(path string, out io.Writer) (last string, err error) {
	var lines []json.RawMessage
	if err := a.get(path, &lines); err != nil {
		return "", err
	}
	for _, l := range lines {
		var t struct{ Time string }
		if json.Unmarshal(l, &t) == nil && t.Time != "" {
			last = t.Time
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, l); err != nil {
			return "", fmt.Errorf("cannot read a log line of %s: %w", path, err)
		}
		compact.WriteByte('\n')
		if _, err := out.Write(compact.Bytes()); err != nil {
			return "", err
		}
	}
	return last, nil
}

// get decodes the JSON answer of GET path into v.
func (a admin) get(path string, v any) error {
	data, err := a.do("GET", path, nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// command is a subcommand's flags and positional arguments.
type command struct {
	fs      *flag.FlagSet
	server  *string
	keyFlag *string
	keyFile *string
}

func newCommand(name string) command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return command{fs: fs,
		server:  fs.String("server", defaultServer(), "sluice server URL ($SLUICE_SERVER)"),
		keyFlag: fs.String("key", "", "API key (default $SLUICE_KEY, else the contents of --key-file)"),
		keyFile: fs.String("key-file", defaultKeyFile(), "file holding the API key (the admin key sluice up writes to DATA/admin.key; $SLUICE_DATA sets DATA)"),
	}
}

// key returns the API key to send: --key, $SLUICE_KEY, or --key-file's
// contents ("" if none of them is there: the server then answers 401,
// which names where keys come from).
func (c command) key() (string, error) {
	if *c.keyFlag != "" {
		return *c.keyFlag, nil
	}
	if k := os.Getenv("SLUICE_KEY"); k != "" {
		return k, nil
	}
	data, err := os.ReadFile(*c.keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the API key from %s (set --key or SLUICE_KEY instead): %w", *c.keyFile, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// serverURL is --server, with http:// in front when it names no scheme
// (--server localhost:8080).
func (c command) serverURL() string {
	s := strings.TrimRight(*c.server, "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

// admin returns the admin API client for c's flags (parsed).
func (c command) admin() admin {
	key, err := c.key()
	return admin{server: c.serverURL(), key: key, keyErr: err}
}

// parse parses args and checks the number of positional arguments. usage
// ("stream create NAME [--partitions N]") is also what -h prints, with the
// flags.
func (c command) parse(args []string, want int, usage string) ([]string, error) {
	c.fs.Usage = func() {
		fmt.Fprintf(c.fs.Output(), "Usage: sluice %s\n\nFlags:\n", usage)
		c.fs.PrintDefaults()
	}
	pos, err := parseInterleaved(c.fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != want {
		return nil, errors.New("usage: sluice " + usage)
	}
	return pos, nil
}

// subcommands dispatches "sluice GROUP VERB ...".
func subcommands(group string, verbs map[string]func([]string) error) func([]string) error {
	groupVerbs[group] = slices.Sorted(maps.Keys(verbs))
	return func(args []string) error {
		if len(args) == 0 || verbs[args[0]] == nil {
			names := make([]string, 0, len(verbs))
			for v := range verbs {
				names = append(names, v)
			}
			slices.Sort(names)
			return fmt.Errorf("usage: sluice %s %s ...", group, strings.Join(names, "|"))
		}
		return verbs[args[0]](args[1:])
	}
}

func listAndShow(kind string) map[string]func([]string) error {
	return map[string]func([]string) error{
		"list": func(args []string) error {
			c := newCommand(kind + " list")
			output := outputFlag(c)
			if _, err := c.parse(args, 0, kind+" list [-o table|wide|json|yaml]"); err != nil {
				return err
			}
			return c.admin().show("/v1/"+kind+"s", *output, kind, "")
		},
		"show": func(args []string) error {
			c := newCommand(kind + " show")
			output := c.fs.String("o", "json", "output: json (the API's answer as it is) or yaml (the same as YAML)")
			pos, err := c.parse(args, 1, kind+" show NAME [-o json|yaml]")
			if err != nil {
				return err
			}
			if *output != "json" && *output != "yaml" {
				return fmt.Errorf("-o %q: want json or yaml", *output)
			}
			data, err := c.admin().do("GET", "/v1/"+kind+"s/"+url.PathEscape(pos[0]), nil)
			if err != nil {
				return err
			}
			return printAnswer(stdout, data, *output)
		},
	}
}

func streamCommands() func([]string) error {
	verbs := listAndShow("stream")
	verbs["create"] = func(args []string) error {
		c := newCommand("stream create")
		partitions := c.fs.Int("partitions", deploy.DefaultPartitions, "number of partitions")
		retention := c.fs.Duration("retention", deploy.DefaultRetention, "how long Kafka keeps records")
		pos, err := c.parse(args, 1, "stream create NAME [--partitions N] [--retention DUR]")
		if err != nil {
			return err
		}
		if *partitions < 1 {
			return fmt.Errorf("--partitions %d: a stream needs at least 1 partition", *partitions)
		}
		return c.admin().call("POST", "/v1/streams", deploy.Stream{Name: pos[0], Partitions: int32(*partitions), Retention: deploy.Duration(*retention)})
	}
	return subcommands("stream", verbs)
}

func tableCommands() func([]string) error {
	verbs := listAndShow("table")
	for _, verb := range []string{"create", "update"} {
		verbs[verb] = func(args []string) error {
			c := newCommand("table " + verb)
			schemaFile := c.fs.String("schema", "", "YAML or JSON file with the table schema (see docs/schemas.md)")
			fileAge := c.fs.Duration("file-age", 0, "write buffered rows at least this often (default 10s)")
			fileIdle := c.fs.Duration("file-idle", 0, "write buffered rows once no record came for this long (default 2s)")
			fileBytes := c.fs.String("file-bytes", "", "write a file once its buffered rows reach this much input (default 64MiB)")
			usage := "table create NAME --schema FILE [--file-age DUR] [--file-idle DUR] [--file-bytes SIZE]"
			if verb == "update" {
				usage = "table update NAME [--schema FILE] [--file-age DUR] [--file-idle DUR] [--file-bytes SIZE] (only what is given changes)"
			}
			pos, err := c.parse(args, 1, usage)
			if err != nil {
				return err
			}
			// What the flags set: a create's table, an update's patch.
			patch := map[string]any{"name": pos[0]}
			set := map[string]bool{}
			c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if *schemaFile == "" && verb == "create" {
				return errors.New("--schema FILE is required")
			}
			if *schemaFile != "" {
				data, err := os.ReadFile(*schemaFile)
				if err != nil {
					return fmt.Errorf("cannot read schema: %w", err)
				}
				s, err := schemas.ParseSchema(data)
				if err != nil {
					return fmt.Errorf("cannot use schema %s: %w", *schemaFile, err)
				}
				patch["schema"] = s
			}
			if set["file-age"] {
				patch["file_age"] = deploy.Duration(*fileAge)
			}
			if set["file-idle"] {
				patch["file_idle"] = deploy.Duration(*fileIdle)
			}
			if set["file-bytes"] {
				n, err := parseSize(*fileBytes)
				if err != nil {
					return fmt.Errorf("--file-bytes: %w", err)
				}
				patch["file_bytes"] = n
			}
			if verb == "update" {
				if len(patch) == 1 {
					return errors.New("give something to change: --schema, --file-age, --file-idle or --file-bytes")
				}
				return c.admin().call("PATCH", "/v1/tables/"+url.PathEscape(pos[0]), patch)
			}
			return c.admin().call("POST", "/v1/tables", patch)
		}
	}
	return subcommands("table", verbs)
}

func pipelineCommands() func([]string) error {
	verbs := listAndShow("pipeline")
	verbs["create"] = func(args []string) error {
		c := newCommand("pipeline create")
		stream := c.fs.String("stream", "", "stream to read")
		function := c.fs.String("function", "", "function[:version|alias] to run (none: copy records as they are)")
		table := c.fs.String("table", "", "table to write")
		size := c.fs.Int("batch-size", 0, "records per batch (default 100)")
		window := c.fs.Duration("batch-window", 0, "longest wait to fill a batch (default 500ms)")
		maxAttempts := c.fs.Int("max-attempts", 0, "give up on a batch after this many failed attempts (default 0: retry forever)")
		maxAge := c.fs.Duration("max-record-age", 0, "give up on a failing batch once its oldest record is this old (default 0: never)")
		deadLetter := c.fs.String("dead-letter", "", "stream that receives the records of batches given up")
		deadLetterTable := c.fs.String("dead-letter-table", "", "table that receives the records of batches given up, one row each (created if missing)")
		bisect := c.fs.Bool("bisect-on-error", false, "split a failing batch to give up only the records that fail on their own")
		pos, err := c.parse(args, 1, "pipeline create NAME --stream S [--function F[:QUALIFIER]] --table T [--batch-size N] [--batch-window DUR] "+
			"[--max-attempts N] [--max-record-age DUR] [--dead-letter S | --dead-letter-table T] [--bisect-on-error]")
		if err != nil {
			return err
		}
		return c.admin().call("POST", "/v1/pipelines", deploy.Pipeline{Name: pos[0], Stream: *stream, Function: *function,
			Table: *table, BatchSize: *size, BatchWindow: deploy.Duration(*window), MaxAttempts: *maxAttempts,
			MaxRecordAge: deploy.Duration(*maxAge), DeadLetter: *deadLetter, DeadLetterTable: *deadLetterTable, BisectOnError: *bisect})
	}
	for _, verb := range []string{"status", "pause", "resume"} {
		method, path := "POST", "/"+verb
		if verb == "status" {
			method = "GET"
		}
		verbs[verb] = func(args []string) error {
			c := newCommand("pipeline " + verb)
			var output *string
			if verb == "status" {
				output = outputFlag(c)
			}
			usage := "pipeline " + verb + " NAME"
			if verb == "status" {
				usage += " [-o table|wide|json|yaml]"
			}
			pos, err := c.parse(args, 1, usage)
			if err != nil {
				return err
			}
			if verb == "status" {
				return c.admin().show("/v1/pipelines/"+url.PathEscape(pos[0])+path, *output, "status", "partitions")
			}
			return c.admin().call(method, "/v1/pipelines/"+url.PathEscape(pos[0])+path, nil)
		}
	}
	return subcommands("pipeline", verbs)
}

// envFlags collects repeated --env K=V.
type envFlags map[string]string

func (e envFlags) String() string { return fmt.Sprint(map[string]string(e)) }
func (e envFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want K=V, got %q", s)
	}
	e[k] = v
	return nil
}

// parseSize reads 128MiB, 1GiB, 512MB, 65536.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return n * u.mult, nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB, GiB", s)
	}
	return n, nil
}

func fnCommands() func([]string) error {
	verbs := listAndShow("function")
	verbs["deploy"] = func(args []string) error {
		c := newCommand("fn deploy")
		runtime := c.fs.String("runtime", "", "wasm or exec")
		code := c.fs.String("code", "", "path of the wasm module or executable")
		memory := c.fs.String("memory", "", "memory limit, e.g. 128MiB (default 128MiB)")
		timeout := c.fs.Duration("timeout", 0, "per-batch time limit (default 30s)")
		env := envFlags{}
		c.fs.Var(env, "env", "K=V environment variable (repeatable)")
		pos, err := c.parse(args, 1, "fn deploy NAME --runtime wasm|exec --code PATH [--memory SIZE] [--timeout DUR] [--env K=V ...]")
		if err != nil {
			return err
		}
		if *runtime == "" || *code == "" {
			return errors.New("--runtime wasm|exec and --code PATH are required")
		}
		var mem int64
		if *memory != "" {
			if mem, err = parseSize(*memory); err != nil {
				return err
			}
		}
		data, err := os.ReadFile(*code)
		if err != nil {
			return fmt.Errorf("cannot read --code: %w", err)
		}
		req := deploy.DeployRequest{Code: data, FunctionConfig: deploy.FunctionConfig{
			Runtime: *runtime, Memory: mem, Timeout: deploy.Duration(*timeout), Env: env}}
		return c.admin().call("PUT", "/v1/functions/"+url.PathEscape(pos[0]), req)
	}
	verbs["publish"] = func(args []string) error {
		c := newCommand("fn publish")
		pos, err := c.parse(args, 1, "fn publish NAME")
		if err != nil {
			return err
		}
		return c.admin().call("POST", "/v1/functions/"+url.PathEscape(pos[0])+"/versions", nil)
	}
	verbs["alias"] = func(args []string) error {
		c := newCommand("fn alias")
		version := c.fs.Int("version", 0, "published version the alias points at")
		pos, err := c.parse(args, 2, "fn alias NAME ALIAS --version N")
		if err != nil {
			return err
		}
		if *version < 1 {
			return errors.New("--version N is required: the published version (1, 2, ...) the alias points at; fn publish prints it")
		}
		return c.admin().call("PUT", "/v1/functions/"+url.PathEscape(pos[0])+"/aliases/"+url.PathEscape(pos[1]), map[string]int{"version": *version})
	}
	verbs["logs"] = func(args []string) error {
		c := newCommand("fn logs")
		limit := c.fs.Int("limit", 100, "most recent lines to show")
		follow := c.fs.Bool("follow", false, "then keep printing new lines until interrupted (both print one JSON object per line)")
		pos, err := c.parse(args, 1, "fn logs NAME [--limit N] [--follow]")
		if err != nil {
			return err
		}
		path := fmt.Sprintf("/v1/functions/%s/logs?limit=%d", url.PathEscape(pos[0]), *limit)
		if *follow {
			return c.admin().followLogs(path, stdout, time.Second)
		}
		_, err = c.admin().printLogs(path, stdout)
		return err
	}
	return subcommands("fn", verbs)
}

// keyCommands: sluice key create|list|revoke.
func keyCommands() func([]string) error {
	return subcommands("key", map[string]func([]string) error{
		"create": func(args []string) error {
			c := newCommand("key create")
			var scopes []string
			c.fs.Func("scope", "a scope: admin, ingest:STREAM, query:TABLE (* for every stream or table); repeat for more", func(v string) error {
				scopes = append(scopes, v)
				return nil
			})
			name := c.fs.String("name", "", "a note saying whose key it is")
			limits := limitFlags(c)
			expires := c.fs.String("expires", "", "when the key stops working: a duration from now (720h) or an RFC 3339 time (default: never)")
			if _, err := c.parse(args, 0, "key create --scope SCOPE [--scope SCOPE ...] [--name NAME] [--expires DUR|TIME] [limits]"); err != nil {
				return err
			}
			l, err := limits()
			if err != nil {
				return err
			}
			req := auth.CreateRequest{Name: *name, Scopes: scopes, Limits: l}
			if *expires != "" {
				t, err := parseExpiry(*expires, time.Now())
				if err != nil {
					return err
				}
				req.Expires = &t
			}
			return c.admin().call("POST", "/v1/keys", req)
		},
		"list": func(args []string) error {
			c := newCommand("key list")
			output := outputFlag(c)
			if _, err := c.parse(args, 0, "key list [-o table|wide|json|yaml]"); err != nil {
				return err
			}
			return c.admin().show("/v1/keys", *output, "key", "")
		},
		"limits": func(args []string) error {
			c := newCommand("key limits")
			limits := limitFlags(c)
			pos, err := c.parse(args, 1, "key limits ID [--ingest-rps N] [--ingest-bytes-per-sec SIZE] [--queries-per-minute N] (all unset: no limits)")
			if err != nil {
				return err
			}
			l, err := limits()
			if err != nil {
				return err
			}
			return c.admin().call("PUT", "/v1/keys/"+url.PathEscape(pos[0])+"/limits", l)
		},
		"id": func(args []string) error {
			c := newCommand("key id")
			if _, err := c.parse(args, 0, "key id"); err != nil {
				return err
			}
			key, err := c.key()
			if err != nil {
				return err
			}
			if key == "" {
				return fmt.Errorf("no key: set --key or SLUICE_KEY, or run where %s is", *c.keyFile)
			}
			fmt.Println(auth.IDOf(key)) // the Postgres and Kafka user name of the key
			return nil
		},
		"revoke": func(args []string) error {
			c := newCommand("key revoke")
			pos, err := c.parse(args, 1, "key revoke ID")
			if err != nil {
				return err
			}
			return c.admin().call("DELETE", "/v1/keys/"+url.PathEscape(pos[0]), nil)
		},
	})
}

// parseExpiry reads a duration from now or an RFC 3339 time.
func parseExpiry(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(d).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: want a duration (720h) or an RFC 3339 time (2027-01-01T00:00:00Z)", v)
	}
	return t, nil
}

// limitFlags adds a key's usage plan flags to c; the function it returns
// reads them once parsed.
func limitFlags(c command) func() (auth.Limits, error) {
	rps := c.fs.Float64("ingest-rps", 0, "ingest requests per second the key may send, on each process (0: no limit)")
	bps := c.fs.String("ingest-bytes-per-sec", "0", "ingest body bytes per second, like 1MiB (0: no limit)")
	qpm := c.fs.Float64("queries-per-minute", 0, "queries per minute, over HTTP and Postgres (0: no limit)")
	return func() (auth.Limits, error) {
		n, err := parseSize(*bps)
		if err != nil {
			return auth.Limits{}, fmt.Errorf("--ingest-bytes-per-sec %q: %w", *bps, err)
		}
		return auth.Limits{IngestRequestsPerSec: *rps, IngestBytesPerSec: n, QueriesPerMinute: *qpm}, nil
	}
}
