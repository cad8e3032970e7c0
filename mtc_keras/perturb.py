"""Shortcut reliance and the forged test: how much of a classifier's score rests on the capture's
hosts, and training that cannot lean on them.

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

**The forged test** (``forge``): the test split as another network would show the same
applications. Per flow, and consistently across its packets and both directions, every field
whose value depends on the host, the path or the moment of capture (``HOST_FIELDS``) takes a new
value: the IP identification a new start per flow and direction (its steps kept), the TTL / hop
limit and the TCP window one training-split value per flow and direction, the TCP sequence
numbers a new initial number per direction (steps kept; the other direction's acknowledgements
shifted with it), the IPv6 flow label a new value per flow and direction, and the client's port
(the port the flow's first packet is sent from) a new one per flow, drawn from the training
split's client ports (the higher port of each packet: drawn from IANA's ephemeral range instead,
a forged flow's ports would tell it from a captured one on data from hosts with another range,
as USTC-TFC2016's Windows XP hosts and their ports 1025-5000). The server's port,
lengths, flags, protocol and payload stay. ``FORGED_TESTS["forged_ports"]`` also redraws the
server's port, per flow, from the training split's server ports (an application on another port,
behind a VPN or a proxy). Fields the dataset masks (zero in every training row) stay zero.

**Identifier arms** (``IDENTIFIER_ARMS``, ``--identifiers`` of every trainer and probe): ``keep``
trains on the packets as captured; ``redraw`` forges every training batch afresh (new draws each
epoch); ``mask`` zeroes ``HOST_FIELDS`` in every split (``mask_host_fields``; the client's port
cannot be told from one packet, so ports stay: the masked-ports configs zero them). Evaluation
data are never redrawn; under ``mask`` they are masked like the training data (``model_inputs``).

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

# What the forged test redraws and the mask arm zeroes: values set by the host, the path or the
# moment of capture, not by the application (the client's port too, in forge).
HOST_FIELDS = ("ip_id", "ttl", "tcp_seq", "tcp_ack", "tcp_window", "ipv6_flow_label")
# The forged tests by name: whether the server's port is redrawn too; and their titles in reports.
FORGED_TESTS = {"forged": False, "forged_ports": True}
FORGED_TITLES = {"forged": "forged", "forged_ports": "forged, ports too"}
IDENTIFIER_ARMS = ("keep", "redraw", "mask")
DEFAULT_IDENTIFIERS = "keep"
# The training split's pools a forged test draws from; "server_port" is the lower port of each
# packet, "client_port" the higher (servers listen on the lower port far more often than not).
POOL_FIELDS = tuple(dict.fromkeys(PERTURBED_FIELDS + HOST_FIELDS)) + ("server_port", "client_port")
_ACK = 0x10


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


def field_pools(train_packets: np.ndarray, fields: Iterable[str] = POOL_FIELDS, *,
                flow_ids=None, order=None) -> dict:
    """{(field, version slot): values [k] of the field in the training rows that have it};
    ``server_port`` / ``client_port``: one value per training flow (``flow_directions``'s rule;
    without ``flow_ids`` every row is a flow), and ``("port_flows", 0)``: ``port_flows`` of the
    rows. For a split read in batches, ``merge_pools`` the pools of the batches."""
    train_packets = np.asarray(train_packets, np.uint8)
    pools = {}
    fields = tuple(fields)
    if {"server_port", "client_port"} & set(fields):
        flow, src, dst = _flows_and_ports(train_packets, flow_ids)
        popularity = pools[("port_flows", 0)] = _popularity(flow, src, dst)
        first, client, server = _flow_ports(flow, src, dst, order, popularity)
        slot = (train_packets[first, 0] >> 4 == 6).astype(np.int64)
        two_sided = (client != server) & (client > 0) & (server > 0)
        for field, ports in (("client_port", client), ("server_port", server)):
            for version in (0, 1):
                pools[(field, version)] = ports[two_sided & (slot == version)]
    for field in fields:
        if field in ("server_port", "client_port"):
            continue
        for slot, rows, values in _field_entries(train_packets, field):
            pools[(field, slot)] = values
    return pools


def _field_entries(packets: np.ndarray, field: str):
    """[(version slot, rows, values)] of ``field`` in the rows that have it."""
    out = []
    for slot, rows, start, width, mask in _locations(packets, field):
        shift = (mask & -mask).bit_length() - 1
        out.append((slot, rows, (_read(packets, rows, start, width) & mask) >> shift))
    return out


def _write(out: np.ndarray, rows, start, width: int, mask: int, values) -> None:
    """Write ``values`` into the bits ``mask`` of the field at ``start`` of ``rows``."""
    shift = (mask & -mask).bit_length() - 1
    value = (_read(out, rows, start, width) & ~mask) | ((np.asarray(values, np.int64) << shift) & mask)
    for i in range(width):  # big-endian, byte by byte
        out[rows, start + i] = (value >> (8 * (width - 1 - i))) & 0xFF


def merge_pools(parts: Iterable[Mapping]) -> dict:
    """The pools of several batches of the training split as one (``port_flows`` added up)."""
    merged: dict = {}
    for part in parts:
        for key, values in part.items():
            merged.setdefault(key, []).append(values)
    return {key: np.sum(values, axis=0) if key[0] == "port_flows" else np.concatenate(values)
            for key, values in merged.items()}


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
            _write(out, rows, start, width, mask, pool[rng.integers(0, len(pool), size=len(rows))])
    return out


def perturbed_sets(packets: np.ndarray, pools: Mapping, *, seed: int = 0,
                   names: Iterable[str] = tuple(PERTURBATIONS)):
    """(name, perturbed copy of ``packets``) for each perturbation, one at a time."""
    for name in names:
        yield name, perturb(packets, name, pools, seed=seed)


# ------------------------------------------------------------------ the forged test
def _flows_and_ports(packets: np.ndarray, flow_ids):
    """(flow index [n], source ports [n], destination ports [n]) of the rows; without
    ``flow_ids`` every row is a flow of its own."""
    src, dst = header_ports(packets)
    flow = (np.arange(len(src)) if flow_ids is None
            else np.unique(np.asarray(flow_ids).astype(str), return_inverse=True)[1].reshape(-1))
    return flow, src, dst


def _popularity(flow, src, dst) -> np.ndarray:
    pairs = np.unique(np.concatenate([np.stack([flow, src], 1), np.stack([flow, dst], 1)]), axis=0)
    counts = np.bincount(pairs[:, 1], minlength=1 << 16)
    counts[0] = 0
    return counts


def port_flows(packets: np.ndarray, flow_ids=None) -> np.ndarray:
    """[65536] how many flows use each port, on either side (0 counts nothing: masked or no
    ports); without ``flow_ids`` every row counts as a flow."""
    return _popularity(*_flows_and_ports(packets, flow_ids))


def _flow_ports(flow, src, dst, order, popularity):
    """(first row [flows] of each flow by ``order``, client port [flows], server port
    [flows]): ``flow_directions``'s rule."""
    if popularity is None:
        popularity = _popularity(flow, src, dst)
    n = len(flow)
    rows = np.arange(n) if order is None else np.argsort(np.asarray(order), kind="stable")
    first = np.full(flow.max() + 1 if n else 0, -1, np.int64)
    # the first row of each flow in order: scanning backwards, the earliest row writes last
    first[flow[rows[::-1]]] = rows[::-1]
    a, b = src[first], dst[first]
    a_serves = (popularity[a] > popularity[b]) | ((popularity[a] == popularity[b]) & (a < b))
    return first, np.where(a_serves, b, a), np.where(a_serves, a, b)


def _directions(flow, src, dst, order, popularity) -> np.ndarray:
    _, client, server = _flow_ports(flow, src, dst, order, popularity)
    client, server = client[flow], server[flow]
    direction = np.where(src == server, 1, 0)
    direction[(client == server) | ((src != client) & (src != server))] = 2
    return direction


def flow_directions(packets: np.ndarray, flow_ids=None, order=None, popularity=None):
    """(flow [n] int, direction [n]) of each row: its flow's index and 0 when the flow's client
    sends it, 1 when its server does, 2 when the flow has one port on both sides (or none).

    A flow's server port is the one of its two ports that more flows use (``popularity``:
    flows per port, ``port_flows``; default: these rows' own; a tie goes to the lower port): a
    service's port is shared by many flows, a client's by one. The first kept packet is no
    guide: the packet rules drop payload-less handshakes and the builders sample packets, so
    on USTC-TFC2016 a flow's first kept packet is sent from the lower port in 45 % of flows.
    Without ``flow_ids`` every row is a flow of its own."""
    flow, src, dst = _flows_and_ports(np.asarray(packets, np.uint8), flow_ids)
    return flow, _directions(flow, src, dst, order, popularity)


def header_ports(packets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(source ports, destination ports) [n], 0 where a row has none."""
    fields = packet_layout.header_fields(packets, ("src_port", "dst_port"))
    return fields["src_port"], fields["dst_port"]


def _masked(pools: Mapping, field: str) -> bool:
    """Whether the dataset masks ``field``: every training value of it is zero."""
    values = [v for (name, _), v in pools.items() if name == field and len(v)]
    return bool(values) and not any(v.any() for v in values)


def forge(packets: np.ndarray, pools: Mapping, *, flow_ids=None, order=None, seed=0,
          ports_too: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """A copy of ``packets`` as another network would show the same flows (module docstring):
    per flow and direction, ``HOST_FIELDS`` and the client's port take new values, drawn with
    ``rng`` (default: seeded by ``seed`` and ``ports_too``); ``ports_too`` also redraws the
    server's port per flow from ``pools["server_port"]``. ``pools``: the training split's
    ``field_pools``. ``flow_ids`` / ``order``: each row's flow and position in its capture
    (without them every row is a flow of its own)."""
    out = np.array(packets, np.uint8, copy=True)
    if not len(out):
        return out
    rng = rng if rng is not None else np.random.default_rng([seed, 31, int(ports_too)])
    flow, *ports = _flows_and_ports(out, flow_ids)
    direction = _directions(flow, *ports, order, pools.get(("port_flows", 0)))
    groups = 2 * (flow.max() + 1)
    way = np.minimum(direction, 1)  # a flow with one port on both sides: one way
    group = 2 * flow + way  # one (flow, direction)
    other = 2 * flow + 1 - way
    flags = packet_layout.header_fields(out, ("tcp_flags",))["tcp_flags"]

    def pooled(field, slot):  # one training value per (flow, direction), or None
        pool = pools.get((field, slot))
        return None if pool is None or not len(pool) else pool[rng.integers(0, len(pool), groups)]

    # one draw per (flow, direction) for every field, whichever fields the flow's rows hold
    shifts = {"ip_id": rng.integers(0, 1 << 16, groups), "tcp_seq": rng.integers(0, 1 << 32, groups),
              "ipv6_flow_label": rng.integers(0, 1 << 20, groups)}
    new_ports = {}
    for side in ("client_port", "server_port"):  # one training port per flow
        pool = np.concatenate([v for (name, _), v in pools.items() if name == side]
                              or [np.zeros(0, np.int64)])
        new_ports[side] = pool[rng.integers(0, len(pool), groups // 2)] if len(pool) else None
    for field in HOST_FIELDS:
        if _masked(pools, field):
            continue
        for slot, rows, start, width, mask in _locations(out, field):
            if not len(rows):
                continue
            shift = (mask & -mask).bit_length() - 1
            old = (_read(out, rows, start, width) & mask) >> shift
            top = (mask >> shift) + 1
            g = group[rows]
            if field in ("ip_id", "tcp_seq"):  # a new start, the steps kept
                new = (old + shifts[field][g]) % top
            elif field == "tcp_ack":  # follows the other direction's new sequence numbers
                acked = (flags[rows] & _ACK) != 0
                new = np.where(acked, (old + shifts["tcp_seq"][other[rows]]) % top, old)
            elif field == "ipv6_flow_label":
                new = shifts[field][g]
            else:  # ttl, tcp_window: one training value per flow and direction
                drawn = pooled(field, slot)
                if drawn is None:
                    continue
                new = drawn[g]
            _write(out, rows, start, width, mask, new)
    port_fields = ("src_port", "dst_port")
    client, server = new_ports["client_port"], new_ports["server_port"] if ports_too else None
    if client is not None and not any(_masked(pools, f) for f in port_fields):
        for index, field in enumerate(port_fields):
            for slot, rows, start, width, mask in _locations(out, field):
                has = (ports[0][rows] != 0) | (ports[1][rows] != 0)
                rows, start = rows[has], start[has]
                if not len(rows):
                    continue
                # the source port is the client's on the way out, the destination's on the way
                # back; a flow with one port on both sides has no client port to tell
                clients = direction[rows] == index
                new = np.where(clients, client[flow[rows]],
                               _read(out, rows, start, width) if server is None
                               else server[flow[rows]])
                _write(out, rows, start, width, mask, new)
    return out


def forged_sets(packets: np.ndarray, pools: Mapping, *, flow_ids=None, order=None, seed: int = 0):
    """(name, forged copy of ``packets``) for each of ``FORGED_TESTS``."""
    for name, ports_too in FORGED_TESTS.items():
        yield name, forge(packets, pools, flow_ids=flow_ids, order=order, seed=seed,
                          ports_too=ports_too)


def mask_host_fields(packets: np.ndarray) -> np.ndarray:
    """A copy of ``packets`` with ``HOST_FIELDS`` zeroed (the ``mask`` arm); nothing else changes."""
    out = np.array(packets, np.uint8, copy=True)
    for field in HOST_FIELDS:
        for _, rows, start, width, mask in _locations(out, field):
            _write(out, rows, start, width, mask, np.zeros(len(rows), np.int64))
    return out


def check_identifiers(identifiers: str) -> str:
    if identifiers not in IDENTIFIER_ARMS:
        raise ValueError(f"identifiers must be one of {IDENTIFIER_ARMS}, got {identifiers!r}")
    return identifiers


def model_inputs(packets: np.ndarray, identifiers: str) -> np.ndarray:
    """What a model or probe trained with arm ``identifiers`` reads of evaluation ``packets``:
    masked under ``mask``, as they are otherwise (evaluation data are never redrawn)."""
    return mask_host_fields(packets) if check_identifiers(identifiers) == "mask" else packets


class TrainingForger:
    """The ``redraw`` arm: forges training batches with fresh draws at every call (so every
    epoch), seeded once; ``pools`` are the training split's own ``field_pools``."""

    def __init__(self, pools: Mapping, seed: int = 0):
        self.pools = pools
        self.rng = np.random.default_rng([seed, 32])

    def __call__(self, packets: np.ndarray, flow_ids=None, order=None) -> np.ndarray:
        return forge(packets, self.pools, flow_ids=flow_ids, order=order, rng=self.rng)


def training_inputs(identifiers: str, pools: Mapping | None, seed: int = 0):
    """(packets, flow_ids, order) -> training packets for arm ``identifiers``."""
    arm = check_identifiers(identifiers)
    if arm == "redraw":
        if pools is None:
            raise ValueError("the redraw arm needs the training split's field pools")
        return TrainingForger(pools, seed)
    if arm == "mask":
        return lambda packets, flow_ids=None, order=None: mask_host_fields(packets)
    return lambda packets, flow_ids=None, order=None: packets


def forged_figures(metrics: Mapping[str, Mapping]) -> dict:
    """{"macro_f1", "accuracy", "per_flow": {verdict: macro-F1}} of an ``evaluation.evaluate``
    task result: what a forged test keeps of it."""
    per_flow = metrics.get("per_flow") or {}
    return {"macro_f1": metrics["macro_f1"], "accuracy": metrics["accuracy"],
            "per_flow": {name: None if f is None else f["macro_f1"] for name, f in per_flow.items()}}


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
