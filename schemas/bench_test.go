package schemas_test

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluice-dev/sluice/schemas"
)

// benchNestedLine is an order with a decimal, a list of structs and a map
// (300 bytes).
const benchNestedLine = `{"price":"1234.50","tags":["web","eu","repeat-customer"],` +
	`"attrs":{"visits":12,"cart_size":3,"coupon_uses":0},` +
	`"items":[{"sku":"A-1001","qty":1,"price":"999.00"},{"sku":"B-2002","qty":2,"price":"117.75"}],` +
	`"geo":{"lat":52.5200066,"lon":13.404954,"when":"2026-11-22T03:04:05.123456Z"},"source":"checkout"}`

func BenchmarkConvertNested(b *testing.B) {
	s := nestedSchema()
	data := []byte(benchNestedLine)
	if _, err := s.Convert(data, testMeta, schemas.Strict); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := s.Convert(data, testMeta, schemas.Keep); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode is the sink's path from converted rows to an Arrow
// record: Append every row of a batch, then NewRecord (and release it).
func BenchmarkEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		s    *schemas.Schema
		line string
	}{
		{"log", schemas.LogSchema(), benchLogLine},
		{"nested", nestedSchema(), benchNestedLine},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := bc.s.Convert([]byte(bc.line), testMeta, schemas.Strict)
			if err != nil {
				b.Fatal(err)
			}
			const batch = 4096
			rows := make([]schemas.Row, batch)
			for i := range rows {
				rows[i] = r
			}
			bl := bc.s.NewBuilder(memory.NewGoAllocator())
			defer bl.Release()
			b.ReportAllocs()
			b.SetBytes(int64(batch * len(bc.line)))
			for b.Loop() {
				for _, r := range rows {
					bl.Append(r)
				}
				bl.NewRecord().Release()
			}
			b.ReportMetric(float64(b.N)*batch/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkPartitionPath(b *testing.B) {
	s := partSchema("region", "hour(ts)")
	r, err := s.Convert([]byte(`{"ts":"2026-11-22T03:04:05Z","region":"eu-west"}`), testMeta, schemas.Strict)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.PartitionPath(r)
	}
}
