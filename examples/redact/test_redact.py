"""Unit tests: python3 -m unittest discover examples/redact"""
import io
import json
import unittest

import redact


class RedactTest(unittest.TestCase):
    def test_mask(self):
        self.assertEqual(redact.mask("mail alice@example.com and b.o+b@mail.example.org."),
                         "mail a***@example.com and b***@mail.example.org.")
        self.assertEqual(redact.mask("no address @ here"), "no address @ here")

    def test_redact_nested(self):
        data = {"user": {"email": "carol@example.net", "tags": ["x", "dave@example.com"]}, "n": 1}
        self.assertEqual(redact.redact(data),
                         {"user": {"email": "c***@example.net", "tags": ["x", "d***@example.com"]}, "n": 1})

    def test_serve(self):
        env = {"stream": "s", "partition": 0, "offset": 0, "key": None,
               "timestamp": "2026-11-22T09:30:00.000000000Z", "headers": {}}
        lines = [json.dumps({**env, "data": {"to": "eve@example.com"}}), json.dumps({**env, "data": "x@y.io"})]
        inp = io.BytesIO(("{\"__sluice\":\"batch\",\"records\":2}\n" + "\n".join(lines) + "\n").encode())
        out = io.BytesIO()
        redact.serve(inp, out)
        self.assertEqual(out.getvalue().decode().splitlines(),
                         ['{"to":"e***@example.com"}', '{"value":"x***@y.io"}', '{"__sluice":"ok"}'])


if __name__ == "__main__":
    unittest.main()
