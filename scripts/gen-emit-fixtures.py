#!/usr/bin/env python3
"""Generate compiler/tests/fixtures/emit/cases.json from real PyYAML.

Each case is {"name": ..., "input": <tagged value>, "expected": <YAML text>},
where "expected" is what anklume v1's dumper writes for the input mapping:

    class _Dumper(yaml.SafeDumper):
        def increase_indent(self, flow=False, indentless=False):
            return super().increase_indent(flow, False)
    yaml.dump(data, Dumper=_Dumper, default_flow_style=False,
              allow_unicode=True, sort_keys=False)

with null written as an empty scalar (`key:`), as v1's published output does
(see shared/spec/ansible-tree.md §2).

The tagged input form keeps order and types through JSON:
    null | {"bool": b} | {"int": n} | {"float": "<python repr>"} | {"str": s}
    | {"seq": [...]} | {"map": [[k, v], ...]}
The root is always a mapping. Mappings are dumped from a list of pairs, so
keys may repeat or be collections (which a Python dict could not hold).

Usage: python3 scripts/gen-emit-fixtures.py   (needs PyYAML 6.0.x)
The Rust side is compiler/tests/emit_pyyaml.rs; it needs no Python.

For a heavier one-off check that is not committed:
    python3 scripts/gen-emit-fixtures.py --random 20000 --seed 7 --out /tmp/c.json
    ANKLUME_EMIT_CASES=/tmp/c.json cargo test -p anklume-compiler --test emit_pyyaml
"""

import argparse
import json
import os
import random

import yaml

OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "compiler", "tests", "fixtures", "emit", "cases.json",
)


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


class Pairs(list):
    """An ordered mapping given as a list of (key, value) pairs."""


_Dumper.add_representer(
    Pairs, lambda d, p: d.represent_mapping("tag:yaml.org,2002:map", p))
_Dumper.add_representer(
    type(None), lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", ""))


def dump(data):
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False,
                     allow_unicode=True, sort_keys=False)


# --- tagged form <-> Python objects -----------------------------------------

def tag(v):
    """Python value (Pairs for mappings) -> tagged JSON form."""
    if v is None:
        return None
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, Pairs):
        return {"map": [[tag(k), tag(x)] for k, x in v]}
    if isinstance(v, list):
        return {"seq": [tag(x) for x in v]}
    raise TypeError(v)


def M(*pairs):
    return Pairs(pairs)


# --- hand-picked cases -------------------------------------------------------

TRICKY_STRINGS = [
    # resolve to other types: must be quoted
    "true", "True", "TRUE", "false", "yes", "Yes", "no", "NO", "on", "On",
    "off", "OFF", "null", "Null", "NULL", "~", "", "4", "-4", "+4", "0",
    "007", "09", "10.200", "1_000", "0x1F", "0b101", "0o17", "12:30",
    "1:20:30", "190:20:30.15", "1:60", "2024-01-01", "2024-1-1",
    "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
    "2001-12-15 2:59:43.10", "2002-12-14", ".inf", "-.inf", "+.INF", ".nan",
    ".NaN", "1.", ".5", "1e3", "1.5e3", "1.5e+3", "1.0e-05", "1e+3", "<<",
    "=", "!", "&", "*", "-", "?", ":", ".", "...", "---", "--- x", "... x",
    # stay plain
    "y", "n", "Y", "N", "2GiB", "20%", "30d", "0 2 * * *",
    "images:debian/13", "10.100.0.1", "10.110.0.0/24", "a, b",
    'He said "hi"', "it's", "a-b", "-a", "?a", ":a", "a:b", "a#b",
    "http://example.com/x?y=1#frag", "key=value", "a!b", "@", "a@b", "%x",
    "x%", "a|b", "a>b", "~x", "x~", "a,b", "a[0]", "a{b}", "a b c",
    "under_score", "CamelCase", "/usr/bin/env", "C:\\path\\to", "\\",
    "back\\slash", "$1", "${HOME}", "{{ var }}", "x{{ var }}",
    # leading indicators: quoted
    "#x", "*x", "&x", "!x", "%x y", "@x", "`x", "|x", ">x", "{x", "}x",
    "[x", "]x", ",x", "'x", '"x', "- x", "? x", ": x", "-\tx",
    # inside / trailing
    "a: b", "a #b", "a:", "a: ", "key:", " a", "a ", " ", "  ", "   ",
    " a ", "a  b", "a\tb", "\t", "a\t", "\ta",
    # line breaks
    "a\nb", "a\n", "\n", "\na", "a\n\nb", "a\n\n", "a \nb", "a\n b",
    "#cloud-config\npackages:\n  - curl\n", "line1\r\nline2", "a\rb",
    "a\x85b", "a\u2028b", "a\u2029b", "x\n\n\ny",
    # unicode and controls
    "é", "café", "—", "a — b", "日本語", "😀", "emoji 😀 here", "\xa0",
    "a\xa0b", "\ufeff", "a\ufeffb", "\x00", "\x01", "\x07", "\x08", "\x0b",
    "\x0c", "\x1b", "\x7f", "\x80", "\x9f", "\u200b", "\ue000", "\ufffd",
    "\ufffe", "\U0010fffe", "\U0010ffff", "😀\t", 'quote"and\\back\t',
    # quotes
    "'", "''", "'a'", '"', '""', '"a"', "a'b'c", "'a\nb'",
]


def long_strings():
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do".split()
    out = []
    for n in (60, 75, 78, 79, 80, 81, 82, 85, 100, 120, 150, 200, 260):
        s = " ".join(words[i % len(words)] for i in range(n))[:n]
        out.append(s)
        out.append(s.rstrip() + ": tail")      # needs single quotes
        out.append("'" + s)                    # leading quote
        out.append(s.replace(" ", "  "))       # double spaces
        out.append(s.replace("m", "\t", 1))    # double quoted with escape
        out.append(s.replace(" ", "\n", 3))    # multi-line
        out.append(s.replace("o", "ö"))        # unicode
        out.append("x" * n)                    # no spaces at all
        out.append(("ab " * n)[:n])
    out.append("Development environment with a very long description that "
               "goes on and on past the eighty column limit for sure")
    out.append("a" * 79 + " b")
    out.append("a" * 80 + " b")
    out.append("a" * 81 + " b c")
    out.append("a " * 60)
    out.append(" " + "word " * 30)
    out.append("\t" + "word " * 30)
    out.append("word " * 20 + "\\" + " word" * 20)
    out.append("é" * 90 + " " + "é" * 10)
    out.append('"' + "word " * 30 + '"')
    out.append("x" * 75 + "\t" + " y" * 20)
    out.append("x" * 78 + "  " + "y" * 10)
    out.append("x" * 78 + "\x01 " + "y" * 10)
    out.append("x" * 77 + "\x01\x02\x03 " + "y" * 10)
    return out


FLOATS = [0.0, -0.0, 1.0, 1.5, -2.25, 0.1, 1e15, 1e16, 1e20, 1.5e-7,
          1e-4, 1e-5, 123456789.123, 1.7976931348623157e308, 5e-324,
          float("inf"), float("-inf"), float("nan"), 3.14159, 100.0, 2.5e-10]
INTS = [0, 1, -1, 42, 65535, 2**31, -2**31, 2**53 + 1, 2**63 - 1, -2**63]


def hand_cases():
    cases = []

    def add(name, data):
        cases.append((name, data))

    add("empty root", M())
    add("scalars", M(("null", None), ("t", True), ("f", False),
                     ("i", 7), ("fl", 1.5), ("s", "x")))
    for i, s in enumerate(TRICKY_STRINGS):
        add(f"value {i}", M(("k", s)))
        add(f"key {i}", M((s, 1)))
        add(f"seq item {i}", M(("k", [s, "after"])))
        add(f"nested {i}", M(("a", M(("b", [M(("c", s), ("d", s))])))))
    for i, s in enumerate(long_strings()):
        add(f"long value {i}", M(("description", s)))
        add(f"long deep {i}", M(("a", M(("b", M(("c", [[s]])))))))
        add(f"long key {i}", M((s, s)))
    for n in (120, 121, 122, 123, 124, 127, 128, 130):
        add(f"key length {n}", M(("k" * n, 1), ("é" * n, 2)))
        add(f"int key near limit {n}", M((int("9" * min(n, 18)), 1)))
    add("floats", M(*[(f"f{i}", f) for i, f in enumerate(FLOATS)]))
    add("float seq", M(("l", FLOATS)))
    rng = random.Random(99)
    many = [rng.random() * 10 ** rng.randint(-320, 308) for _ in range(300)]
    many += [rng.uniform(-1e6, 1e6) for _ in range(100)]
    # exact ties between two shortest candidates (Python rounds half-even)
    many += [float(rng.randint(10**14, 10**16)) + rng.choice([0.25, 0.75, 0.5])
             for _ in range(100)]
    add("many floats", M(("floats", many)))
    add("ints", M(*[(f"i{i}", n) for i, n in enumerate(INTS)]))
    add("int keys", M(*[(n, n) for n in INTS]))
    add("mixed keys", M((1, "one"), (True, "t"), (None, "null key"),
                        (1.5, "f"), ("", "empty"), ("a\nb", "multi")))
    add("collection keys", M(([], 1), (M(), 2), ([1, 2], 3),
                             (M(("a", 1)), 4), (M(("a", [1, M()])), 5)))
    add("duplicate keys", M(("a", 1), ("a", 2)))
    add("empties", M(("m", M()), ("l", []), ("ll", [[], M(), [[]], [M()]]),
                     ("n", None), ("s", ""), ("ln", [None, None])))
    add("seq of maps", M(("machines", [
        M(("name", "web"), ("ip", "10.100.0.1"), ("tags", ["a", "b"])),
        M(("name", "db"), ("config", M(("limits.cpu", "2"),
                                        ("limits.memory", "2GiB")))),
        M(),
        M(("only", None)),
    ])))
    add("seq of seqs", M(("x", [[1, [2, [3, []]]], [M(("a", [M(("b", 1))]))]])))
    add("map in seq in map", M(("a", [M(("b", [M(("c", [1])), 2]))])))
    add("v1-like group_vars", M(
        ("domain_name", "student-02"),
        ("domain_description", "Student 2 lab environment"),
        ("domain_ephemeral", True),
        ("incus_network", M(("name", "net-student-02"),
                            ("subnet", "10.120.1.0/24"),
                            ("gateway", "10.120.1.254"))),
        ("subnet_id", 1),
        ("network_policies", [M(("from", "host"), ("to", "all"),
                                ("ports", [22, 80]), ("protocol", "tcp"),
                                ("description", "Host to everything"))]),
        ("instance_devices", M(("gpu", M(("type", "gpu"),
                                          ("gputype", "physical"))))),
        ("cloud_init", "#cloud-config\npackages:\n  - curl\n"),
        ("schedule", "0 2 * * *"),
    ))
    add("inventory", M(("all", M(("children", M(("d", M(("hosts", M(
        ("m1", M(("ansible_host", "10.120.1.1"))),
        ("m2", None),
    ))))))))))
    add("null hosts", M(("all", M(("children", M(("d", M(("hosts", None)))))))))
    return cases


# --- random structures -------------------------------------------------------

PIECES = [
    "a", "b", "z", "x", "Web", "db", "0", "1", "9", "42", "10", ".", "-",
    "_", "/", ":", "#", "?", ",", "[", "]", "{", "}", "&", "*", "!", "|",
    ">", "'", '"', "%", "@", "`", "~", "=", "<", "\\", " ", " ", " ", "  ",
    "\t", "\n", "\n", "\r", "é", "—", "日", "😀", "\xa0", "\x85", "\u2028",
    "\ufeff", "\x01", "\x7f", "true", "null", "yes", "no", "on", "0x1F",
    "1_000", "12:30", "2024-01-01", "1.5", ".inf", "e3", "e+3", ": ", " #",
    "- ", "? ", "---", "...", "word ", "lorem ipsum ", "description ",
]


def rand_str(rng):
    r = rng.random()
    if r < 0.1:
        return rng.choice(TRICKY_STRINGS)
    if r < 0.2:
        # long text, usually with spaces, to exercise folding
        n = rng.randint(50, 220)
        alphabet = "abcdefgh   " if rng.random() < 0.8 else "abcdefgh"
        s = "".join(rng.choice(alphabet) for _ in range(n))
        if rng.random() < 0.3:
            s = rng.choice(["'", '"', "\t", "\n", "é", "\x01", ": "]).join(
                [s[: n // 2], s[n // 2:]])
        return s
    n = rng.randint(0, 6)
    return "".join(rng.choice(PIECES) for _ in range(n))


def rand_scalar(rng):
    r = rng.random()
    if r < 0.6:
        return rand_str(rng)
    if r < 0.7:
        return None
    if r < 0.78:
        return rng.random() < 0.5
    if r < 0.9:
        return rng.choice([rng.randint(-1000, 1000), rng.randint(-2**63, 2**63 - 1)])
    return rng.choice(FLOATS + [rng.uniform(-1e6, 1e6), rng.random() * 10 ** rng.randint(-30, 30)])


def rand_key(rng):
    r = rng.random()
    if r < 0.8:
        return rand_str(rng)
    if r < 0.9:
        return rand_scalar(rng)
    if r < 0.95:
        return rng.choice([[], Pairs()])
    return rand_value(rng, 2)


def rand_value(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.45:
        return rand_scalar(rng)
    if r < 0.7:
        return [rand_value(rng, depth - 1) for _ in range(rng.randint(0, 4))]
    return rand_map(rng, depth - 1)


def rand_map(rng, depth):
    return Pairs((rand_key(rng), rand_value(rng, depth))
                 for _ in range(rng.randint(0, 5)))


def random_cases(count, seed=20240601):
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        data = rand_map(rng, rng.randint(1, 4))
        if not data:
            data.append((rand_key(rng), rand_value(rng, 2)))
        cases.append((f"random {i}", data))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--random", type=int, default=400,
                        help="number of random structures (default 400)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    out = []
    for name, data in hand_cases() + random_cases(args.random, args.seed):
        tagged = tag(data)
        expected = dump(data)
        out.append({"name": name, "input": tagged, "expected": expected})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i, case in enumerate(out):
            sep = ",\n" if i + 1 < len(out) else "\n"
            f.write(json.dumps(case) + sep)
        f.write("]\n")
    print(f"wrote {len(out)} cases to {os.path.relpath(args.out)}")


if __name__ == "__main__":
    assert yaml.__version__.startswith("6.0"), yaml.__version__
    main()
