package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/sluice-dev/sluice/internal/e2e"
)

// TestConsoleQueryPage drives the console's query page in headless Chromium
// against `sluice up`: a result of 250 rows in pages of 100 (the next page
// starts at row 101), a time series drawn as a line chart (one line through
// every row), a past query run again from the history, and "Download
// Parquet", which runs the editor's SQL as an async query and downloads its
// whole result (25,000 rows, more than a console result holds) as a Parquet
// file the browser saves.
func TestConsoleQueryPage(t *testing.T) {
	ctx := browser(t)
	s := e2e.Up(t, t.TempDir())
	browse(t, ctx, chromedp.Navigate(s.URL()+"/"), chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), e2e.AdminKey), chromedp.Click(chromedp.CSS("#login-button")), chromedp.WaitVisible(chromedp.CSS("#sql")))
	run := func(sql string) {
		t.Helper()
		browse(t, ctx, chromedp.SetValue(chromedp.CSS("#sql"), sql), chromedp.Click(chromedp.CSS("#run")))
	}

	// Paging: 100 rows a page; the second one starts at row 101 (i = 100).
	const paged = "select range as i, range * 2 as n from range(250)"
	run(paged)
	waitText(t, ctx, time.Minute, "#stats", "250 rows")
	waitText(t, ctx, time.Minute, "#page", "page 1 of 3")
	if got := innerText(t, ctx, "#result tbody tr:first-child"); got != "0\t0" {
		t.Fatalf("page 1 starts with %q, want row 1 (0, 0)", got)
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS("#next-page")))
	waitText(t, ctx, time.Minute, "#page", "page 2 of 3")
	if got := innerText(t, ctx, "#result tbody tr:first-child"); got != "100\t200" {
		t.Fatalf("page 2 starts with %q, want row 101 (100, 200)", got)
	}
	if rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#result tbody tr").length`)); err != nil || rows != 100 {
		t.Fatalf("page 2 has %d rows, want 100: %v", rows, err)
	}

	// A time series as a line chart: one polyline through its 10 points.
	run("select timestamp '2026-01-01 00:00:00' + to_minutes(range) as t, range * range as n from range(10)")
	waitText(t, ctx, time.Minute, "#stats", "10 rows")
	browse(t, ctx, chromedp.SetValue(chromedp.CSS("#chart-kind"), "line"))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("chart-kind").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, time.Minute, ".legend", "n")
	points, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("svg.chart polyline")].map((p) => p.getAttribute("points"))`))
	if err != nil || len(points) != 1 || len(strings.Fields(points[0])) != 10 {
		t.Fatalf("the line chart has lines %q, want one through 10 points: %v", points, err)
	}
	screenshot(t, ctx, "console-line-chart.png")

	// The paged query again, from the history.
	browse(t, ctx, chromedp.WaitVisible(chromedp.CSS("#history .history-run")))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`[...document.querySelectorAll("#history li")].find((li) => li.querySelector(".sql-snippet").title === %q).querySelector(".history-run").click() ?? true`, paged))); err != nil {
		t.Fatalf("cannot click the history entry of %q: %v", paged, err)
	}
	waitText(t, ctx, time.Minute, "#stats", "250 rows")
	waitText(t, ctx, time.Minute, "#page", "page 1 of 3")
	if sql, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("sql").value`)); err != nil || sql != paged {
		t.Fatalf("the editor holds %q after running it from the history, want %q: %v", sql, paged, err)
	}

	// Download Parquet: the whole result, past the 10,000 rows a console
	// result holds, saved by the browser.
	dir := t.TempDir()
	if _, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir}); err != nil {
		t.Fatal(err)
	}
	const want = 25000
	browse(t, ctx, chromedp.SetValue(chromedp.CSS("#sql"), fmt.Sprintf("select range as i, 'row ' || range as s from range(%d)", want)),
		chromedp.Click(chromedp.CSS("#download-parquet")))
	waitText(t, ctx, 2*time.Minute, "#parquet-status", fmt.Sprintf("Parquet: %d rows", want))
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("parquet-status").dataset.rows`)); err != nil || got != strconv.Itoa(want) {
		t.Fatalf("the async query's rows: %q, want %d: %v", got, want, err)
	}
	path := filepath.Join(dir, "result.parquet")
	e2e.WaitFor(t, time.Minute, "the browser to save result.parquet", func() error {
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(data) < 8 || !bytes.HasPrefix(data, []byte("PAR1")) || !bytes.HasSuffix(data, []byte("PAR1")) {
			return fmt.Errorf("%s: %d bytes, not (yet) a whole Parquet file", path, len(data))
		}
		return nil
	})
	f, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatalf("cannot read the downloaded file: %v", err)
	}
	defer f.Close()
	if n := f.NumRows(); n != want {
		t.Fatalf("the downloaded Parquet file has %d rows, want %d", n, want)
	}
}
