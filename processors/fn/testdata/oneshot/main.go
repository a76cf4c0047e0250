// Command oneshot is a plain WASI program, no SDK: it reads envelope lines
// from stdin until EOF and writes rows to stdout, as package testfn describes
// (with encoding/json, the simple and slow way). Exit code 1 fails the batch.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

type envelope struct {
	Stream    string            `json:"stream"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       *string           `json:"key"`
	Timestamp time.Time         `json:"timestamp"`
	Headers   map[string]string `json:"headers"`
	Data      json.RawMessage   `json:"data"`
}

type input struct {
	Op   string `json:"op"`
	Rows *int   `json:"rows"`
	Ms   int    `json:"ms"`
}

type row struct {
	Stream    string          `json:"stream"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       *string         `json:"key"`
	TS        string          `json:"ts"`
	Hdr       *string         `json:"hdr"`
	I         int             `json:"i"`
	Data      json.RawMessage `json:"data"`
}

var hoard [][]byte

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		if err := handle(in.Bytes(), out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		os.Exit(1)
	}
}

func handle(line []byte, out *bufio.Writer) error {
	var e envelope
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("cannot decode envelope: %w", err)
	}
	var in input
	_ = json.Unmarshal(e.Data, &in)
	switch in.Op {
	case "log":
		fmt.Fprintf(os.Stderr, "log at offset %d\n", e.Offset)
	case "print":
		fmt.Fprintf(os.Stderr, "printed at offset %d\n", e.Offset)
	case "fail":
		fmt.Fprintf(os.Stderr, "failing at offset %d\n", e.Offset)
		return fmt.Errorf("failed at offset %d", e.Offset)
	case "loop":
		for {
			in.Ms++
		}
	case "sleep":
		time.Sleep(time.Duration(in.Ms) * time.Millisecond)
	case "alloc":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
			hoard[len(hoard)-1][0] = 1
		}
	case "panic":
		panic(fmt.Sprintf("boom at offset %d", e.Offset))
	case "exit":
		os.Exit(3)
	case "junk":
		_, err := out.WriteString("this is not json\n")
		return err
	}
	return writeRows(&e, in, out)
}

func writeRows(e *envelope, in input, out *bufio.Writer) error {
	n := 1
	if in.Rows != nil {
		n = *in.Rows
	}
	var hdr *string
	if h, ok := e.Headers["h"]; ok {
		hdr = &h
	}
	for i := 0; i < n; i++ {
		b, err := json.Marshal(row{
			Stream: e.Stream, Partition: e.Partition, Offset: e.Offset, Key: e.Key,
			TS: e.Timestamp.UTC().Format(time.RFC3339Nano), Hdr: hdr, I: i, Data: e.Data,
		})
		if err != nil {
			return err
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	return nil
}
