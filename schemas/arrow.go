package schemas

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// timestampType is how every timestamp column is stored: microseconds,
// adjusted to UTC (Parquet isAdjustedToUTC=true), which DuckDB reads as
// TIMESTAMP WITH TIME ZONE and Spark, Trino and Athena as an instant.
var timestampType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// jsonType stores JSON as UTF-8 strings annotated with Parquet's JSON logical
// type, so DuckDB reads the column as JSON.
var jsonType = func() arrow.DataType {
	t, err := extensions.NewJSONType(arrow.BinaryTypes.String)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return t
}()

// arrowType maps a type to Arrow. Nested values are always nullable. Lists
// name their element "element" and maps their entries "key" and "value", as
// the Parquet spec does, so a file read back has the same Arrow schema.
func arrowType(t *typ) arrow.DataType {
	switch t.tag {
	case tString:
		return arrow.BinaryTypes.String
	case tBool:
		return arrow.FixedWidthTypes.Boolean
	case tInt32:
		return arrow.PrimitiveTypes.Int32
	case tInt64:
		return arrow.PrimitiveTypes.Int64
	case tFloat32:
		return arrow.PrimitiveTypes.Float32
	case tFloat64:
		return arrow.PrimitiveTypes.Float64
	case tTimestamp:
		return timestampType
	case tDate:
		return arrow.FixedWidthTypes.Date32
	case tJSON:
		return jsonType
	case tBinary:
		return arrow.BinaryTypes.Binary
	case tDecimal:
		return &arrow.Decimal128Type{Precision: t.prec, Scale: t.scale}
	case tList:
		return arrow.ListOfField(arrow.Field{Name: "element", Type: arrowType(t.elem), Nullable: true})
	case tMap:
		return arrow.MapOf(arrow.BinaryTypes.String, arrowType(t.elem))
	case tStruct:
		fs := make([]arrow.Field, len(t.fields))
		for i, f := range t.fields {
			fs[i] = arrow.Field{Name: f.name, Type: arrowType(f.typ), Nullable: true}
		}
		return arrow.StructOf(fs...)
	}
	panic(fmt.Sprintf("BUG: no Arrow type for %q", t.canon))
}

// DuckDBType is the DuckDB SQL type that reading a column of kind k from the
// Parquet files gives: DECIMAL(18,2), VARCHAR[], MAP(VARCHAR, BIGINT),
// STRUCT("a" INTEGER, "b" VARCHAR). Struct field names are always
// double-quoted, as database/sql's column types print them, which keeps
// keywords like "order" valid in a CAST; they are identifiers (see
// ValidName), so they need no escaping. DESCRIBE and typeof() print the same
// types with the quotes left out where they are not needed. It panics on a
// kind that does not parse, which Validate reports.
func DuckDBType(k Kind) string {
	t, err := parseKind(k)
	if err != nil {
		panic(fmt.Sprintf("BUG: no DuckDB type for kind %q: %v", k, err))
	}
	return duckType(t)
}

func duckType(t *typ) string {
	switch t.tag {
	case tString:
		return "VARCHAR"
	case tBool:
		return "BOOLEAN"
	case tInt32:
		return "INTEGER"
	case tInt64:
		return "BIGINT"
	case tFloat32:
		return "FLOAT"
	case tFloat64:
		return "DOUBLE"
	case tTimestamp:
		return "TIMESTAMP WITH TIME ZONE"
	case tDate:
		return "DATE"
	case tJSON:
		return "JSON"
	case tBinary:
		return "BLOB"
	case tDecimal:
		return fmt.Sprintf("DECIMAL(%d,%d)", t.prec, t.scale)
	case tList:
		return duckType(t.elem) + "[]"
	case tMap:
		return "MAP(VARCHAR, " + duckType(t.elem) + ")"
	case tStruct:
		parts := make([]string, len(t.fields))
		for i, f := range t.fields {
			parts[i] = `"` + f.name + `" ` + duckType(f.typ)
		}
		return "STRUCT(" + strings.Join(parts, ", ") + ")"
	}
	panic(fmt.Sprintf("BUG: no DuckDB type for %q", t.canon))
}

// ArrowSchema is the Arrow schema of the table's Parquet files: the
// FileColumns, in order. A plain-column partition key is not in it (it lives
// in the Hive path; see PartitionBy).
func (s *Schema) ArrowSchema() *arrow.Schema {
	cols := s.FileColumns()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.Name, Type: arrowType(mustParse(c.Type)), Nullable: !c.NotNull}
	}
	return arrow.NewSchema(fields, nil)
}

// Builder accumulates rows of one schema into an Arrow record. It is not safe
// for concurrent use.
type Builder struct {
	cols  []int  // the row index of each file column
	types []*typ // and its type
	rb    *array.RecordBuilder
	rows  int
}

// NewBuilder returns an empty builder; Release it when done. The schema must
// be valid (see Validate).
func (s *Schema) NewBuilder(mem memory.Allocator) *Builder {
	b := &Builder{rb: array.NewRecordBuilder(mem, s.ArrowSchema())}
	skip := s.plainPartitionSet()
	for i, c := range s.Columns {
		if !skip[i] {
			b.cols = append(b.cols, i)
			b.types = append(b.types, mustParse(c.Type))
		}
	}
	return b
}

// Len is the number of rows appended since the last NewRecord.
func (b *Builder) Len() int { return b.rows }

// Append adds one row converted by the same schema.
func (b *Builder) Append(r Row) {
	for i, col := range b.cols {
		appendValue(b.rb.Field(i), b.types[i], r.Values[col])
	}
	b.rows++
}

// appendValue appends v, a value of type t in the representation Row
// documents, to fb, a builder of arrowType(t).
func appendValue(fb array.Builder, t *typ, v any) {
	if v == nil {
		fb.AppendNull()
		return
	}
	switch t.tag {
	case tString:
		fb.(*array.StringBuilder).Append(v.(string))
	case tBool:
		fb.(*array.BooleanBuilder).Append(v.(bool))
	case tInt32:
		fb.(*array.Int32Builder).Append(v.(int32))
	case tInt64:
		fb.(*array.Int64Builder).Append(v.(int64))
	case tFloat32:
		fb.(*array.Float32Builder).Append(v.(float32))
	case tFloat64:
		fb.(*array.Float64Builder).Append(v.(float64))
	case tTimestamp:
		fb.(*array.TimestampBuilder).Append(arrow.Timestamp(v.(int64)))
	case tDate:
		fb.(*array.Date32Builder).Append(arrow.Date32(v.(int32)))
	case tJSON:
		fb.(*array.ExtensionBuilder).StorageBuilder().(*array.StringBuilder).Append(v.(string))
	case tBinary:
		fb.(*array.BinaryBuilder).Append(v.([]byte))
	case tDecimal:
		fb.(*array.Decimal128Builder).Append(v.(decimal128.Num))
	case tList:
		lb := fb.(*array.ListBuilder)
		lb.Append(true)
		for _, e := range v.([]any) {
			appendValue(lb.ValueBuilder(), t.elem, e)
		}
	case tMap:
		mb := fb.(*array.MapBuilder)
		mb.Append(true)
		for _, e := range v.([]MapEntry) {
			mb.KeyBuilder().(*array.StringBuilder).Append(e.Key)
			appendValue(mb.ItemBuilder(), t.elem, e.Value)
		}
	case tStruct:
		sb := fb.(*array.StructBuilder)
		sb.Append(true)
		for i, fv := range v.([]any) {
			appendValue(sb.FieldBuilder(i), t.fields[i].typ, fv)
		}
	}
}

// NewRecord returns the rows appended so far as a record and resets the
// builder. The caller releases the record.
func (b *Builder) NewRecord() arrow.RecordBatch {
	b.rows = 0
	return b.rb.NewRecordBatch()
}

// Release frees the builder's buffers.
func (b *Builder) Release() { b.rb.Release() }
