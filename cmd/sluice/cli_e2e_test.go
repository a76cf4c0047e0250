package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/e2e"
	"go.yaml.in/yaml/v3"
)

// TestCLIHabits: -h exits 0 with the command's usage and flags, version
// prints one, missing or impossible flag values are named, and --server
// without a scheme works.
func TestCLIHabits(t *testing.T) {
	out, stderr, err := e2e.Run(t, t.Context(), nil, "stream", "create", "-h")
	if err != nil || !strings.Contains(out+stderr, "Usage: sluice stream create NAME") || !strings.Contains(out+stderr, "-partitions") {
		t.Fatalf("stream create -h: %v\n%s%s", err, out, stderr)
	}
	if out, _, err := e2e.Run(t, t.Context(), nil, "version"); err != nil || !strings.HasPrefix(out, "sluice ") {
		t.Fatalf("version: %v %q", err, out)
	}
	if _, _, err := e2e.Run(t, t.Context(), nil, "up", "--help"); err != nil {
		t.Fatalf("up --help: %v", err)
	}
	s := e2e.Up(t, t.TempDir())
	bare := s.HTTPAddr // no http://
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stream", "create", "x", "--partitions", "0"}, "--partitions 0"},
		{[]string{"fn", "deploy", "f"}, "--code PATH are required"},
		{[]string{"fn", "alias", "f", "live"}, "--version N is required"},
		{[]string{"sql", "select 1", "--server", "127.0.0.1:1"}, "set --server"},
	} {
		args := c.args
		if !strings.Contains(strings.Join(args, " "), "--server") {
			args = append(args, "--server", bare)
		}
		_, stderr, err := e2e.Run(t, t.Context(), nil, args...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("sluice %s: %v, stderr %q, want it to say %q", strings.Join(c.args, " "), err, stderr, c.want)
		}
	}
	if out, stderr, err := e2e.Run(t, t.Context(), nil, "stream", "list", "-o", "json", "--server", bare); err != nil || !strings.Contains(out, `"logs"`) {
		t.Fatalf("--server %s: %v %s", bare, err, stderr)
	}
	// list prints a table by default: a header, then a line per stream.
	out, _, err = e2e.Run(t, t.Context(), nil, "stream", "list", "--server", bare)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) < 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME PARTITIONS RETENTION" || !slices.ContainsFunc(lines[1:], func(l string) bool {
		return strings.Join(strings.Fields(l), " ") == "logs 4 168h0m0s"
	}) {
		t.Fatalf("stream list: %v\n%s", err, out)
	}
	out, _, err = e2e.Run(t, t.Context(), nil, "pipeline", "status", "logs", "--server", bare)
	if err != nil || !strings.HasPrefix(out, "PARTITION") || strings.Count(out, "\n") != 5 {
		t.Fatalf("pipeline status: %v\n%s", err, out)
	}
}

// TestPutRaw: `sluice put --raw` of a CRLF log file makes every line a row
// with its text in message.
func TestPutRaw(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	file := filepath.Join(t.TempDir(), "syslog.txt")
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf("Dec  3 12:00:%02d host sshd[%d]: raw line %d", i, 100+i, i))
	}
	os.WriteFile(file, []byte(strings.Join(lines, "\r\n")+"\r\n"), 0o644)
	if out, stderr, err := e2e.Run(t, t.Context(), nil, "put", "logs", file, "--raw", "--server", s.URL()); err != nil {
		t.Fatalf("put --raw: %v\n%s%s", err, out, stderr)
	}
	s.WaitCount("select count(*) from logs where message like '%raw line%'", 30, time.Minute)
	if n, err := s.Count("select count(*) from logs where message = '" + lines[7] + "'"); err != nil || n != 1 {
		t.Fatalf("line 8 as its message: %d, %v", n, err)
	}
}

// TestTableUpdateChangesOnlyWhatIsGiven: sluice table update --file-age
// keeps the table's other settings and its schema.
func TestTableUpdateChangesOnlyWhatIsGiven(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"columns":[{"name":"user","type":"string"}]}`), 0o644)
	cli(t, s, "table", "create", "clicks", "--schema", schema, "--file-bytes", "2MiB", "--file-age", "20s")
	out := cli(t, s, "table", "update", "clicks", "--file-age", "30s")
	if !strings.Contains(out, `"file_bytes": 2097152`) || !strings.Contains(out, `"file_age": "30s"`) || !strings.Contains(out, `"user"`) {
		t.Fatalf("after an update of --file-age only:\n%s", out)
	}
}

// TestCLIFnLogsNDJSON: `sluice fn logs` and `sluice fn logs --follow` print
// the same lines in the same format, one JSON object per line.
func TestCLIFnLogsNDJSON(t *testing.T) {
	s := e2e.Up(t, t.TempDir(), "--allow-exec")
	cli(t, s, "fn", "deploy", "chatty", "--runtime", "exec", "--code", "../../processors/fn/testdata/conform.py", "--timeout", "10s")
	cli(t, s, "stream", "create", "chat")
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"columns":[{"name":"offset","type":"int64"}]}`), 0o644)
	cli(t, s, "table", "create", "chat", "--schema", schema)
	cli(t, s, "pipeline", "create", "chat", "--stream", "chat", "--function", "chatty", "--table", "chat")
	for i := range 3 {
		rec := fmt.Sprintf(`{"op":"log","k":"k%d"}`+"\n", i)
		if status, body := s.Post("/v1/streams/chat/records", "application/x-ndjson", []byte(rec), nil); status != 200 {
			t.Fatalf("ingest: %d %s", status, body)
		}
	}
	var plain []string
	e2e.WaitFor(t, 60*time.Second, "3 lines in sluice fn logs", func() error {
		plain = strings.Split(strings.TrimSpace(cli(t, s, "fn", "logs", "chatty")), "\n")
		if n := len(slices.DeleteFunc(slices.Clone(plain), func(l string) bool { return !strings.Contains(l, "log at offset ") })); n != 3 {
			return fmt.Errorf("%d lines, want 3:\n%s", n, strings.Join(plain, "\n"))
		}
		return nil
	})
	for _, l := range plain {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("fn logs: line %q is not a JSON object: %v", l, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // then --follow is killed and the scan ends
	defer cancel()
	sc := bufio.NewScanner(startFollow(ctx, t, s, "chatty"))
	for i, want := range plain {
		if !sc.Scan() {
			t.Fatalf("fn logs --follow ended after %d lines", i)
		}
		if sc.Text() != want {
			t.Fatalf("fn logs --follow line %d:\n%s\nfn logs printed:\n%s", i, sc.Text(), want)
		}
	}
}

// TestCLIOutputYAMLAndWide: list, show and pipeline status print YAML with
// -o yaml (the API's answer, same keys and types), and list prints a column
// for every field with -o wide; an unknown -o names the choices.
func TestCLIOutputYAMLAndWide(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	var streams []struct {
		Name       string
		Partitions int
	}
	if err := yaml.Unmarshal([]byte(cli(t, s, "stream", "list", "-o", "yaml")), &streams); err != nil ||
		!slices.Contains(streams, struct {
			Name       string
			Partitions int
		}{"logs", 4}) {
		t.Fatalf("stream list -o yaml: %v %+v", err, streams)
	}
	var table struct {
		Name   string
		Schema struct{ Columns []struct{ Name string } }
	}
	if err := yaml.Unmarshal([]byte(cli(t, s, "table", "show", "logs", "-o", "yaml")), &table); err != nil || table.Name != "logs" || len(table.Schema.Columns) == 0 {
		t.Fatalf("table show -o yaml: %v %+v", err, table)
	}
	var status struct{ Partitions []struct{ Partition int } }
	if err := yaml.Unmarshal([]byte(cli(t, s, "pipeline", "status", "logs", "-o", "yaml")), &status); err != nil || len(status.Partitions) != 4 {
		t.Fatalf("pipeline status -o yaml: %v %+v", err, status)
	}
	header := func(out string) string { return strings.Join(strings.Fields(strings.SplitN(out, "\n", 2)[0]), " ") }
	if h := header(cli(t, s, "pipeline", "list")); strings.Contains(h, "BATCH_SIZE") {
		t.Fatalf("pipeline list (table) has the batch size: %s", h)
	}
	if h := header(cli(t, s, "pipeline", "list", "-o", "wide")); !strings.HasPrefix(h, "NAME STREAM FUNCTION TABLE INTERNAL") || !strings.Contains(h, "BATCH_SIZE") {
		t.Fatalf("pipeline list -o wide: %s", h)
	}
	if h := header(cli(t, s, "table", "list", "-o", "wide")); !strings.Contains(h, " SCHEMA") {
		t.Fatalf("table list -o wide: %s", h)
	}
	if _, stderr, err := e2e.Run(t, t.Context(), nil, "stream", "list", "-o", "xml", "--server", s.URL()); err == nil || !strings.Contains(stderr, "want table, wide, json or yaml") {
		t.Fatalf("-o xml: %v %s", err, stderr)
	}
}

// TestCLICompletion: the script of `sluice completion bash`, sourced in
// bash, completes the commands the usage names, a group's verbs and a
// command's flags, all read from the code that defines them; zsh gets the
// same function through bashcompinit.
func TestCLICompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed: cannot run the completion script")
	}
	script, stderr, err := e2e.Run(t, t.Context(), nil, "completion", "bash")
	if err != nil {
		t.Fatalf("completion bash: %v %s", err, stderr)
	}
	file := filepath.Join(t.TempDir(), "sluice.bash")
	os.WriteFile(file, []byte(script), 0o644)
	complete := func(words ...string) []string {
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		sh := fmt.Sprintf(`source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _sluice; printf '%%s\n' "${COMPREPLY[@]}"`, file, strings.Join(quoted, " "), len(words)-1)
		out, err := exec.CommandContext(t.Context(), bash, "-c", sh).CombinedOutput()
		if err != nil {
			t.Fatalf("complete %v: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	usage, _, _ := e2e.Run(t, t.Context(), nil, "help")
	commands := complete("sluice", "")
	for _, l := range strings.Split(usage, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "sluice" && !slices.Contains(commands, strings.Split(f[1], "|")[0]) {
			t.Errorf("the usage names %q, completion offers %v", f[1], commands)
		}
	}
	for _, c := range []struct {
		words []string
		want  []string
	}{
		{[]string{"sluice", "pi"}, []string{"pipeline"}},
		{[]string{"sluice", "fn", ""}, []string{"alias", "deploy", "list", "logs", "publish", "show"}},
		{[]string{"sluice", "pipeline", "create", "p", "--bi"}, []string{"--bisect-on-error"}},
		{[]string{"sluice", "fn", "logs", "f", "--fo"}, []string{"--follow"}},
		{[]string{"sluice", "put", "logs", "--ra"}, []string{"--raw"}},
		{[]string{"sluice", "up", "--allow-e"}, []string{"--allow-exec"}},
		{[]string{"sluice", "completion", ""}, []string{"bash", "zsh"}},
	} {
		if got := complete(c.words...); !slices.Equal(got, c.want) {
			t.Errorf("complete %q: %q, want %q", c.words, got, c.want)
		}
	}
	zsh, stderr, err := e2e.Run(t, t.Context(), nil, "completion", "zsh")
	if err != nil || !strings.HasPrefix(zsh, "#compdef sluice\n") || !strings.Contains(zsh, "bashcompinit") || !strings.HasSuffix(zsh, script) {
		t.Fatalf("completion zsh: %v %s\n%s", err, stderr, zsh)
	}
	if _, stderr, err := e2e.Run(t, t.Context(), nil, "completion", "fish"); err == nil || !strings.Contains(stderr, "bash|zsh") {
		t.Fatalf("completion fish: %v %s", err, stderr)
	}
}

// TestCLIPutProgress: `sluice put --progress` prints records sent and the
// rate on stderr from the first answer on, without it nothing but the
// summary when stderr is not a terminal, and on a terminal (under script(1))
// a progress line rewritten in place; the summary line ends every run.
func TestCLIPutProgress(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	file := filepath.Join(t.TempDir(), "in.ndjson")
	var in strings.Builder
	for i := range 50 {
		fmt.Fprintf(&in, `{"message":"progress %d"}`+"\n", i)
	}
	os.WriteFile(file, []byte(in.String()), 0o644)
	summary := regexp.MustCompile(`(?m)^sent 50 records, 0 failed in \S+ \(\d+ records/s\)$`)
	_, stderr, err := e2e.Run(t, t.Context(), nil, "put", "logs", file, "--batch", "10", "--progress", "--server", s.URL())
	if err != nil || !strings.HasPrefix(stderr, "progress: sent 10 records (") || !summary.MatchString(stderr) {
		t.Fatalf("put --progress: %v\n%s", err, stderr)
	}
	_, stderr, err = e2e.Run(t, t.Context(), nil, "put", "logs", file, "--batch", "10", "--server", s.URL())
	if err != nil || strings.Contains(stderr, "progress") || !summary.MatchString(stderr) {
		t.Fatalf("put into a pipe: %v\n%s", err, stderr)
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) is not installed: cannot run sluice put on a terminal")
	}
	shell := fmt.Sprintf("SLUICE_KEY=%s %s put logs %s --batch 10 --server %s", e2e.AdminKey, e2e.Binary(t), file, s.URL())
	out, err := exec.CommandContext(t.Context(), script, "-qec", shell, "/dev/null").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\r\033[Ksent 10 records (") || !strings.Contains(string(out), "sent 50 records, 0 failed") {
		t.Fatalf("put on a terminal: %v\n%q", err, out)
	}
	s.WaitCount("select count(*) from logs where message like 'progress %'", 150, time.Minute)
}
