package schemas

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A table's files are laid out in Hive partitions, one directory level per
// PartitionBy entry: day(col) gives dt=YYYY-MM-DD, hour(col) gives
// dt=YYYY-MM-DD/hour=HH (an hour partition implies its day), and a plain
// column gives col=value. With no entries the table is partitioned by the
// hour of the row time, which is the time column or, without one, the record
// time: the layout sluice has always written.
//
// A plain partition column is not written into the Parquet files: its value
// lives only in the path, and readers get it back from there (DuckDB's
// hive_partitioning, Spark, Trino, Athena). Hive tables never hold partition
// keys in their files, Spark refuses files that do ("duplicate column(s) in
// the data schema and the partition schema"), and DuckDB silently prefers the
// path's value over the file's anyway, so a copy in the file could only
// disagree. The cost: a file read on its own, outside its directory, lacks
// the column.

// DefaultPartition is the path value Hive (and DuckDB) read as NULL.
const DefaultPartition = "__HIVE_DEFAULT_PARTITION__"

// maxSegment is the longest directory name a partition value may make
// ("col=" plus the escaped value): the usual file system limit. A longer
// string value does not fit its column (see Convert), so it never reaches
// PartitionPath.
const maxSegment = 255

type partFunc uint8

const (
	partDay partFunc = iota + 1
	partHour
	partValue
)

// partKey is one parsed PartitionBy entry.
type partKey struct {
	fn      partFunc
	col     int  // index of the column; -1: none (the record time)
	rowTime bool // the value is Row.Time: the time column, or the record time
	tag     tag  // the column's type
}

// parsePartKey parses entry e of PartitionBy ("day(c)", "hour(c)" or "c").
func (s *Schema) parsePartKey(e string) (partKey, error) {
	e = strings.TrimSpace(e)
	k := partKey{fn: partValue}
	name := e
	if fn, inner, ok := strings.Cut(e, "("); ok {
		inner, closed := strings.CutSuffix(inner, ")")
		switch strings.TrimSpace(fn) {
		case "day":
			k.fn = partDay
		case "hour":
			k.fn = partHour
		}
		if !closed || k.fn == partValue {
			return k, errors.New(`expected "day(column)", "hour(column)" or a column name`)
		}
		name = strings.TrimSpace(inner)
	}
	k.col = s.index(name)
	if k.col < 0 {
		return k, fmt.Errorf("no column %q", name)
	}
	t, err := parseKind(s.Columns[k.col].Type)
	if err != nil {
		return k, fmt.Errorf("column %q has an invalid type", name)
	}
	k.tag = t.tag
	k.rowTime = name == s.TimeColumn
	switch {
	case k.fn == partHour && k.tag != tTimestamp:
		return k, fmt.Errorf("hour() needs a timestamp column, %q is %s", name, t.canon)
	case k.fn == partDay && k.tag != tTimestamp && k.tag != tDate:
		return k, fmt.Errorf("day() needs a timestamp or date column, %q is %s", name, t.canon)
	case k.fn == partValue && k.tag != tString && k.tag != tInt32 && k.tag != tInt64 && k.tag != tBool && k.tag != tDate:
		return k, fmt.Errorf("column %q is %s; a plain partition column must be string, int32, int64, bool or date (use day() or hour() for a timestamp)", name, t.canon)
	case k.fn == partValue && strings.HasPrefix(name, "_"):
		return k, fmt.Errorf("column %q cannot be a partition key: Hive, Spark and Athena skip directories whose names start with _", name)
	}
	return k, nil
}

// partitionKeys returns the parsed PartitionBy, or the default hour(row time).
func (s *Schema) partitionKeys() ([]partKey, error) {
	if len(s.PartitionBy) == 0 {
		return []partKey{{fn: partHour, col: s.index(s.TimeColumn), rowTime: true, tag: tTimestamp}}, nil
	}
	var errs []error
	keys := make([]partKey, 0, len(s.PartitionBy))
	seen := map[int]bool{}
	timed := false
	for i, e := range s.PartitionBy {
		k, err := s.parsePartKey(e)
		switch {
		case err != nil:
		case k.fn != partValue && timed:
			err = errors.New("only one day() or hour() entry is allowed (both make the dt= level)")
		case seen[k.col]:
			err = errors.New("the column is already a partition key")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("partition_by[%d] %q: %w", i, e, err))
			continue
		}
		timed = timed || k.fn != partValue
		seen[k.col] = true
		keys = append(keys, k)
	}
	return keys, errors.Join(errs...)
}

// PartitionPath is the Hive partition directory of row r, relative to the
// table's directory, without leading or trailing slash: "dt=2026-11-22/hour=03",
// "region=eu/dt=2026-11-22". Late rows land in the partition of their own
// time. Null values (and empty strings, as Hive and Spark write them) give DefaultPartition; string values are escaped like
// Hive does (see escapePartition). The schema must be valid.
func (s *Schema) PartitionPath(r Row) string {
	var buf [64]byte
	b := buf[:0]
	if len(s.PartitionBy) == 0 {
		return string(appendTimePart(b, partHour, r.Time, true))
	}
	for i, e := range s.PartitionBy {
		k, err := s.parsePartKey(e)
		if err != nil {
			panic(fmt.Sprintf("BUG: partition_by[%d] %q: %v (Validate the schema first)", i, e, err))
		}
		if i > 0 {
			b = append(b, '/')
		}
		b = k.appendPath(b, s, r)
	}
	return string(b)
}

func (k partKey) appendPath(b []byte, s *Schema, r Row) []byte {
	if k.rowTime {
		return appendTimePart(b, k.fn, r.Time, true)
	}
	v := r.Values[k.col]
	switch {
	case k.fn != partValue && v == nil:
		return appendTimePart(b, k.fn, time.Time{}, false)
	case k.fn != partValue && k.tag == tDate:
		return appendTimePart(b, k.fn, time.Unix(int64(v.(int32))*86400, 0).UTC(), true)
	case k.fn != partValue:
		return appendTimePart(b, k.fn, time.UnixMicro(v.(int64)).UTC(), true)
	}
	b = append(b, s.Columns[k.col].Name...)
	b = append(b, '=')
	switch v := v.(type) {
	case nil:
		return append(b, DefaultPartition...)
	case string:
		if v == "" { // as Hive and Spark write it: they refuse "col="
			return append(b, DefaultPartition...)
		}
		return appendEscaped(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int32:
		if k.tag == tDate {
			return time.Unix(int64(v)*86400, 0).UTC().AppendFormat(b, time.DateOnly)
		}
		return strconv.AppendInt(b, int64(v), 10)
	}
	panic(fmt.Sprintf("BUG: partition value %T", v))
}

// appendTimePart appends dt=, and for partHour /hour=, of t (UTC), or the
// default partition when !ok (a null value).
func appendTimePart(b []byte, fn partFunc, t time.Time, ok bool) []byte {
	b = append(b, "dt="...)
	if !ok {
		b = append(b, DefaultPartition...)
		if fn == partHour {
			b = append(b, "/hour="+DefaultPartition...)
		}
		return b
	}
	t = t.UTC()
	b = t.AppendFormat(b, time.DateOnly)
	if fn == partHour {
		b = append(b, "/hour="...)
		b = append(b, byte('0'+t.Hour()/10), byte('0'+t.Hour()%10))
	}
	return b
}

// appendEscaped appends a string partition value escaped as Hive's
// FileUtils.escapePathName does: %XX (upper-case hex) for the ASCII control
// characters and " # % ' * / : = ? \ { [ ] ^ DEL; besides, every byte of a
// non-printable Unicode character (like U+2028), which Hive leaves as is but
// which makes awkward directory names. DuckDB, Spark and Hive decode %XX
// when reading the path. A value that is literally DefaultPartition gets its
// first byte escaped, so it reads back as itself rather than as NULL.
func appendEscaped(b []byte, v string) []byte {
	if v == DefaultPartition {
		return append(b, "%5F"+DefaultPartition[1:]...)
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if mustEscape(c) {
				b = appendPct(b, c)
			} else {
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			for j := i; j < i+n; j++ {
				b = appendPct(b, v[j])
			}
		} else {
			b = append(b, v[i:i+n]...)
		}
		i += n
	}
	return b
}

func mustEscape(c byte) bool {
	return c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", c) >= 0
}

func appendPct(b []byte, c byte) []byte {
	const hex = "0123456789ABCDEF"
	return append(b, '%', hex[c>>4], hex[c&15])
}

// PartitionColumns are the Hive partition columns in path order, with their
// kinds: dt (date) and hour (int32) for day()/hour(), or a plain partition
// column as declared. A query engine should pin these types (DuckDB's
// hive_types) rather than let them be guessed from the paths.
func (s *Schema) PartitionColumns() []Column {
	keys, _ := s.partitionKeys()
	var cols []Column
	for _, k := range keys {
		switch k.fn {
		case partDay:
			cols = append(cols, Column{Name: "dt", Type: Date})
		case partHour:
			cols = append(cols, Column{Name: "dt", Type: Date}, Column{Name: "hour", Type: Int32})
		default:
			cols = append(cols, s.Columns[k.col])
		}
	}
	return cols
}

// FileColumns are the columns stored in the Parquet files: all but the plain
// partition columns, which live in the path only.
func (s *Schema) FileColumns() []Column {
	skip := s.plainPartitionSet()
	cols := make([]Column, 0, len(s.Columns))
	for i, c := range s.Columns {
		if !skip[i] {
			cols = append(cols, c)
		}
	}
	return cols
}

// plainPartitionSet marks, by column index, the plain partition columns.
func (s *Schema) plainPartitionSet() []bool {
	set := make([]bool, len(s.Columns))
	for _, e := range s.PartitionBy {
		if k, err := s.parsePartKey(e); err == nil && k.fn == partValue {
			set[k.col] = true
		}
	}
	return set
}

// checkPartitionValue returns a reason if v, the value of column c, cannot
// be a partition value because its directory name would be too long.
func (s *Schema) checkPartitionValue(c Column, v any) string {
	str, ok := v.(string)
	if !ok || len(s.PartitionBy) == 0 || len(c.Name)+1+len(str) <= maxSegment/3 {
		return ""
	}
	for _, e := range s.PartitionBy {
		if strings.TrimSpace(e) == c.Name {
			if n := len(c.Name) + 1 + len(appendEscaped(nil, str)); n > maxSegment {
				return fmt.Sprintf("too long for a partition key: its directory name would have %d bytes, more than %d", n, maxSegment)
			}
		}
	}
	return ""
}
