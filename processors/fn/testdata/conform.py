#!/usr/bin/env python3
"""The conformance test function (see internal/testfn) for runtime "exec",
speaking the framed protocol of docs/functions.md with the standard library."""
import json
import os
import sys
import time

hoard = []


def handle(env, emit):
    data = env["data"] if isinstance(env["data"], dict) else {}
    op = data.get("op", "")
    off = env["offset"]
    if op == "log":
        print(f"log at offset {off}", file=sys.stderr, flush=True)
    elif op == "fail":
        print(f"failing at offset {off}", file=sys.stderr, flush=True)
        raise RuntimeError(f"failed at offset {off}")
    elif op == "loop":
        while True:
            pass
    elif op == "sleep":
        time.sleep(data.get("ms", 0) / 1000)
    elif op == "alloc":
        while True:
            hoard.append(bytearray(1 << 20))
    elif op == "panic":
        raise RuntimeError(f"boom at offset {off}")
    elif op == "exit":
        os._exit(3)
    elif op == "junk":
        emit_raw(b"this is not json\n")
        return
    for i in range(data.get("rows", 1)):
        emit({"stream": env["stream"], "partition": env["partition"], "offset": off,
              "key": env["key"], "ts": env["timestamp"], "hdr": env["headers"].get("h"),
              "i": i, "data": env["data"]})


out = sys.stdout.buffer


def emit_raw(b):
    out.write(b)


def main():
    inp = sys.stdin.buffer
    while True:
        header = inp.readline()
        if not header:
            return
        n = json.loads(header)["records"]
        lines = [inp.readline() for _ in range(n)]
        rows = []
        try:
            for line in lines:
                handle(json.loads(line), lambda row: rows.append(json.dumps(row, separators=(",", ":")).encode() + b"\n"))
            out.write(b"".join(rows))
            out.write(b'{"__sluice":"ok"}\n')
        except MemoryError:
            raise  # die: the host reports "memory" from the traceback
        except Exception as e:  # the batch fails; rows are dropped
            out.write(json.dumps({"__sluice": "error", "message": str(e)}).encode() + b"\n")
        out.flush()


main()
