package query

import (
	"database/sql/driver"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// ResultColumn is one column of a result, with DuckDB's name for its type
// (e.g. "BIGINT", "TIMESTAMP", "VARCHAR[]", "STRUCT(a INTEGER)", "JSON").
type ResultColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is a query's answer. Rows hold JSON-friendly values only:
//
//   - integers and floats as numbers; HUGEINT and DECIMAL as exact
//     json.Number; NaN and ±Inf as the strings "NaN", "Infinity", "-Infinity"
//     (JSON has no such numbers)
//   - VARCHAR and ENUM as strings, BOOLEAN as bools, NULL as nil
//   - TIMESTAMP (any precision, also WITH TIME ZONE) as RFC 3339 strings in
//     UTC with nanoseconds when present; DATE as "2006-01-02"; TIME as
//     "15:04:05.999999"; INTERVAL as {"months","days","micros"}
//   - BLOB as standard base64; UUID as its canonical text
//   - LIST and ARRAY as arrays, STRUCT as objects, MAP as objects with keys
//     rendered as text, UNION as its value, JSON as the parsed JSON value
//     (top-level JSON columns keep their numbers exact, as json.Number;
//     JSON nested in lists or structs is decoded by the driver, as float64).
//
// Objects are Go maps, so their keys are marshalled in sorted order rather
// than in STRUCT field order.
type Result struct {
	Columns   []ResultColumn `json:"columns"`
	Rows      [][]any        `json:"rows"`
	RowCount  int            `json:"row_count"`
	Truncated bool           `json:"truncated"`
	// TruncatedBy names the limit that cut the result ("" if none did).
	TruncatedBy string  `json:"truncated_by,omitempty"`
	ElapsedMs   float64 `json:"elapsed_ms"`
	// What the query read of the tables it named (like Athena's
	// DataScannedInBytes): files handed to DuckDB, their bytes, and the
	// files the statement's predicates ruled out before any was opened.
	FilesScanned int   `json:"files_scanned"`
	FilesPruned  int   `json:"files_pruned"`
	BytesScanned int64 `json:"bytes_scanned"`
	// SkippedFiles are committed files the query left out because they
	// cannot be read (only with Config.SkipUnreadable): its answer may lack
	// their rows.
	SkippedFiles []SkippedFile `json:"skipped_files,omitempty"`
}

func convertRow(vals []driver.Value, infos []duckdb.TypeInfo) []any {
	row := make([]any, len(vals))
	for i, v := range vals {
		var info duckdb.TypeInfo
		if i < len(infos) {
			info = infos[i]
		}
		row[i] = convert(v, info)
	}
	return row
}

// convert turns a driver value into a JSON-friendly one. info, possibly nil,
// is the value's DuckDB type; it disambiguates time.Time and []byte.
func convert(v any, info duckdb.TypeInfo) any {
	switch x := v.(type) {
	case nil, bool, string, int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, uint:
		return x
	case float64:
		return convertFloat(x, 64)
	case float32:
		return convertFloat(float64(x), 32)
	case *big.Int:
		return json.Number(x.String())
	case duckdb.Decimal:
		return json.Number(x.String())
	case time.Time:
		return convertTime(x, typeOf(info))
	case []byte:
		if typeOf(info) == duckdb.TYPE_UUID && len(x) == 16 {
			return formatUUID(x)
		}
		return base64.StdEncoding.EncodeToString(x)
	case duckdb.Interval:
		return map[string]any{"months": x.Months, "days": x.Days, "micros": x.Micros}
	case []any:
		return convertList(x, info)
	case map[string]any:
		return convertStruct(x, info)
	case duckdb.OrderedMap:
		return convertMap(x, info)
	case duckdb.Union:
		return convert(x.Value, unionMember(info, x.Tag))
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

func typeOf(info duckdb.TypeInfo) duckdb.Type {
	if info == nil {
		return duckdb.TYPE_INVALID
	}
	return info.InternalType()
}

// NonFinite names NaN and the infinities as Postgres and JSON clients spell
// them ("NaN", "Infinity", "-Infinity"); ok is false for a finite f.
func NonFinite(f float64) (name string, ok bool) {
	switch {
	case math.IsNaN(f):
		return "NaN", true
	case math.IsInf(f, 1):
		return "Infinity", true
	case math.IsInf(f, -1):
		return "-Infinity", true
	}
	return "", false
}

func convertFloat(f float64, bits int) any {
	if name, ok := NonFinite(f); ok {
		return name
	}
	switch {
	case bits == 32:
		// The shortest text that reads back as the same float32, not the
		// float64 widening (0.1 rather than 0.10000000149011612).
		return json.Number(strconv.FormatFloat(f, 'g', -1, 32))
	}
	return f
}

func convertTime(t time.Time, typ duckdb.Type) string {
	switch typ {
	case duckdb.TYPE_DATE:
		return t.Format(time.DateOnly)
	case duckdb.TYPE_TIME:
		return t.Format("15:04:05.999999")
	case duckdb.TYPE_TIME_TZ:
		return t.Format("15:04:05.999999Z07:00")
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func convertList(xs []any, info duckdb.TypeInfo) []any {
	var child duckdb.TypeInfo
	if info != nil {
		switch d := info.Details().(type) {
		case *duckdb.ListDetails:
			child = d.Child
		case *duckdb.ArrayDetails:
			child = d.Child
		}
	}
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = convert(x, child)
	}
	return out
}

func convertStruct(m map[string]any, info duckdb.TypeInfo) map[string]any {
	fields := map[string]duckdb.TypeInfo{}
	if info != nil {
		if d, ok := info.Details().(*duckdb.StructDetails); ok {
			for _, e := range d.Entries {
				fields[e.Name()] = e.Info()
			}
		}
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = convert(v, fields[k])
	}
	return out
}

func convertMap(m duckdb.OrderedMap, info duckdb.TypeInfo) map[string]any {
	var kInfo, vInfo duckdb.TypeInfo
	if info != nil {
		if d, ok := info.Details().(*duckdb.MapDetails); ok {
			kInfo, vInfo = d.Key, d.Value
		}
	}
	keys, vals := m.Keys(), m.Values()
	out := make(map[string]any, len(keys))
	for i, k := range keys {
		out[keyText(convert(k, kInfo))] = convert(vals[i], vInfo)
	}
	return out
}

// keyText renders a converted MAP key as an object key.
func keyText(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case nil:
		return "null"
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Sprint(k)
	}
	return string(b)
}

func unionMember(info duckdb.TypeInfo, tag string) duckdb.TypeInfo {
	if info == nil {
		return nil
	}
	if d, ok := info.Details().(*duckdb.UnionDetails); ok {
		for _, m := range d.Members {
			if m.Name == tag {
				return m.Type
			}
		}
	}
	return nil
}
