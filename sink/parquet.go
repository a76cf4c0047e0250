// Package sink turns converted rows into Parquet objects in the table's
// Hive-partitioned layout and records, in the object store, how far each
// stream partition has been written, so that output is effectively once.
package sink

import (
	"bytes"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// RowGroupRows caps a row group's length. DuckDB parallelizes a scan by row
// group and its own row groups are 122,880 rows, so files of several row
// groups let one big file be read by all cores; smaller row groups would cost
// more per-group metadata and worse compression.
// It is the default; a table may set its own (deploy.Table.RowGroupRows).
const RowGroupRows = 122_880

var baseWriterOptions = []parquet.WriterProperty{
	parquet.WithCompression(compress.Codecs.Zstd),
	parquet.WithDictionaryDefault(true),
	parquet.WithStats(true),
	parquet.WithCreatedBy("sluice"),
}

var writerProps = parquet.NewWriterProperties(append(baseWriterOptions, parquet.WithMaxRowGroupLength(RowGroupRows))...)

// propsFor returns the writer properties for row groups of at most rows
// rows (0: the default).
func propsFor(rows int64) *parquet.WriterProperties {
	if rows <= 0 || rows == RowGroupRows {
		return writerProps
	}
	return parquet.NewWriterProperties(append(baseWriterOptions, parquet.WithMaxRowGroupLength(rows))...)
}

// encodeParquet writes rec as one Parquet file: zstd, dictionary encoding
// (which Parquet drops per column chunk by itself when a column has too many
// distinct values), statistics for pruning.
func encodeParquet(rec arrow.RecordBatch, rowGroupRows int64) ([]byte, error) {
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(rec.Schema(), &buf, propsFor(rowGroupRows), pqarrow.DefaultWriterProps())
	if err != nil {
		return nil, fmt.Errorf("cannot create Parquet writer: %w", err)
	}
	if err := w.Write(rec); err != nil {
		w.Close()
		return nil, fmt.Errorf("cannot encode Parquet: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("cannot finish Parquet file: %w", err)
	}
	return buf.Bytes(), nil
}
