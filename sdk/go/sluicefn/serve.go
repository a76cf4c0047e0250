package sluicefn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// serveStdio speaks the framed protocol on in/out until in ends. If the first
// line is not a batch header, the input is taken as plain envelope lines
// (one-shot) instead. It returns the process exit code.
func serveStdio(h BatchHandler, in io.Reader, out io.Writer) int {
	p := newProcessor(h)
	r := bufio.NewReaderSize(in, 1<<16)
	w := bufio.NewWriterSize(out, 1<<16)
	first, err := r.Peek(len(headerPrefix))
	if err == nil && !bytes.Equal(first, []byte(headerPrefix)) || err == io.EOF && len(first) > 0 {
		return oneShotStdio(p, r, w)
	}
	var frame []byte
	for {
		frame, err = readFrame(r, frame[:0], p)
		if err == io.EOF {
			return 0
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "sluicefn: %v\n", err)
			return 2
		}
		if _, err := w.Write(p.processFrame(frame)); err != nil {
			return 2
		}
		if err := w.Flush(); err != nil {
			return 2
		}
	}
}

// readFrame reads a header line and as many lines as it announces.
func readFrame(r *bufio.Reader, frame []byte, p *processor) ([]byte, error) {
	frame, err := readLine(r, frame)
	if err != nil {
		if err == io.EOF && len(frame) == 0 {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("cannot read batch header: %w", err)
	}
	_, n, err := p.splitHeader(frame)
	if err != nil {
		return nil, err
	}
	for k := 0; k < n; k++ {
		if frame, err = readLine(r, frame); err != nil {
			return nil, fmt.Errorf("cannot read envelope %d of %d: %w", k, n, err)
		}
	}
	return frame, nil
}

// readLine appends one line, with its newline, to b.
func readLine(r *bufio.Reader, b []byte) ([]byte, error) {
	for {
		chunk, err := r.ReadSlice('\n')
		b = append(b, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(chunk) > 0 {
			return append(b, '\n'), nil
		}
		return b, err
	}
}

func oneShotStdio(p *processor, r *bufio.Reader, w *bufio.Writer) int {
	input, err := io.ReadAll(r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluicefn: cannot read stdin: %v\n", err)
		return 2
	}
	rows, err := p.oneShot(input)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sluicefn: %v\n", err)
		return 1
	}
	if _, err := w.Write(rows); err != nil {
		return 2
	}
	if err := w.Flush(); err != nil {
		return 2
	}
	return 0
}
