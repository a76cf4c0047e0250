package query

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// arrowBatchRows is the rows of each record batch of an Arrow IPC download.
const arrowBatchRows = 64 << 10

// serveArrow streams query id's result as an Arrow IPC stream
// (application/vnd.apache.arrow.stream), converted from its Parquet file
// batch by batch: memory holds about one batch (and one column chunk
// being decoded), whatever the result's size. A store whose objects are
// not local files is first copied into a temporary file under Dir (Parquet
// is read from its footer, so it needs random access).
func (a *Async) serveArrow(w http.ResponseWriter, r *http.Request, rec *Record) {
	f, cleanup, err := a.localParquet(r.Context(), rec.ID)
	if err != nil {
		a.writeErr(w, err)
		return
	}
	defer cleanup()
	props := parquet.NewReaderProperties(memory.DefaultAllocator)
	props.BufferedStreamEnabled = true
	pf, err := file.NewParquetReader(f, file.WithReadProps(props))
	if err != nil {
		a.writeErr(w, fmt.Errorf("cannot read the Parquet result of async query %s: %w", rec.ID, err))
		return
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: arrowBatchRows}, memory.DefaultAllocator)
	if err == nil {
		var rr pqarrow.RecordReader
		if rr, err = fr.GetRecordReader(r.Context(), nil, nil); err == nil {
			defer rr.Release()
			w.Header().Set("Content-Type", "application/vnd.apache.arrow.stream")
			w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.arrows"`, rec.ID))
			iw := ipc.NewWriter(w, ipc.WithSchema(rr.Schema()))
			for err == nil && rr.Next() {
				err = iw.Write(rr.RecordBatch())
			}
			if err == nil {
				err = rr.Err()
			}
			if cerr := iw.Close(); err == nil {
				err = cerr
			}
			if err != nil { // the answer has started: all the client sees is a cut stream
				a.Log.Warn("async query Arrow download cut short", "id", rec.ID, "err", err)
			}
			return
		}
	}
	a.writeErr(w, fmt.Errorf("cannot read the Parquet result of async query %s: %w", rec.ID, err))
}

// localParquet returns query id's Parquet result as a local file.
func (a *Async) localParquet(ctx context.Context, id string) (*os.File, func(), error) {
	body, _, err := a.Bucket.Open(ctx, ResultKey(id, "result.parquet"))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the Parquet result of async query %s: %w", id, err)
	}
	if f, ok := body.(*os.File); ok {
		return f, func() { f.Close() }, nil
	}
	defer body.Close()
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("cannot create %q for a download: %w", a.Dir, err)
	}
	f, err := os.CreateTemp(a.Dir, "download-*.parquet")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot create a temporary file for a download: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, body); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("cannot copy the Parquet result of async query %s: %w", id, err)
	}
	return f, cleanup, nil
}
