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
const RowGroupRows = 122_880

var writerProps = parquet.NewWriterProperties(
	parquet.WithCompression(compress.Codecs.Zstd),
	parquet.WithDictionaryDefault(true),
	parquet.WithMaxRowGroupLength(RowGroupRows),
	parquet.WithStats(true),
	parquet.WithCreatedBy("sluice"),
)

// encodeParquet writes rec as one Parquet file: zstd, dictionary encoding
// (which Parquet drops per column chunk by itself when a column has too many
// distinct values), statistics for pruning.
func encodeParquet(rec arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	w, err := pqarrow.NewFileWriter(rec.Schema(), &buf, writerProps, pqarrow.DefaultWriterProps())
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
