package pgwire

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluice-dev/sluice/query"
)

// Postgres type OIDs used in RowDescription and ParameterDescription.
const (
	oidUnknown     = 0
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidUnknownLit  = 705
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidInterval    = 1186
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
	oidName        = 19
)

// oidFor maps a DuckDB type name (as query.ResultColumn.Type has it) to the
// Postgres type a client sees. Types without a close Postgres match
// (lists, structs, maps, unions, TIME WITH TIME ZONE, ...) are text, and
// their values are rendered as JSON (see textValue).
func oidFor(duckType string) uint32 {
	t := strings.ToUpper(strings.TrimSpace(duckType))
	switch t {
	case "BOOLEAN":
		return oidBool
	case "TINYINT", "SMALLINT", "UTINYINT":
		return oidInt2
	case "INTEGER", "USMALLINT":
		return oidInt4
	case "BIGINT", "UINTEGER":
		return oidInt8
	case "UBIGINT", "HUGEINT", "UHUGEINT", "VARINT", "BIGNUM":
		return oidNumeric
	case "FLOAT", "REAL":
		return oidFloat4
	case "DOUBLE":
		return oidFloat8
	case "VARCHAR":
		return oidText
	case "DATE":
		return oidDate
	case "TIME":
		return oidTime
	case "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS":
		return oidTimestamp
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		return oidTimestampTZ
	case "JSON":
		return oidJSON
	case "BLOB":
		return oidBytea
	case "UUID":
		return oidUUID
	case "INTERVAL":
		return oidInterval
	}
	if strings.HasPrefix(t, "DECIMAL") && !strings.ContainsAny(t, "[]") {
		return oidNumeric
	}
	return oidText
}

// typeSize is RowDescription's data type size: the fixed width, or -1.
func typeSize(oid uint32) int16 {
	switch oid {
	case oidBool:
		return 1
	case oidInt2:
		return 2
	case oidInt4, oidFloat4, oidDate:
		return 4
	case oidInt8, oidFloat8, oidTime, oidTimestamp, oidTimestampTZ:
		return 8
	case oidUUID, oidInterval:
		return 16
	}
	return -1
}

// textValue renders one value of a query.Result (see query.Result for the
// Go types) in Postgres's text format for a column of type oid; nil is SQL
// NULL.
func textValue(v any, col column) []byte {
	oid := col.oid
	if v == nil {
		return nil
	}
	if oid == oidJSON {
		return jsonText(v)
	}
	switch x := v.(type) {
	case bool:
		if x {
			return []byte("t")
		}
		return []byte("f")
	case string:
		return []byte(textString(x, oid))
	case json.Number:
		if oid == oidFloat4 {
			if f, err := strconv.ParseFloat(string(x), 32); err == nil {
				return []byte(formatFloat(f, 32))
			}
		}
		return []byte(padScale(string(x), col.scale))
	case float64:
		return []byte(formatFloat(x, 64))
	case float32:
		return []byte(formatFloat(float64(x), 32))
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return fmt.Append(nil, x)
	case map[string]any:
		if oid == oidInterval {
			if s, ok := intervalText(x); ok {
				return []byte(s)
			}
		}
	}
	return jsonText(v)
}

// textString renders a string value: query.Result keeps timestamps as
// RFC 3339 and BLOBs as base64, which Postgres writes differently.
func textString(s string, oid uint32) string {
	switch oid {
	case oidTimestamp, oidTimestampTZ:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return s // e.g. "infinity"
		}
		out := t.UTC().Format("2006-01-02 15:04:05.999999")
		if oid == oidTimestampTZ {
			out += "+00"
		}
		return out
	case oidBytea:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return s
		}
		return `\x` + hex.EncodeToString(b)
	}
	return s
}

// formatFloat writes a float as Postgres does (extra_float_digits 1, the
// default since Postgres 12): the shortest text that reads back exactly,
// in exponent form when the decimal exponent is below -4 or at least 15
// (float8) or 6 (float4).
func formatFloat(f float64, bits int) string {
	if name, ok := query.NonFinite(f); ok {
		return name
	}
	e := strconv.FormatFloat(f, 'e', -1, bits)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if exp < -4 || exp >= limit {
		return e
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

// jsonText renders lists, structs, maps and JSON values as JSON text.
func jsonText(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Append(nil, v)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// intervalText writes query's {"months","days","micros"} interval in
// Postgres's default IntervalStyle (postgres): "1 year 2 mons 3 days 04:05:06.5".
func intervalText(m map[string]any) (string, bool) {
	months, ok1 := asInt64(m["months"])
	days, ok2 := asInt64(m["days"])
	micros, ok3 := asInt64(m["micros"])
	if !ok1 || !ok2 || !ok3 {
		return "", false
	}
	var parts []string
	unit := func(n int64, singular, plural string) {
		if n == 1 {
			parts = append(parts, "1 "+singular)
		} else if n != 0 {
			parts = append(parts, strconv.FormatInt(n, 10)+" "+plural)
		}
	}
	unit(months/12, "year", "years")
	unit(months%12, "mon", "mons")
	unit(days, "day", "days")
	if micros != 0 || len(parts) == 0 {
		sign := ""
		if micros < 0 {
			sign, micros = "-", -micros
		}
		secs := micros / 1e6
		t := fmt.Sprintf("%s%02d:%02d:%02d", sign, secs/3600, secs/60%60, secs%60)
		if frac := micros % 1e6; frac != 0 {
			t += strings.TrimRight(fmt.Sprintf(".%06d", frac), "0")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, " "), true
}

func asInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		return int64(x), true
	}
	return 0, false
}

// column is one result column as sent in RowDescription.
type column struct {
	name  string
	oid   uint32
	scale int // DECIMAL(p,s): s, so 1.5 is written 1.500 as Postgres does; else -1
}

func columnsOf(res *query.Result) []column {
	cols := make([]column, len(res.Columns))
	for i, c := range res.Columns {
		cols[i] = column{name: pgColumnName(c.Name), oid: oidFor(c.Type), scale: decimalScale(c.Type)}
	}
	return cols
}

// decimalScale returns s of "DECIMAL(p,s)", or -1.
func decimalScale(typ string) int {
	rest, ok := strings.CutPrefix(strings.ToUpper(typ), "DECIMAL(")
	if !ok {
		return -1
	}
	_, s, ok := strings.Cut(strings.TrimSuffix(rest, ")"), ",")
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if !ok || err != nil {
		return -1
	}
	return n
}

// padScale writes a decimal with exactly scale fraction digits (DuckDB's
// Decimal.String drops trailing zeros).
func padScale(s string, scale int) string {
	if scale <= 0 || strings.ContainsAny(s, "eE") {
		return s
	}
	_, frac, found := strings.Cut(s, ".")
	if !found {
		s += "."
	}
	if n := scale - len(frac); n > 0 {
		s += strings.Repeat("0", n)
	}
	return s
}

// sameBytes are the types whose binary format is their text.
func sameBytes(oid uint32) bool {
	switch oid {
	case oidText, oidVarchar, oidBPChar, oidName, oidJSON, oidUnknown, oidUnknownLit:
		return true
	}
	return false
}

// binaryValue (with a session's own pgtype.Map: a Map is not safe for
// concurrent use) converts a value's Postgres text form to the binary format
// of oid, through pgx's codecs (text in, Go value, binary out), so the
// binary form is exactly what pgx and libpq read back.
func binaryValue(typeMap *pgtype.Map, text []byte, oid uint32) ([]byte, error) {
	if text == nil {
		return nil, nil
	}
	if sameBytes(oid) {
		return text, nil
	}
	typ, ok := typeMap.TypeForOID(oid)
	if !ok {
		return nil, fmt.Errorf("binary format is not supported for type OID %d: request text format", oid)
	}
	v, err := typ.Codec.DecodeValue(typeMap, oid, pgtype.TextFormatCode, text)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %q to binary %s: %w", text, typ.Name, err)
	}
	out, err := typeMap.Encode(oid, pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot convert %q to binary %s: %w", text, typ.Name, err)
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// textFromBinary converts a binary-format parameter value to text.
func textFromBinary(typeMap *pgtype.Map, b []byte, oid uint32) (string, error) {
	if sameBytes(oid) {
		return string(b), nil
	}
	if oid == oidJSONB {
		if len(b) == 0 || b[0] != 1 {
			return "", fmt.Errorf("unsupported binary jsonb version")
		}
		return string(b[1:]), nil
	}
	typ, ok := typeMap.TypeForOID(oid)
	if !ok {
		return "", fmt.Errorf("binary format is not supported for parameters of type OID %d: send it in text format", oid)
	}
	v, err := typ.Codec.DecodeValue(typeMap, oid, pgtype.BinaryFormatCode, b)
	if err != nil {
		return "", fmt.Errorf("cannot decode binary %s parameter: %w", typ.Name, err)
	}
	out, err := typeMap.Encode(oid, pgtype.TextFormatCode, v, nil)
	if err != nil {
		return "", fmt.Errorf("cannot decode binary %s parameter: %w", typ.Name, err)
	}
	return string(out), nil
}
