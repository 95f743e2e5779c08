#!/usr/bin/env python3
"""Generate structured_vectors.json: the byte vectors of the structured transport's
serializers, written by real Python (json, and msgpack-python 1.1.2, the version
pywebtransport pins: `pip install msgpack==1.1.2`).

    python3 bindings/go/testdata/gen_structured_vectors.py > bindings/go/testdata/structured_vectors.json

Read by the Rust side (src/datagram/structured.rs tests) and the Go binding
(bindings/go/serialize_test.go).
"""

import json
import sys

import msgpack

assert msgpack.version == (1, 1, 2), msgpack.version

COMPACT = (",", ":")


def s(n, c):
    return c * n


# JSON-sourced vectors: 'input' is JSON text; 'json' is json.dumps(json.loads(input))
# (pywebtransport's JSONSerializer: default separators), 'json_compact' the same with
# separators=(",", ":") (the datagram stream's send_json), 'msgpack' (hex)
# msgpack.packb(json.loads(input)) (pywebtransport's MsgPackSerializer).
JSON_INPUTS = [
    ("named", '{"name":"\u00e9","x":1}'),
    ("declaration_order", '{"zeta":3,"alpha":[1.0,0.5,-2.25],"mid":null}'),
    (
        "escapes",
        '"\\u65e5\\u672c\\ud83d\\ude00\\u007f\\n\\t\\"\\\\\\u0001\\u001f\\b\\f\\r/<>&\'\\u2028\\u00ff\\uffff"',
    ),
    (
        "integers",
        "[true,false,null,0,1,127,128,255,256,65535,65536,4294967295,4294967296,"
        "18446744073709551615,-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649,"
        "-9223372036854775808]",
    ),
    (
        "floats",
        "[1.0,0.1,-0.0,100.0,1e15,1e16,1.5e16,0.0001,1e-05,1.5e-7,1e100,123456.789,"
        "1.7976931348623157e+308,5e-324,-2.5,0.30000000000000004]",
    ),
    ("number_spellings", "[2.50,1E2,1e-0,-0,0.0,0.00001,1e400,-1e400]"),
    (
        "sizes",
        json.dumps(
            {
                "s31": s(31, "a"),
                "s32": s(32, "b"),
                "s255": s(255, "c"),
                "s256": s(256, "d"),
                "a15": list(range(15)),
                "a16": list(range(16)),
                "m16": {"k%02d" % i: i for i in range(16)},
            },
            separators=COMPACT,
        ),
    ),
    (
        "nested",
        '{ "player" : {"id":7,"pos":[1.5,-2.0],"name":"Zo\u00eb"}, "tags":["a","b"], '
        '"empty":{}, "list":[], "ok":true }',
    ),
    (
        "game_state",
        '{"tick":1024,"players":[{"id":1,"x":10.5,"y":-3.25,"hp":100},'
        '{"id":2,"x":0.0,"y":7.0,"hp":0}],"event":"hit \u2192 \U0001f3af"}',
    ),
]

# MessagePack-sourced vectors: Python values JSON text cannot carry to MessagePack
# (bytes, integer and float keys, NaN). 'msgpack' is packb(value); 'json' and
# 'json_compact' are json.dumps(value) where Python can write it.
PY_VALUES = [
    (
        "bytes_nan_int_keys",
        '{"b": b"\\x00\\xff", 1: "one", -1: float("nan"), "inf": float("inf"), '
        '"ninf": float("-inf"), 2.5: None, "big": b"x" * 256}',
    ),
    ("key_order", '{"zeta": 1, "alpha": {3: [1.0, None, True], 2: b""}}'),
    ("int_keys", '{10: "x", -2: [1, 2], 2.5: None, "s": {0: 0.5}}'),
    ("non_finite", '[float("nan"), float("inf"), float("-inf"), -0.0]'),
]


def dumps(v, **kw):
    try:
        return json.dumps(v, **kw)
    except TypeError:
        return None  # bytes: Python cannot write them as JSON


def main():
    vectors = []
    for name, text in JSON_INPUTS:
        v = json.loads(text)
        vectors.append(
            {
                "name": name,
                "input": text,
                "json": json.dumps(v),
                "json_compact": json.dumps(v, separators=COMPACT),
                "msgpack": msgpack.packb(v).hex(),
            }
        )
    for name, expr in PY_VALUES:
        v = eval(expr)  # noqa: S307 (constant expressions of this file)
        vec = {"name": name, "python": expr, "msgpack": msgpack.packb(v).hex()}
        js = dumps(v)
        if js is not None:
            vec["json"] = js
            vec["json_compact"] = dumps(v, separators=COMPACT)
        vectors.append(vec)
    doc = {
        "about": (
            "Byte vectors of the structured transport's serializers, generated with real "
            "Python %d.%d json and msgpack-python %s (what pywebtransport's JSONSerializer "
            "and MsgPackSerializer call) by gen_structured_vectors.py; shared by the Go "
            "binding (bindings/go/serialize_test.go) and the Rust side "
            "(src/datagram/structured.rs tests). A vector with 'input' (JSON text) has "
            "'json' = json.dumps(json.loads(input)) (default separators), 'json_compact' "
            "= the same with separators=(',', ':') and 'msgpack' (hex) = "
            "msgpack.packb(json.loads(input)). A vector with 'python' (a Python value) has "
            "'msgpack' = packb(value) and, where Python can write it as JSON, 'json' and "
            "'json_compact'."
        )
        % (sys.version_info.major, sys.version_info.minor, ".".join(map(str, msgpack.version))),
        "vectors": vectors,
    }
    json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
