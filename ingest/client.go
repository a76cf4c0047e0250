package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client sends NDJSON to a sluice server's ingest API.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	// Key is the API key sent as "Authorization: Bearer KEY" ("": none).
	Key string
	// Raw sends the lines as text/plain: each is a record {"message": line}.
	Raw bool
	// BatchRecords and BatchBytes bound each request (defaults 1000 and 4 MiB).
	BatchRecords int
	BatchBytes   int
}

// PutSummary counts what a Put sent; Failures holds one line per rejected
// record, naming its line in the input.
type PutSummary struct {
	Sent, Failed int
	Failures     []string
}

// Put reads NDJSON from r and sends it to stream in batches. A record the
// server rejects is reported with its input line number and the rest go on;
// a request that fails as a whole (server down, 5xx) stops Put with an error.
func (c *Client) Put(ctx context.Context, stream string, r io.Reader) (PutSummary, error) {
	var sum PutSummary
	maxRecs, maxBytes := c.BatchRecords, c.BatchBytes
	if maxRecs <= 0 {
		maxRecs = 1000
	}
	if maxBytes <= 0 {
		maxBytes = 4 << 20
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxBodyBytes)
	var buf bytes.Buffer
	var lines []int // input line number of each record in buf
	line := 0
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		err := c.send(ctx, stream, buf.Bytes(), lines, &sum)
		buf.Reset()
		lines = lines[:0]
		return err
	}
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if len(lines) > 0 && (len(lines) >= maxRecs || buf.Len()+len(sc.Bytes())+1 > maxBytes) {
			if err := flush(); err != nil {
				return sum, err
			}
		}
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return sum, fmt.Errorf("cannot read input after line %d: %w", line, err)
	}
	return sum, flush()
}

func (c *Client) send(ctx context.Context, stream string, body []byte, lines []int, sum *PutSummary) error {
	u := c.BaseURL + "/v1/streams/" + url.PathEscape(stream) + "/records"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if c.Raw {
		req.Header.Set("Content-Type", "text/plain")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot send records to %s: %w", u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out Response
	if err := json.Unmarshal(data, &out); err != nil || len(out.Records) != len(lines) {
		return fmt.Errorf("cannot send records to %s: %s: %s", u, resp.Status, bytes.TrimSpace(data))
	}
	for i, r := range out.Records {
		if r.ErrorCode != "" {
			sum.Failed++
			// The server numbers lines within the request, which holds no
			// blank lines: record i is its line i+1.
			msg := strings.TrimPrefix(r.Error, fmt.Sprintf("line %d: ", i+1))
			if msg == "" { // past the server's MaxErrorMessages
				msg = "no message (the server sends the first 100 of a request)"
			}
			sum.Failures = append(sum.Failures, fmt.Sprintf("input line %d: %s (%s)", lines[i], msg, r.ErrorCode))
		} else {
			sum.Sent++
		}
	}
	return nil
}
