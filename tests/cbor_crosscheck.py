#!/usr/bin/python3
"""Cross-check the msb CBOR codec (src/proto/cbor.c) against cbor2.

Values go both ways through build/tests/cbor-roundtrip: cbor2 encodes and
the codec must re-encode to the same bytes, and the codec generates values
that cbor2 must decode and re-encode to the same bytes. Malformed items must
come back as rejected records. cbor2 writes definite lengths and the
shortest integer heads, which is the codec's canonical form, so equal values
must give equal bytes.

Needs python3-cbor2, which Debian installs for /usr/bin/python3.
Usage: tests/cbor_crosscheck.py [--seed N] [--count N] [--tool PATH]
"""

import argparse
import os
import random
import re
import struct
import subprocess
import sys

import cbor2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD_INVALID = 0xFFFFFFFF
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
# Values at and around every change of CBOR head size (RFC 8949, section 3).
HEAD_BOUNDARIES = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, UINT64_MAX]
LENGTH_BOUNDARIES = [0, 1, 23, 24, 255, 256, 65535, 65536, 70000]


def read_max_depth():
    with open(os.path.join(ROOT, "src/proto/cbor.h")) as f:
        match = re.search(r"#define CBOR_MAX_DEPTH (\d+)", f.read())
    if not match:
        sys.exit("CBOR_MAX_DEPTH not found in src/proto/cbor.h")
    return int(match.group(1))


class Failure(Exception):
    pass


def short_hex(data, limit=48):
    if data is None:
        return "rejected"
    if not data:
        return "(empty)"
    text = data[:limit].hex()
    return text + ("..." if len(data) > limit else "")


def frame_records(items):
    return b"".join(struct.pack(">I", len(item)) + item for item in items)


def parse_records(data):
    """Split tool output into records, with None for a rejected record."""
    records = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise Failure("output ends inside a record length")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        if length == RECORD_INVALID:
            records.append(None)
            continue
        if pos + length > len(data):
            raise Failure("output ends inside a record body")
        records.append(data[pos : pos + length])
        pos += length
    return records


class Tool:
    def __init__(self, path):
        self.path = path

    def run(self, items, *args):
        """Return (exit status, records, stderr) for one run over items."""
        proc = subprocess.run(
            [self.path, *args],
            input=frame_records(items),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
        stderr = proc.stderr.decode(errors="replace").strip()
        if proc.returncode < 0:
            raise Failure(f"cbor-roundtrip killed by signal {-proc.returncode}: {stderr}")
        return proc.returncode, parse_records(proc.stdout), stderr

    def roundtrip(self, items):
        """Return the records for items and fail unless the tool exits 0."""
        status, records, stderr = self.run(items)
        if status != 0:
            raise Failure(f"cbor-roundtrip exited with {status}: {stderr}")
        if len(records) != len(items):
            raise Failure(f"{len(items)} records sent, {len(records)} returned")
        return records


def strict_equal(a, b):
    """Compare decoded values by type as well, since True == 1 in Python."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            strict_equal(ka, kb) and strict_equal(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items())
        )
    return a == b


# ---- Random values ----


def random_uint(rng):
    if rng.random() < 0.5:
        value = rng.choice(HEAD_BOUNDARIES) + rng.choice((-1, 0, 1))
        return min(max(value, 0), UINT64_MAX)
    return rng.getrandbits(rng.randint(1, 64))


def random_int(rng):
    value = random_uint(rng)
    if rng.random() < 0.5:
        return value
    # The codec's integer API is int64_t for negative values, so anything
    # below INT64_MIN is covered by the negint_below_int64 case instead.
    return max(-1 - value, INT64_MIN)


def random_length(rng):
    pick = rng.random()
    if pick < 0.02:
        return rng.choice(LENGTH_BOUNDARIES)
    if pick < 0.1:
        return rng.randrange(300)
    return rng.randrange(12)


def random_char(rng):
    span = rng.randrange(4)
    if span == 0:
        return chr(rng.randrange(0x80))
    if span == 1:
        return chr(rng.randrange(0x80, 0x800))
    if span == 2:
        while True:
            cp = rng.randrange(0x800, 0x10000)
            if not 0xD800 <= cp <= 0xDFFF:
                return chr(cp)
    return chr(rng.randrange(0x10000, 0x110000))


def random_text(rng):
    return "".join(random_char(rng) for _ in range(random_length(rng)))


def random_key(rng):
    return random_text(rng) if rng.random() < 0.5 else random_int(rng)


def random_value(rng, depth=0):
    kinds = 8 if depth < 5 else 6
    kind = rng.randrange(kinds)
    if kind == 0:
        return random_int(rng)
    if kind == 1:
        return rng.randbytes(random_length(rng))
    if kind == 2:
        return random_text(rng)
    if kind == 3:
        return rng.choice((True, False))
    if kind == 4:
        return None
    if kind == 5:
        return rng.choice(HEAD_BOUNDARIES)
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(9))]
    return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randrange(9))}


# ---- Checks ----


def check_same_bytes(tool, values):
    """Send cbor2's encoding of each value; the codec must return it unchanged."""
    items = [cbor2.dumps(v) for v in values]
    records = tool.roundtrip(items)
    for i, (value, item, record) in enumerate(zip(values, items, records)):
        if record != item:
            raise Failure(f"value {i}: sent {short_hex(item)}, got {short_hex(record)}")
        if not strict_equal(cbor2.loads(record), value):
            raise Failure(f"value {i}: output decodes to a different value")


def check_canonical(tool, pairs):
    """Each (input hex, expected output hex) pair must re-encode as expected."""
    items = [bytes.fromhex(src) for src, _ in pairs]
    records = tool.roundtrip(items)
    for (src, want), record in zip(pairs, records):
        if record != bytes.fromhex(want):
            raise Failure(f"{src}: expected {want}, got {short_hex(record)}")
        if not strict_equal(cbor2.loads(record), cbor2.loads(bytes.fromhex(src))):
            raise Failure(f"{src}: cbor2 decodes input and output to different values")


def check_rejected(tool, items):
    records = tool.roundtrip(items)
    for item, record in zip(items, records):
        if record is not None:
            raise Failure(f"{short_hex(item)} accepted as {short_hex(record)}, expected rejected")


def check_unsupported(tool, items):
    """Each item alone must stop the tool with exit status 2 and a message."""
    for item in items:
        status, records, stderr = tool.run([item])
        if status != 2:
            raise Failure(f"{short_hex(item)}: exit status {status}, expected 2 ({stderr or 'no stderr'})")
        if records:
            raise Failure(f"{short_hex(item)}: {len(records)} records written before exit")
        if "unsupported" not in stderr:
            raise Failure(f"{short_hex(item)}: stderr lacks the reason: {stderr!r}")


def generated(tool, seed, count):
    status, records, stderr = tool.run([], "--generate", str(seed), str(count))
    if status != 0:
        raise Failure(f"--generate exited with {status}: {stderr}")
    if len(records) != count or None in records:
        raise Failure(f"--generate wrote {len(records)} records, expected {count}")
    return records


def nested_arrays(levels, leaf):
    return b"\x81" * levels + leaf


def nested_maps(levels, leaf):
    # Each level is {"k": ...}.
    return b"\xa1\x61k" * levels + leaf


def prefixes(item):
    if len(item) <= 300:
        return [item[:n] for n in range(len(item))]
    return [item[:n] for n in (0, 1, 2, 3, 5, 9, len(item) // 2, len(item) - 1)]


def build_cases(tool, seed, count, max_depth):
    rng = random.Random(seed)
    cases = []

    def case(fn):
        cases.append((fn.__name__, fn))
        return fn

    @case
    def random_values_same_bytes():
        check_same_bytes(tool, [random_value(rng) for _ in range(count)])

    @case
    def int_boundaries():
        values = []
        for b in HEAD_BOUNDARIES:
            for v in (b - 1, b, b + 1):
                if 0 <= v <= UINT64_MAX:
                    values.append(v)
                if INT64_MIN <= -1 - v <= -1:
                    values.append(-1 - v)
        values += [2**63 - 1, 2**63, INT64_MIN, INT64_MIN + 1]
        check_same_bytes(tool, values)

    @case
    def length_boundaries():
        values = []
        for n in LENGTH_BOUNDARIES:
            values.append(rng.randbytes(n))
            values.append("x" * n)
            values.append("é" * (n // 2) + "x" * (n % 2))
            values.append([0] * n)
            values.append({i: None for i in range(n)})
        check_same_bytes(tool, values)

    @case
    def non_ascii_text():
        values = ["é", "日本語", "😀", "a\u0000b", "\U0010ffff", "\u00ff\u0100\u07ff\u0800\uffff\U00010000"]
        values.append({"ключ": "значение", "キー": ["値", "😀" * 30]})
        check_same_bytes(tool, values)

    @case
    def int_and_text_keys():
        values = [
            {0: 1, -1: 2, 2**64 - 1: 3, INT64_MIN: 4, "0": 5, "": 6},
            {"a": {1: {"b": [{}]}}},
            {},
        ]
        check_same_bytes(tool, values)

    @case
    def non_shortest_heads():
        # Well-formed but not in the shortest form: the codec reads them and
        # writes the shortest form, as cbor2 does.
        check_canonical(
            tool,
            [
                ("1800", "00"),
                ("1817", "17"),
                ("190018", "1818"),
                ("1a000000ff", "18ff"),
                ("1b0000000100000000", "1b0000000100000000"),
                ("1b00000000ffffffff", "1affffffff"),
                ("3800", "20"),
                ("3b0000000000000000", "20"),
                ("580141", "4141"),
                ("5a0000000141", "4141"),
                ("790001" + "61", "6161"),
                ("980100", "8100"),
                ("9b000000000000000100", "8100"),
                ("b8010102", "a10102"),
            ],
        )

    @case
    def nesting_at_max_depth():
        # cbor_skip() rejects an item nested deeper than CBOR_MAX_DEPTH, so
        # max_depth containers around one more item is the deepest accepted.
        items = [
            nested_arrays(max_depth, b"\x01"),
            nested_arrays(max_depth, b"\x80"),
            nested_maps(max_depth, b"\xf6"),
        ]
        for item, record in zip(items, tool.roundtrip(items)):
            if record != item:
                raise Failure(f"{short_hex(item)}: got {short_hex(record)}, expected it unchanged")

    @case
    def nesting_past_max_depth():
        check_rejected(
            tool,
            [
                nested_arrays(max_depth + 1, b"\x01"),
                nested_arrays(max_depth + 1, b"\x80"),
                nested_maps(max_depth + 1, b"\xf6"),
                nested_arrays(1000, b"\x01"),
                nested_arrays(100000, b"\x01"),
            ],
        )

    @case
    def generated_values_decode():
        for i, record in enumerate(generated(tool, seed, count)):
            try:
                value = cbor2.loads(record)
            except Exception as e:
                raise Failure(f"record {i} ({short_hex(record)}): cbor2 failed: {e}")
            again = cbor2.dumps(value)
            if again != record:
                raise Failure(f"record {i}: codec wrote {short_hex(record)}, cbor2 re-encodes {short_hex(again)}")

    @case
    def generated_values_roundtrip():
        records = generated(tool, seed, count)
        for i, (item, record) in enumerate(zip(records, tool.roundtrip(records))):
            if record != item:
                raise Failure(f"record {i}: sent {short_hex(item)}, got {short_hex(record)}")

    @case
    def generate_is_repeatable():
        first = generated(tool, seed, 50)
        if generated(tool, seed, 50) != first:
            raise Failure(f"two runs with seed {seed} differ")
        if generated(tool, seed + 1, 50) == first:
            raise Failure(f"seeds {seed} and {seed + 1} give the same values")

    @case
    def truncated_items():
        items = [cbor2.dumps(random_value(rng)) for _ in range(200)]
        items += [
            cbor2.dumps(v)
            for v in (UINT64_MAX, INT64_MIN, 2**32, b"x" * 300, "é" * 70000, [1, [2, [3]]], {"a": {"b": "c"}})
        ]
        check_rejected(tool, [p for item in items for p in prefixes(item)])

    @case
    def indefinite_lengths():
        check_rejected(
            tool,
            [
                bytes.fromhex(h)
                for h in (
                    "5f4100ff",
                    "5fff",
                    "5f",
                    "7f6161ff",
                    "7fff",
                    "9fff",
                    "9f0102ff",
                    "9f",
                    "bfff",
                    "bf616101ff",
                    "bf",
                    "82019fff",
                    "a161615fff",
                    "a19fff01",
                    "ff",
                    "81ff",
                )
            ],
        )

    @case
    def reserved_additional_info():
        items = []
        for major in range(8):
            for info in (28, 29, 30):
                head = bytes([major << 5 | info])
                items += [head, head + bytes(8), b"\x81" + head, b"\xa1\x00" + head, b"\xa1" + head + b"\x00"]
            # Additional info 31 means an indefinite length, which no
            # integer or tag can have.
            if major in (0, 1, 6):
                items.append(bytes([major << 5 | 31]) + bytes(8))
        check_rejected(tool, items)

    @case
    def huge_lengths():
        check_rejected(
            tool,
            [
                bytes.fromhex(h)
                for h in (
                    "5bffffffffffffffff",
                    "5b7fffffffffffffff00",
                    "5affffffff00",
                    "59ffff" + "00" * 10,
                    "7bffffffffffffffff",
                    "7a7fffffff6161",
                    "9bffffffffffffffff",
                    "9b7fffffffffffffff01",
                    "9a0001000001",
                    "bbffffffffffffffff",
                    # Twice 2^63 items wraps to 0 in 64-bit arithmetic.
                    "bb8000000000000000",
                    "bb800000000000000101",
                    "ba0000000201",
                    "825bffffffffffffffff",
                    "a1015bffffffffffffffff",
                    "81bb8000000000000000",
                    "d8185bffffffffffffffff",
                )
            ],
        )

    @case
    def trailing_bytes():
        check_rejected(tool, [b"\x01\x02", b"\x80\x00", b"\xa0\xa0", b"\x41\x00\x00", b"\xf6\xff"])

    @case
    def empty_record():
        check_rejected(tool, [b""])

    @case
    def rejects_keep_stream_going():
        items = [b"\x01", b"\x5f\x41\x00\xff", b"\x62\xc3\xa9", b"", b"\x81\xf5"]
        records = tool.roundtrip(items)
        expected = [b"\x01", None, b"\x62\xc3\xa9", None, b"\x81\xf5"]
        if records != expected:
            raise Failure(f"got {[short_hex(r) for r in records]}")

    @case
    def negint_below_int64():
        # cbor_get_int() returns int64_t, so the codec cannot represent these.
        check_unsupported(tool, [cbor2.dumps(v) for v in (INT64_MIN - 1, -(2**64), [1, -(2**64)])])

    @case
    def unsupported_types():
        check_unsupported(
            tool,
            [
                bytes.fromhex(h)
                for h in (
                    "f93c00",  # 1.0 as float16
                    "fa3fc00000",  # 1.5 as float32
                    "fb3ff8000000000000",  # 1.5 as float64
                    "f7",  # undefined
                    "f0",  # simple(16)
                    "f820",  # simple(32)
                    "c11a5f5e1000",  # tag 1 (epoch time)
                    "d81840",  # tag 24 on a byte string
                    "c249010000000000000000",  # bignum 2^64
                    "8201c100",
                    "a16161f93c00",
                )
            ],
        )

    @case
    def unsupported_then_malformed():
        # The copy stops at the float or tag; the rest of the item is
        # still malformed, so the record is rejected, not unsupported.
        check_rejected(tool, [bytes.fromhex(h) for h in ("82f93c00", "82c100", "82c1005f", "82f7fc", "c1")])

    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, help="seed of the random values (default: random)")
    parser.add_argument("--count", type=int, default=2000, help="random values per direction (default: 2000)")
    parser.add_argument(
        "--tool",
        default=os.path.join(ROOT, "build/tests/cbor-roundtrip"),
        help="path of cbor-roundtrip (default: build/tests/cbor-roundtrip)",
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed {seed}")

    if not os.access(args.tool, os.X_OK):
        sys.exit(f"{args.tool} not found; build it with `make build/tests/cbor-roundtrip`")

    passed = failed = 0
    for name, fn in build_cases(Tool(args.tool), seed, args.count, read_max_depth()):
        try:
            fn()
        except Failure as e:
            print(f"FAIL {name}: {e}")
            failed += 1
        else:
            print(f"ok {name}")
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
