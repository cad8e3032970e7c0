"""Seeded, order-independent sampling and 64/16/20 splitting, shared by the packet datasets.

Every packet gets a priority, a 64-bit hash of (seed, capture name, packet index), so a sample
("the n lowest priorities") and a split do not depend on the order in which captures are read
or on the number of workers. ``packet_split`` splits per packet in a second seeded order (the
paper's protocol); ``flow_split`` sends whole flows, in a seeded order, each to the split
furthest below its share of the packets; ``in_an_earlier_split`` finds the vectors to drop so
that each distinct vector stays in one split (vectors compared by ``leakage.vector_digests``).
Used by ``mtc_keras.iscx`` and ``mtc_keras.ustc``; the split fractions are
``mtc_keras.registry.SPLITS``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from mtc_keras import registry

SPLITS = registry.SPLITS  # the fractions live in mtc_keras.registry


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread uint64 hash of uint64 values (wraps on purpose)."""
    x = np.asarray(x, np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash64(text: str | bytes) -> int:
    """A stable 64-bit hash (BLAKE2b) of a string or bytes, as a Python int."""
    data = text.encode() if isinstance(text, str) else text
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def packet_priorities(seed: int, capture: str, index: np.ndarray) -> np.ndarray:
    """The sampling priority of packets ``index`` of a capture (by its lower-cased name)."""
    base = np.uint64(hash64(f"{seed}:{capture.lower()}"))
    with np.errstate(over="ignore"):
        return mix64(base + np.asarray(index).astype(np.uint64))


def lowest(old: np.ndarray, new: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `old` and of `new` that hold the `limit` lowest priorities of both together."""
    merged = np.concatenate([old, new])
    keep = np.arange(len(merged)) if len(merged) <= limit else np.sort(np.argpartition(merged, limit - 1)[:limit])
    return keep[keep < len(old)], keep[keep >= len(old)] - len(old)


def flow_split(flows: np.ndarray, seed: int, splits=SPLITS) -> np.ndarray:
    """Split index (0, 1, 2) for every packet of one class cell, whole flows to a split.

    flows: uint64 flow hashes, one per packet."""
    unique, inverse, sizes = np.unique(flows, return_inverse=True, return_counts=True)
    targets = np.array([fraction for _, fraction in splits]) * len(flows)
    assigned = np.zeros(len(splits))
    assignment = np.zeros(len(unique), np.int64)
    with np.errstate(over="ignore"):
        order = np.argsort(mix64(unique ^ np.uint64(hash64(f"flow-order:{seed}"))), kind="stable")
    for flow in order.tolist():
        split = int(np.argmax(targets - assigned))  # furthest below its share
        assignment[flow] = split
        assigned[split] += sizes[flow]
    return assignment[inverse.ravel()]


def packet_split(priorities: np.ndarray, seed: int, splits=SPLITS) -> np.ndarray:
    """Split index for every packet of one class cell: 64/16/20 in a seeded random order."""
    n = len(priorities)
    with np.errstate(over="ignore"):
        order = np.argsort(mix64(priorities ^ np.uint64(hash64(f"packet-order:{seed}"))), kind="stable")
    bounds = np.round(np.cumsum([fraction for _, fraction in splits]) * n).astype(np.int64)
    split = np.zeros(n, np.int64)
    split[order] = np.searchsorted(bounds, np.arange(n), side="right")
    return split


def in_an_earlier_split(vectors: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Mask of packets whose vector (hash) also occurs in an earlier split (train, validation,
    test order): dropping them keeps each vector in the first split that has it."""
    order = np.lexsort((split, vectors))
    vec, spl = vectors[order], split[order]
    group_start = np.r_[True, vec[1:] != vec[:-1]]
    first_split = spl[np.maximum.accumulate(np.where(group_start, np.arange(len(vec)), 0))]
    drop = np.zeros(len(vec), bool)
    drop[order] = spl != first_split
    return drop
