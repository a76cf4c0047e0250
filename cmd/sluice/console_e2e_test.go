package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// browser starts headless Chromium (Debian's chromium, or $SLUICE_CHROMIUM)
// for the console tests; without one the test is skipped, unless
// SLUICE_REQUIRE_CHROMIUM=1 (scripts/test sets it when it installed one).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("SLUICE_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("SLUICE_REQUIRE_CHROMIUM") == "1" {
			t.Fatal("no chromium found and SLUICE_REQUIRE_CHROMIUM=1: install Debian's chromium package (scripts/test does) or set SLUICE_CHROMIUM")
		}
		t.Skip("no chromium found (install Debian's chromium package, or set SLUICE_CHROMIUM): skipping the console browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 860), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("no-proxy-server", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser (no timeout: it would end the browser)
		t.Fatalf("cannot start %s: %v", path, err)
	}
	return ctx
}

// browse runs browser actions, each call within a minute.
func browse(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, e2e.Scaled(time.Minute))
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// innerText is the innerText of the first element sel matches ("" if none).
func innerText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	q, _ := json.Marshal(sel)
	ctx, cancel := context.WithTimeout(ctx, e2e.Scaled(time.Minute))
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%s) || {innerText: ""}).innerText`, q)))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return out
}

// waitText polls until the element sel holds want.
func waitText(t *testing.T, ctx context.Context, timeout time.Duration, sel, want string) {
	t.Helper()
	e2e.WaitFor(t, timeout, fmt.Sprintf("%s to show %q", sel, want), func() error {
		if got := innerText(t, ctx, sel); !strings.Contains(got, want) {
			return fmt.Errorf("it shows %q; the page shows %q", got, innerText(t, ctx, "#main"))
		}
		return nil
	})
}

// screenshot saves the browser's viewport as name in the artifacts
// directory ($SLUICE_ARTIFACTS, default <temp>/sluice-artifacts).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("SLUICE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "sluice-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, e2e.Scaled(time.Minute))
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestConsoleBrowser drives the web console in headless Chromium against
// `sluice up`: a wrong key sent back to the key form, the right one typed
// once (kept across a reload), a query and its rows with types and what it
// scanned (run with Ctrl-Enter), its bar chart, a long query cancelled, a
// producer's stream page with its last records, a pipeline whose partition
// retries a poison record with the error, the function's stderr and its
// lag age, the table browser, the function's live logs, and the alias moved
// to a fixed version from the function page, after which the partition
// recovers (no lag, no lag age) and every row is in the table; then pause
// and resume from the page.
func TestConsoleBrowser(t *testing.T) {
	ctx := browser(t)
	s := e2e.Up(t, t.TempDir())
	// Version 1 fails on the poison record; version 2 (no FAIL_POISON) does
	// not. The pipeline retries forever (no --max-attempts).
	createOrders(t, s)
	cli(t, s, "fn", "publish", "poison")
	cli(t, s, "fn", "deploy", "poison", "--runtime", "wasm", "--code", buildPoison(t), "--timeout", "10s")
	cli(t, s, "fn", "publish", "poison")
	cli(t, s, "fn", "alias", "poison", "live", "--version", "1")
	cli(t, s, "pipeline", "create", "orders", "--stream", "orders", "--function", "poison:live", "--table", "orders", "--batch-size", "1")
	putOrders(t, s)
	logs := `{"level":"info","service":"console","message":"hello-console"}` + "\n" + `{"level":"warn","service":"console","message":"hello-console"}` + "\n"
	if code, body := s.Post("/v1/streams/logs/records", "application/x-ndjson", []byte(logs), nil); code != 200 {
		t.Fatalf("ingest: %d %s", code, body)
	}
	s.WaitCount("select count(*) from logs where message = 'hello-console'", 2, time.Minute)

	// A wrong key is refused by the first call it makes (401), and the key
	// form comes back saying why.
	browse(t, ctx, chromedp.Navigate(s.URL()+"/"), chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), "sluice_not-a-key-of-this-server"), chromedp.Click(chromedp.CSS("#login-button")),
		chromedp.WaitVisible(chromedp.CSS("#sql")), chromedp.Click(chromedp.CSS("#run")))
	waitText(t, ctx, time.Minute, "#login .error", "Bearer")
	// The key, typed once; the query page is the first one.
	browse(t, ctx, chromedp.SendKeys(chromedp.CSS("#key"), e2e.AdminKey), chromedp.Click(chromedp.CSS("#login-button")), chromedp.WaitVisible(chromedp.CSS("#sql")))
	browse(t, ctx, chromedp.SetValue(chromedp.CSS("#sql"), "select level, message, count(*) as n from logs where message = 'hello-console' group by all order by level"),
		chromedp.Focus(chromedp.CSS("#sql")), chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	waitText(t, ctx, time.Minute, "#result tbody", "warn\thello-console\t1")
	if got := innerText(t, ctx, "#result tbody"); !strings.Contains(got, "info\thello-console\t1") {
		t.Fatalf("result rows: %q", got)
	}
	if got := innerText(t, ctx, "#result thead"); !strings.Contains(got, "BIGINT") {
		t.Fatalf("the result header does not show the column types: %q", got)
	}
	waitText(t, ctx, time.Second, "#stats", "2 rows")
	if got := innerText(t, ctx, "#stats"); !strings.Contains(got, "scanned") || strings.Contains(got, " 0 files scanned") {
		t.Fatalf("the result does not say what was scanned: %q", got)
	}
	// A bar chart of the result.
	browse(t, ctx, chromedp.SetValue(chromedp.CSS("#chart-kind"), "bar"))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("chart-kind").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, time.Minute, ".legend", "n")
	bars, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("svg.chart rect").length`))
	if err != nil || bars != 2 {
		t.Fatalf("the bar chart has %d bars, want 2: %v", bars, err)
	}
	screenshot(t, ctx, "console-query.png")

	// A long query is cancelled from the page.
	browse(t, ctx, chromedp.SetValue(chromedp.CSS("#sql"), "select count(*) from range(1000000000000::bigint)"), chromedp.Click(chromedp.CSS("#run")))
	waitText(t, ctx, time.Minute, "#running", "Running")
	browse(t, ctx, chromedp.Click(chromedp.CSS("#cancel")))
	waitText(t, ctx, time.Minute, "#output", "Cancelled after")

	// A reload keeps the key (sessionStorage): no key form again.
	browse(t, ctx, chromedp.Navigate(s.URL()+"/#/streams/orders"), chromedp.Reload())
	waitText(t, ctx, time.Minute, "#ingest-url", s.URL()+"/v1/streams/orders/records")
	waitText(t, ctx, time.Minute, "#last-records", `"poison":true`)
	screenshot(t, ctx, "console-stream.png")

	// The retrying partition shows its error and the function's stderr.
	browse(t, ctx, chromedp.Navigate(s.URL()+"/#/pipelines/orders"))
	waitText(t, ctx, 2*time.Minute, "#partitions", "retrying")
	waitText(t, ctx, time.Minute, "#partitions .last-error", "poison pill at offset")
	waitText(t, ctx, time.Minute, "#partitions .stderr", "poison pill at offset")
	// and its lag age: the age of the poison record it is stuck on.
	waitText(t, ctx, time.Minute, "#partitions-box", "the oldest unprocessed")
	waitText(t, ctx, time.Minute, `#partitions tr[data-state="retrying"] .lag-age`, " s")
	screenshot(t, ctx, "console-pipeline-retrying.png")

	// The table browser: schema, file count and size, partitions.
	browse(t, ctx, chromedp.Navigate(s.URL()+"/#/tables/logs"))
	waitText(t, ctx, time.Minute, "#schema", "ts\ttimestamp\tno\ttime column")
	waitText(t, ctx, time.Minute, "#table-stats", "1.6 KiB")
	waitText(t, ctx, time.Minute, "#table-partitions", "hour")

	// Move the alias from the function page, whose live logs show the failure.
	browse(t, ctx, chromedp.Navigate(s.URL()+"/#/functions/poison"), chromedp.WaitVisible(chromedp.CSS(`select[data-alias="live"]`)))
	waitText(t, ctx, time.Minute, "#logs", "poison pill at offset 3")
	browse(t, ctx, chromedp.SetValue(chromedp.CSS(`select[data-alias="live"]`), "2"), chromedp.Click(chromedp.CSS(`button[data-move="live"]`)))
	waitText(t, ctx, time.Minute, `tr[data-alias-row="live"] .alias-version`, "2")
	var f struct{ Aliases map[string]int }
	if s.Get("/v1/functions/poison", &f); f.Aliases["live"] != 2 {
		t.Fatalf("the alias did not move: %v", f.Aliases)
	}

	// The partition recovers: every order is in the table, none retries.
	browse(t, ctx, chromedp.Navigate(s.URL()+"/#/pipelines/orders"))
	s.WaitCount("select count(*) from orders", 5, 2*time.Minute)
	e2e.WaitFor(t, time.Minute, "every partition of orders to run without lag", func() error {
		got := innerText(t, ctx, "#partitions-box")
		if !strings.Contains(got, "Lag: 0 records in all.") || strings.Contains(got, "retrying") || strings.Count(got, "running") != 2 {
			return fmt.Errorf("it shows %q", got)
		}
		return nil
	})
	screenshot(t, ctx, "console-pipeline-recovered.png")

	// Pause and resume from the page.
	paused := func(want bool) {
		t.Helper()
		e2e.WaitFor(t, time.Minute, fmt.Sprintf("pipeline orders paused=%v", want), func() error {
			var p struct{ Paused bool }
			if s.Get("/v1/pipelines/orders", &p); p.Paused != want {
				return fmt.Errorf("paused=%v", p.Paused)
			}
			return nil
		})
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS("#pause")))
	paused(true)
	browse(t, ctx, chromedp.WaitVisible(chromedp.CSS("#resume")), chromedp.Click(chromedp.CSS("#resume")))
	paused(false)
	browse(t, ctx, chromedp.WaitVisible(chromedp.CSS("#pause")))
}

// TestConsoleServing: the console's files are served without a key with
// a Content-Security-Policy that allows no inline script, the Host check
// still applies to them, and the stream tail it reads needs an admin key
// and keeps its limit (0 to 100 records).
func TestConsoleServing(t *testing.T) {
	s := e2e.Up(t, t.TempDir())
	get := func(path, key string) (*http.Response, string) {
		t.Helper()
		resp, err := s.Do("GET", path, "", nil, key)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script type="module" src="/assets/app.js">`) {
		t.Fatalf("GET /: %s %q", resp.Status, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP: %q", csp)
	}
	resp, _ = get("/assets/app.js", "")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /assets/app.js: %s %v", resp.Status, resp.Header)
	}
	if resp, _ = get("/nothing-here", ""); resp.StatusCode != 404 {
		t.Fatalf("GET /nothing-here: %s", resp.Status)
	}
	req, _ := http.NewRequest("GET", s.URL()+"/", nil)
	req.Host = "attacker.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("GET / with a foreign Host: %v %v", resp, err)
	}

	if code, body := s.Post("/v1/streams/logs/records", "application/x-ndjson", []byte(`{"message":"tail-me"}`+"\n"), nil); code != 200 {
		t.Fatalf("ingest: %d %s", code, body)
	}
	if resp, _ := get("/v1/streams/logs/tail", ""); resp.StatusCode != 401 {
		t.Fatalf("tail without a key: %s", resp.Status)
	}
	key := createKey(t, s, "--scope", "query:*").Key
	if resp, _ := get("/v1/streams/logs/tail", key); resp.StatusCode != 403 {
		t.Fatalf("tail with a query key: %s", resp.Status)
	}
	for _, limit := range []string{"-1", "101", "x"} {
		if resp, body := get("/v1/streams/logs/tail?limit="+limit, e2e.AdminKey); resp.StatusCode != 400 || !strings.Contains(body, "from 0 to 100") {
			t.Fatalf("tail?limit=%s: %s %s", limit, resp.Status, body)
		}
	}
	if resp, body := get("/v1/streams/nope/tail", e2e.AdminKey); resp.StatusCode != 404 {
		t.Fatalf("tail of an unknown stream: %s %s", resp.Status, body)
	}
	type tail struct {
		Partitions []struct{ Partition int32 }
		Records    []struct{ Value string }
	}
	var ans tail
	if code, body := s.Get("/v1/streams/logs/tail?limit=100", &ans); code != 200 || len(ans.Partitions) != 4 || len(ans.Records) != 1 || !strings.Contains(ans.Records[0].Value, "tail-me") {
		t.Fatalf("tail?limit=100: %d %s", code, body)
	}
	if code, body := s.Get("/v1/streams/logs/tail?limit=0", &ans); code != 200 || len(ans.Records) != 0 || len(ans.Partitions) != 4 {
		t.Fatalf("tail?limit=0: %d %s", code, body)
	}
}
