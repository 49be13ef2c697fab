"""Reproducible file damage for reader robustness tests and fuzz campaigns: ``damage(data, seed)``.

One integer seed decides one damaged file, so a failing case is replayed from the seed a test or benchmark
prints (``damage(original_bytes, seed)``), on any machine. The kinds of damage are those real archives show:
truncation (an interrupted copy), flipped bytes (near the header, where sizes, codes and offsets live, or
anywhere), and a number in the text replaced by an absurd one (``1e39``, ``0.001``, ``5000.001``, ...), which
reaches the values, rates and counts that random bytes rarely do.
"""

from __future__ import annotations

import re

import numpy as np

KINDS = ("truncate", "mutate", "both", "number", "bytes2")

ABSURD_NUMBERS = (b"0", b"-1", b"1e39", b"1e308", b"0.001", b"5000.001", b"99999999999", b"nan", b"-0", b"32",
                  b"2", b"65535")

_SPECIAL = np.frombuffer(b"\x00\xff<>&\"-9.eE\n,", dtype=np.uint8)
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?")


def damage(data: bytes, seed: int) -> bytes:
    """``data`` damaged in one of :data:`KINDS`, chosen and carried out by ``np.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    out = bytearray(data)
    kind = KINDS[int(rng.integers(len(KINDS)))]
    if not out:
        return bytes(out)
    if kind in ("mutate", "both"):
        head = min(len(out), 2048)
        for _ in range(int(rng.integers(1, 9))):
            where = int(rng.integers(head)) if rng.random() < 0.5 else int(rng.integers(len(out)))
            out[where] = int(rng.integers(256)) if rng.random() < 0.6 else int(rng.choice(_SPECIAL))
    if kind == "bytes2":  # the "2-byte change": two neighbouring bytes, anywhere
        where = int(rng.integers(max(len(out) - 1, 1)))
        out[where:where + 2] = bytes(int(v) for v in rng.integers(0, 256, size=len(out[where:where + 2])))
    if kind == "number":
        matches = list(_NUMBER.finditer(bytes(out[: 1 << 16])))
        if matches:
            match = matches[int(rng.integers(len(matches)))]
            out[match.start():match.end()] = ABSURD_NUMBERS[int(rng.integers(len(ABSURD_NUMBERS)))]
        else:
            out[int(rng.integers(len(out)))] ^= 0xFF
    if kind in ("truncate", "both"):
        cut = int(rng.integers(min(len(out), 4096) + 1)) if rng.random() < 0.5 else int(rng.integers(len(out) + 1))
        del out[cut:]
    return bytes(out)
