"""Shortcut reliance: how much of a classifier's test score rests on one header field.

A perturbation replaces one header field of every test packet (or a pair that travels together)
with values drawn at random from the training split's distribution of that field, and leaves
every other byte as it is. A model that reads the application's traffic barely moves; one that
memorised per-host or per-flow values (a TTL, an IP identification counter, sequence numbers,
ports) falls. Only test packets are changed, on a copy: train and validation are never touched.

- Values are drawn from the same IP version's rows (a TTL from TTLs, a hop limit from hop limits)
  and, for transport fields, from rows of the same transport protocol.
- Bytes the dataset masks stay masked: values come from the training split, whose masked fields
  are zero (``flow_split_masked``'s ports), and nothing else in a vector is written (addresses
  and checksums stay zero).
- Seeded: the same seed gives the same perturbed packets.

The field layout comes from ``mtc_keras.packets`` (``field_locations``), the one place it lives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from mtc_keras import packets as packet_layout

# name -> the header fields it replaces (mtc_keras.packets.header_fields names).
PERTURBATIONS = {
    "ttl": ("ttl",),
    "ip_id": ("ip_id",),
    "tcp_window": ("tcp_window",),
    "tcp_seq_ack": ("tcp_seq", "tcp_ack"),
    "ports": ("src_port", "dst_port"),
}
PERTURBED_FIELDS = tuple(dict.fromkeys(f for fields in PERTURBATIONS.values() for f in fields))


def _locations(packets: np.ndarray, field: str):
    """(version slot 0 / 1, rows, byte offsets, width, mask) of ``field`` in ``packets``."""
    span = packet_layout.FIELD_SPANS[field]
    entries = packet_layout.field_locations(packets, field)
    slots = [slot for slot, where in enumerate((span.ipv4, span.ipv6)) if where is not None]
    return [(slot, *entry) for slot, entry in zip(slots, entries)]


def _read(packets: np.ndarray, rows, start, width: int) -> np.ndarray:
    value = np.zeros(len(rows), np.int64)
    for i in range(width):
        value = value << 8 | packets[rows, start + i]
    return value


def field_pools(train_packets: np.ndarray, fields: Iterable[str] = PERTURBED_FIELDS) -> dict:
    """{(field, version slot): values [k] of the field in the training rows that have it}.
    For a split read in batches, ``merge_pools`` the pools of the batches."""
    train_packets = np.asarray(train_packets, np.uint8)
    pools = {}
    for field in fields:
        for slot, rows, start, width, mask in _locations(train_packets, field):
            shift = (mask & -mask).bit_length() - 1
            pools[(field, slot)] = (_read(train_packets, rows, start, width) & mask) >> shift
    return pools


def merge_pools(parts: Iterable[Mapping]) -> dict:
    """The pools of several batches of the training split as one."""
    merged: dict = {}
    for part in parts:
        for key, values in part.items():
            merged.setdefault(key, []).append(values)
    return {key: np.concatenate(values) for key, values in merged.items()}


def perturb(packets: np.ndarray, name: str, pools: Mapping, *, seed: int = 0) -> np.ndarray:
    """A copy of (test) ``packets`` with the fields of perturbation ``name`` replaced by values
    drawn from ``pools`` (``field_pools`` of the training split). Rows without the field, and
    rows whose version has no training values to draw from, are left as they are."""
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; expected one of {list(PERTURBATIONS)}")
    out = np.array(packets, np.uint8, copy=True)
    rng = np.random.default_rng([seed, list(PERTURBATIONS).index(name)])
    for field in PERTURBATIONS[name]:
        for slot, rows, start, width, mask in _locations(out, field):
            pool = pools.get((field, slot))
            if pool is None or not len(pool) or not len(rows):
                continue
            shift = (mask & -mask).bit_length() - 1
            drawn = pool[rng.integers(0, len(pool), size=len(rows))]
            value = (_read(out, rows, start, width) & ~mask) | ((drawn << shift) & mask)
            for i in range(width):  # big-endian, byte by byte
                out[rows, start + i] = (value >> (8 * (width - 1 - i))) & 0xFF
    return out


def perturbed_sets(packets: np.ndarray, pools: Mapping, *, seed: int = 0,
                   names: Iterable[str] = tuple(PERTURBATIONS)):
    """(name, perturbed copy of ``packets``) for each perturbation, one at a time."""
    for name in names:
        yield name, perturb(packets, name, pools, seed=seed)


def reliance(clean: Mapping[str, Mapping], perturbed: Mapping[str, Mapping[str, Mapping]]) -> dict:
    """{task: {perturbation: {"macro_f1", "accuracy", "drop"}}} from the clean metrics
    ({task: task_metrics}) and the metrics of each perturbed test set ({name: {task: ...}});
    ``drop`` is the clean macro-F1 minus the perturbed one."""
    out = {}
    for task, result in clean.items():
        out[task] = {}
        for name, metrics in perturbed.items():
            m = metrics[task]
            drop = (None if result["macro_f1"] is None or m["macro_f1"] is None
                    else result["macro_f1"] - m["macro_f1"])
            out[task][name] = {"macro_f1": m["macro_f1"], "accuracy": m["accuracy"], "drop": drop}
    return out
