#!/usr/bin/env python3
"""OPA's answers for `sprintf`, the oracle of broker/src/policy/sprintf.rs.

Evaluates a table of `sprintf(format, operands)` calls with real OPA 1.x and
writes `sprintf_cases.json` beside this file: a list of
`{"args": "<the two Rego arguments>", "expected": "<OPA's string>"}`, or
`"expected": {"error": true}` where OPA rejects the call (a type error at
compile time, or a builtin error, which OPA turns into `undefined`).
The Rust test `policy::sprintf::tests::matches_opa_on_every_case` pastes
`args` into a policy and checks both evaluation paths against `expected`.

Regenerate (needs OPA as a shared library with Python bindings, e.g. the
`opa-golib-python-bindings` wheel unpacked somewhere):

    PYTHONPATH=/tmp/opawheel/x python3 broker/src/policy/sprintf_cases.py

Only add cases here; never edit the JSON by hand.
"""

import json
import os
import random
import sys

from opa_bindings.engine import OpaEngine, OpaError

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "sprintf_cases.json")

# Operands as Rego literals, one of each kind OPA converts differently.
OPERANDS = [
    '"hi"',
    '""',
    '"héllo"',
    '"日本語"',
    r'"a\"b\\c\n\t"',
    "42",
    "-42",
    "0",
    "255",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "-18446744073709551617",
    "3.5",
    "-3.25",
    "0.1",
    "1234567.891",
    "0.000012345",
    "3.0",
    "7/2",
    "6/2",
    "true",
    "false",
    "null",
    '[1, "a", null]',
    "[]",
    '{"b": [true, 2.5], "a": 1}',
    "{}",
    "{2, 1}",
    "set()",
    '[{"x": {"y"}}]',
]

VERBS = list("svdfFeEgGxXoObqtcUT") + ["w", "z"]

# Width, precision and flag combinations, applied to FLAG_OPERANDS.
FLAG_FORMATS = [
    "%5v", "%-5v", "%05v", "%+v", "%#v", "% v", "%6.2v",
    "%8s", "%-8s|", "%08s", "%.2s", "%8.3s", "%-8.3s|", "%.0s",
    "%5d", "%-5d|", "%05d", "%-05d|", "%+d", "% d", "%+ d", "%.5d", "%8.5d",
    "%08.5d", "%.0d", "%5.0d", "%+05d",
    "%x", "%#x", "%#X", "%#o", "%#O", "%#b", "%#08x", "% x", "%# x", "%# X",
    "%.2x", "%10x|", "%-10x|", "%010x",
    "%f", "%.2f", "%8.2f", "%-8.2f|", "%08.2f", "%+.1f", "% .1f", "%+08.1f",
    "%#.0f", "%.0f", "%10.3e", "%.0e", "%#.0e", "%+e", "%g", "%.3g", "%#g",
    "%#.3g", "%10g|", "%-10G|", "%G",
    "%q", "%+q", "%#q", "%10q", "%-10q|", "%.3q", "%c", "%5c", "%-3c|",
    "%U", "%#U", "%.6U", "%10U", "%T", "%10T|",
]

FLAG_OPERANDS = [
    '"héllo"',
    '"back`tick"',
    "42",
    "-42",
    "0",
    "18446744073709551616",
    "-18446744073709551617",
    "3.14159",
    "-0.5",
    "0.0000001234",
    "123456789.125",
    '["x", 1]',
    "null",
]

SPECIAL = [
    ('"%-40s :: msg"', '["key"]'),
    ('"%-10s|%5.2f"', '["ab", 3.14159]'),
    ('"%10s|%.3s|%x"', '["abc", "abcdef", "hi"]'),
    ('"%+d|%8.2f|%5d|%-6s|"', "[5, 2.5, 3.5, 12]"),
    ('"no verbs"', "[]"),
    ('""', "[]"),
    ('"%"', "[]"),
    ('"abc%"', "[1]"),
    ('"%-"', "[1]"),
    ('"%5"', "[1]"),
    ('"%.5"', "[1]"),
    ('"%[1]"', "[1]"),
    ('"%%"', "[]"),
    ('"100%%"', "[1]"),
    ('"%5%|%-5%|%05%"', "[]"),
    ('"%!"', "[]"),
    ('"%!"', "[1]"),
    ('"%d %d"', "[1]"),
    ('"%d"', "[]"),
    ('"%s"', "[]"),
    ('"%d"', '[1, 2, "x", [1], 18446744073709551616, 1.5, null, {"a": 1}]'),
    ('"x"', "[1]"),
    ('"%[2]d %[1]d"', "[1, 2]"),
    ('"%[2]d %d"', "[1, 2, 3]"),
    ('"%[1]d %[1]v %[1]x"', "[10]"),
    ('"%[0]d"', "[1]"),
    ('"%[3]d"', "[1, 2]"),
    ('"%[x]d"', "[1]"),
    ('"%[1]|"', "[1, 2]"),
    ('"%[1]5d"', "[1]"),
    ('"%[1].2f"', "[1.5]"),
    ('"%[2]*[1]d"', "[3, 8]"),
    ('"%.[2]d"', "[3, 8]"),
    ('"%[2].[1]*d"', "[3, 8]"),
    ('"%[1]*d"', "[4]"),
    ('"%[3]*.[2]*[1]f"', "[12.0, 2, 6]"),
    ('"%[2]d"', "[1, 2]"),
    ('"%[1"', "[1]"),
    ('"%[]d"', "[1]"),
    ('"%[-1]d"', "[1]"),
    ('"%*d"', "[5, 1]"),
    ('"%-*d|"', "[5, 1]"),
    ('"%*d|"', "[-5, 1]"),
    ('"%.*f"', "[2, 3.14159]"),
    ('"%.*f"', "[-1, 3.14159]"),
    ('"%*.*f|"', "[10, 3, 3.14159]"),
    ('"%*d"', "[18446744073709551616, 1]"),
    ('"%*d"', "[1.5, 1]"),
    ('"%*d"', '["x", 1]'),
    ('"%*d"', "[]"),
    ('"%*d"', "[2000000, 1]"),
    ('"%.*d"', "[18446744073709551616, 4]"),
    ('"%.*d"', "[2]"),
    ('"%100000000d"', "[1]"),
    ('"%.100000000d"', "[1]"),
    ('"%é"', '["x"]'),
    ('"%日"', "[1]"),
    ('"%-+# 0z"', "[1]"),
    ('"%10z"', '["hi"]'),
    ('"%+z"', "[3]"),
    ('"%-8.3z|"', "[3.14159]"),
    ('"%z"', "[18446744073709551616]"),
    ('"%p"', "[1]"),
    ('"%p"', '["a"]'),
    ('"%p"', "[1.5]"),
    ('"%5w"', "[1, 2]"),
    ('"%v"', '["ünïcödé"]'),
    ('"%6s|%-6s|%.2s"', '["日本語", "日本語", "日本語"]'),
    ('"%x|%X|% x|%#x"', '["日本", "日本", "日本", "日本"]'),
    ('"%q"', r'["\u0000\u0007\b\f\n\r\t\u000b\u001f\u007f\u0080"]'),
    ('"%q"', r'["\u00a0\u00ad\u200b\u2028\u2029\ufeff\ue000\u0378\ud83d\ude00"]'),
    ('"%+q"', r'["é日\ud83d\ude00\u00a0"]'),
    ('"%#q"', r'["tab\there"]'),
    ('"%#q"', r'["nl\nhere"]'),
    ('"%#q"', r'["bom\ufeff"]'),
    ('"%#+q"', r'["é"]'),
    ('"%v"', r'[["\u0001", "\u00a0", "<&>", "é", "\ud83d\ude00", "q\"b\\"]]'),
    ('"%v"', r'[{"k\"ey": "v\nal"}]'),
    ('"%v"', '[{1: "a", "b": 2, null: 3, [1]: 4, true: 5}]'),
    ('"%v"', '[{{1}, [1], {"a": 1}, "s", 2, null, false}]'),
    ('"%v"', '[[[[]], [{}], [set()]]]'),
    ('"%v"', '[{[1], {1}, {"a": 1}, {2: 1}, {"a": 0}, {"a": 1, "b": 0}, {{1}, {0, 5}}, [0, 1], [0]}]'),
    ('"%v"', '[{{1}: "s", {"a": 1}: "o", [1]: "a", "x": 1, 2: 2}]'),
    ('"%v"', '[{{"b", "a"}, {"a"}, {"c"}, set()}]'),
    ('"%v"', '[{[{"b": 1}], [{"a": 2}], [{"a": 1}]}]'),
    ('"%#w|%#w|%+w|%#w|%#v|%+5w"', '[18446744073709551616, "a", 1, 1.5, "b", 2]'),
    ('"%#5w|%+3w"', "[-18446744073709551616, 18446744073709551616]"),
    ('"%5w|%+w|%-4w|"', "[18446744073709551616, -18446744073709551617, 340282366920938463463374607431768211456]"),
    ('"%v|%s|%d"', '[{"z": {2, 1}, "a": [{"y": 1, "x": 2}]}, {"b", "a"}, {"k": set()}]'),
    ('"%v|%v|%v"', "[[1.5, -2.25], [0.5], [6/2, 7/2]]"),
    ('"%d"', "[[1, 2]]"),
    ('"%x"', "[[1, 2]]"),
    ('"%q"', '[{"a": "b"}]'),
    ('"%.3v"', '[{"a": "b"}]'),
    ('"%c|%c|%c|%c|%c"', "[65, 233, 128512, -1, 1114112]"),
    ('"%c"', "[55296]"),
    ('"%q|%q|%+q|%q"', "[65, 10, 233, 55296]"),
    ('"%U|%#U|%#U|%U"', "[65, 10, 233, -1]"),
    ('"%d"', "[9223372036854775808]"),
    ('"%x"', "[-9223372036854775808]"),
    ('"%b|%o|%O|%x|%X"', "[-5, -8, -8, -255, -255]"),
    ('"%v|%v|%v|%v"', "[100000.0, 1000000.5, 0.0001, 0.00001]"),
    ('"%e|%E|%g|%G"', "[123456789.5, 0.000123, 1e-10, 123456789012.5]"),
    ('"%.1f|%.1f|%.1f|%.0f|%.0f|%.0f"', "[0.25, 0.35, 0.05, 0.5, 1.5, 2.5]"),
    ('"%.2e|%.3g|%.10f"', "[1.005, 2.675, 0.1]"),
    ('"%b|%b|%b"', "[3.5, 0.1, -2.5]"),
    ('"%x|%X|%.1x|%.0x|%#x|%#.3x"', "[0.1, 1.5, 1.96875, 1.5, 2.5, 1.0625]"),
    ('"%x|%.2x"', "[0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000005, 0.5]"),
    ('"%v|%e|%x"', "[-0.0001, -0.0001, -0.0001]"),
    ('"%08.3f|%-08.3f|%+08.3f|% 08.3f"', "[-3.14159, -3.14159, 3.14159, 3.14159]"),
    ('"%#v|%#x|%#o"', "[0.5, 0.5, 0.5]"),
    ('"%#.4g|%#.0g|%#g"', "[100.0, 2.5, 0.0001]"),
    ('"%#e|%#E"', "[1.5, 1.5]"),
    ('"%s and %s"', '["a", "b"]'),
    ('"%v"', "[1e3]"),
    ('"%d"', "[1.5e3]"),
    # Not an array: OPA's type checker rejects these.
    ('"%d"', "3"),
    ('"%d"', '"x"'),
    ('"%d"', "{1}"),
    ('"%d"', "null"),
    ('"%d"', '{"a": 1}'),
    ("3", "[1]"),
    ("[1]", "[1]"),
    ("null", "[]"),
]


# Random formats over the verb alphabet (seeded, so the table is stable).
RANDOM_ALPHABET = "%%%%-+# 0123456789.*[]vdsfeEgGxXobOqtcUTwz|é"
RANDOM_OPERANDS = [
    '"ab"', '"日本"', '""', "7", "-3", "0", "1000", "18446744073709551616",
    "2.5", "-0.125", "1234.5678", "true", "null", '[1, "x"]', "{1}", '{"k": 2}',
]
RANDOM_COUNT = 600


def random_cases():
    rng = random.Random(20260612)
    out = []
    while len(out) < RANDOM_COUNT:
        fmt = ""
        for _ in range(rng.randrange(1, 14)):
            c = rng.choice(RANDOM_ALPHABET)
            # Small widths only: a run of digits can ask for up to 10^6.
            if c.isdigit() and fmt[-1:].isdigit():
                continue
            fmt += c
        # %p of a big integer prints an address.
        if "p" in fmt:
            continue
        ops = [rng.choice(RANDOM_OPERANDS) for _ in range(rng.randrange(0, 4))]
        out.append((json.dumps(fmt, ensure_ascii=False), "[%s]" % ", ".join(ops)))
    return out


def cases():
    out = []
    for v in VERBS:
        for o in OPERANDS:
            out.append((json.dumps("%" + v), "[%s]" % o))
    for f in FLAG_FORMATS:
        for o in FLAG_OPERANDS:
            out.append((json.dumps(f, ensure_ascii=False), "[%s]" % o))
    out.extend(SPECIAL)
    out.extend(random_cases())
    return out


def evaluate(args):
    engine = OpaEngine()
    try:
        engine.add_policy(
            "case.rego", "package t\nimport rego.v1\nx := sprintf(%s)\n" % args
        )
        doc = engine.eval_document("t", {})
        if "x" not in doc:
            return {"error": True}
        return doc["x"]
    except OpaError:
        return {"error": True}
    finally:
        engine.close()


def main():
    table = []
    seen = set()
    for f, o in cases():
        args = "%s, %s" % (f, o)
        if args in seen:
            continue
        seen.add(args)
        table.append({"args": args, "expected": evaluate(args)})
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(table, fh, ensure_ascii=False, indent=0)
        fh.write("\n")
    errors = sum(1 for c in table if isinstance(c["expected"], dict))
    print("%d cases (%d errors) written to %s" % (len(table), errors, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
