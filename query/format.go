package query

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// formats lists the output formats Format knows.
var formats = []string{"table", "json", "csv"}

// Format prints a result as:
//
//   - "table": aligned columns separated by " | ", a header line, a rule,
//     numbers right-aligned, NULL for nulls, control characters escaped, and a
//     "(N rows)" footer that also says when the result was truncated;
//   - "json": one JSON object per row (NDJSON), keys being the column names
//     in column order;
//   - "csv": a header line, then the rows (encoding/csv); NULL is an empty
//     field.
//
// Nested values are printed as compact JSON in table and csv output. An
// unknown format is an error listing the valid ones.
func Format(w io.Writer, r *Result, format string) error {
	var err error
	switch format {
	case "table":
		err = formatTable(w, r)
	case "json":
		err = formatJSON(w, r)
	case "csv":
		err = formatCSV(w, r)
	default:
		return fmt.Errorf("cannot format result: unknown format %q (valid: %s)", format, strings.Join(formats, ", "))
	}
	if err != nil {
		return fmt.Errorf("cannot format result as %s: %w", format, err)
	}
	return nil
}

func formatTable(w io.Writer, r *Result) error {
	cells, numeric := tableCells(r)
	widths := make([]int, len(r.Columns))
	for _, row := range cells {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for n, row := range cells {
		writeTableLine(&b, row, widths, numeric, n == 0)
		if n == 0 {
			writeRule(&b, widths)
		}
	}
	b.WriteString(footer(r))
	_, err := io.WriteString(w, b.String())
	return err
}

// tableCells renders the header and every row as text, and tells which
// columns are numeric (all non-null values are numbers).
func tableCells(r *Result) ([][]string, []bool) {
	numeric := make([]bool, len(r.Columns))
	header := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		header[i] = escapeControl(c.Name)
		numeric[i] = true
	}
	cells := [][]string{header}
	for _, row := range r.Rows {
		line := make([]string, len(r.Columns))
		for i := range line {
			var v any
			if i < len(row) {
				v = row[i]
			}
			line[i] = escapeControl(cellText(v, "NULL"))
			numeric[i] = numeric[i] && (v == nil || isNumber(v))
		}
		cells = append(cells, line)
	}
	return cells, numeric
}

func writeTableLine(b *strings.Builder, row []string, widths []int, numeric []bool, header bool) {
	var line strings.Builder
	for i, c := range row {
		if i > 0 {
			line.WriteString(" | ")
		}
		pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
		if numeric[i] && !header {
			line.WriteString(pad + c)
		} else {
			line.WriteString(c + pad)
		}
	}
	b.WriteString(strings.TrimRight(line.String(), " "))
	b.WriteByte('\n')
}

func writeRule(b *strings.Builder, widths []int) {
	for i, n := range widths {
		if i > 0 {
			b.WriteString("-+-")
		}
		b.WriteString(strings.Repeat("-", n))
	}
	b.WriteByte('\n')
}

func footer(r *Result) string {
	n := len(r.Rows)
	word := "rows"
	if n == 1 {
		word = "row"
	}
	scan := ""
	if r.FilesScanned > 0 || r.FilesPruned > 0 {
		scan = fmt.Sprintf("; %d files, %s scanned, %d pruned", r.FilesScanned, humanBytes(r.BytesScanned), r.FilesPruned)
	}
	skipped := ""
	for _, f := range r.SkippedFiles {
		skipped += fmt.Sprintf("warning: left out unreadable file %s of table %q: %s\n", f.File, f.Table, f.Error)
	}
	if r.Truncated {
		return fmt.Sprintf("(%d %s, truncated%s)\n%s", n, word, scan, skipped)
	}
	return fmt.Sprintf("(%d %s%s)\n%s", n, word, scan, skipped)
}

// humanBytes renders n bytes in binary units: 512 B, 1.5 KiB, 3.0 MiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func formatJSON(w io.Writer, r *Result) error {
	var buf bytes.Buffer
	for _, row := range r.Rows {
		buf.WriteByte('{')
		for i, c := range r.Columns {
			if i > 0 {
				buf.WriteByte(',')
			}
			var v any
			if i < len(row) {
				v = row[i]
			}
			if err := writeJSONValue(&buf, c.Name); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := writeJSONValue(&buf, v); err != nil {
				return err
			}
		}
		buf.WriteString("}\n")
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func formatCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		header[i] = c.Name
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, row := range r.Rows {
		rec := make([]string, len(r.Columns))
		for i := range rec {
			if i < len(row) {
				rec[i] = cellText(row[i], "")
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeJSONValue appends v as compact JSON without HTML escaping.
func writeJSONValue(buf *bytes.Buffer, v any) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
	return nil
}

// cellText renders one value as text; null is how nil reads.
func cellText(v any, null string) string {
	switch x := v.(type) {
	case nil:
		return null
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, *big.Int:
		return fmt.Sprint(x)
	}
	var buf bytes.Buffer
	if err := writeJSONValue(&buf, v); err != nil {
		return fmt.Sprint(v)
	}
	return buf.String()
}

func isNumber(v any) bool {
	switch v.(type) {
	case json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, *big.Int:
		return true
	}
	return false
}

// escapeControl keeps one value on one table line.
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
