package schemas

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
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

func arrowType(k Kind) arrow.DataType {
	switch k {
	case String:
		return arrow.BinaryTypes.String
	case Bool:
		return arrow.FixedWidthTypes.Boolean
	case Int32:
		return arrow.PrimitiveTypes.Int32
	case Int64:
		return arrow.PrimitiveTypes.Int64
	case Float32:
		return arrow.PrimitiveTypes.Float32
	case Float64:
		return arrow.PrimitiveTypes.Float64
	case Timestamp:
		return timestampType
	case Date:
		return arrow.FixedWidthTypes.Date32
	case JSON:
		return jsonType
	case Binary:
		return arrow.BinaryTypes.Binary
	}
	panic(fmt.Sprintf("BUG: no Arrow type for kind %q", k))
}

// DuckDBType is the DuckDB SQL type that reading a column of kind k from the
// Parquet files gives.
func DuckDBType(k Kind) string {
	switch k {
	case String:
		return "VARCHAR"
	case Bool:
		return "BOOLEAN"
	case Int32:
		return "INTEGER"
	case Int64:
		return "BIGINT"
	case Float32:
		return "FLOAT"
	case Float64:
		return "DOUBLE"
	case Timestamp:
		return "TIMESTAMP WITH TIME ZONE"
	case Date:
		return "DATE"
	case JSON:
		return "JSON"
	case Binary:
		return "BLOB"
	}
	panic(fmt.Sprintf("BUG: no DuckDB type for kind %q", k))
}

// ArrowSchema is the Arrow schema of the table's Parquet files.
func (s *Schema) ArrowSchema() *arrow.Schema {
	fields := make([]arrow.Field, len(s.Columns))
	for i, c := range s.Columns {
		fields[i] = arrow.Field{Name: c.Name, Type: arrowType(c.Type), Nullable: !c.NotNull}
	}
	return arrow.NewSchema(fields, nil)
}

// Builder accumulates rows of one schema into an Arrow record. It is not safe
// for concurrent use.
type Builder struct {
	kinds []Kind
	rb    *array.RecordBuilder
	rows  int
}

// NewBuilder returns an empty builder; Release it when done.
func (s *Schema) NewBuilder(mem memory.Allocator) *Builder {
	b := &Builder{rb: array.NewRecordBuilder(mem, s.ArrowSchema())}
	for _, c := range s.Columns {
		b.kinds = append(b.kinds, c.Type)
	}
	return b
}

// Len is the number of rows appended since the last NewRecord.
func (b *Builder) Len() int { return b.rows }

// Append adds one row converted by the same schema.
func (b *Builder) Append(r Row) {
	for i, v := range r.Values {
		appendValue(b.rb.Field(i), b.kinds[i], v)
	}
	b.rows++
}

func appendValue(fb array.Builder, k Kind, v any) {
	if v == nil {
		fb.AppendNull()
		return
	}
	switch k {
	case String:
		fb.(*array.StringBuilder).Append(v.(string))
	case Bool:
		fb.(*array.BooleanBuilder).Append(v.(bool))
	case Int32:
		fb.(*array.Int32Builder).Append(v.(int32))
	case Int64:
		fb.(*array.Int64Builder).Append(v.(int64))
	case Float32:
		fb.(*array.Float32Builder).Append(v.(float32))
	case Float64:
		fb.(*array.Float64Builder).Append(v.(float64))
	case Timestamp:
		fb.(*array.TimestampBuilder).Append(arrow.Timestamp(v.(int64)))
	case Date:
		fb.(*array.Date32Builder).Append(arrow.Date32(v.(int32)))
	case JSON:
		fb.(*array.ExtensionBuilder).StorageBuilder().(*array.StringBuilder).Append(v.(string))
	case Binary:
		fb.(*array.BinaryBuilder).Append(v.([]byte))
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
