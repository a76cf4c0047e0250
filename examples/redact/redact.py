#!/usr/bin/env python3
"""redact: a sluice function (runtime "exec", Python 3 standard library only).

Every record's data comes back as one row with every e-mail address in every
string value (at any depth) masked: "alice@example.com" -> "a***@example.com".
Object keys are left alone. Data that is not an object becomes {"value": ...}.

It speaks the framed protocol of docs/functions.md on stdin/stdout: per batch a
header line {"__sluice":"batch","records":N,...} and N envelope lines in; the
rows, then {"__sluice":"ok"} (or {"__sluice":"error","message":...}) out.
"""
import json
import re
import sys

EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})")


def mask(text):
    """Keeps the first character of the local part and the domain."""
    return EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def redact(value):
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    return value


def handle(envelope):
    """Returns the rows (a list of dicts) for one record."""
    data = redact(envelope["data"])
    if not isinstance(data, dict):
        data = {"value": data}
    return [data]


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def serve(inp, out):
    while True:
        header = inp.readline()
        if not header:
            return  # stdin closed: the host is done with us
        count = json.loads(header)["records"]
        envelopes = [inp.readline() for _ in range(count)]
        try:
            rows = [dumps(row) for line in envelopes for row in handle(json.loads(line))]
            out.write(b"".join(rows))
            out.write(b'{"__sluice":"ok"}\n')
        except MemoryError:
            raise  # let the process die: the host reports "memory"
        except Exception as e:  # the batch fails and is retried; its rows are dropped
            print(f"redact: {e!r}", file=sys.stderr)
            out.write(dumps({"__sluice": "error", "message": f"{type(e).__name__}: {e}"}))
        out.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
