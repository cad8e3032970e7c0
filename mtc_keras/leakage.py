"""How much of a test split the train split already holds: the two leakage figures of a dataset.

A per-packet random split (the paper's) puts packets of one flow in both train and test, and
identical packet vectors (retransmissions, keep-alives, background broadcasts) on both sides,
so a model can score by recall instead of by generalising. Two figures measure that:

- ``test_packets_with_flow_in_train``: the share of test packets whose flow id also has
  packets in train;
- ``test_vectors_in_train``: the share of test vectors that also occur byte-for-byte in train.

Both are exactly 0 for a flow split that keeps identical vectors in one split. Vectors are
compared by their digest, ``vector_digests``: an 8-byte BLAKE2b of their bytes as a uint64 (a
collision is ~2^-64 likely per pair; the builders' cross-split de-duplication uses the same
digest), so train can be summarised in one streaming pass and never held whole in memory.

This module is the one place the figures are computed and named (FIGURES, COUNTS): the build
reports store them under these names (``figures_from_keys`` from the flow and vector keys a
builder holds, or ``leakage_figures`` from arrays) and ``leakage_from_tfds`` computes them from
a built packet dataset (ISCX VPN-nonVPN, USTC-TFC2016) read back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from mtc_keras import registry

DIGEST_SIZE = 8
FIGURES = ("test_packets_with_flow_in_train", "test_vectors_in_train")
# Counts beside the shares: test_packets is the denominator of both.
COUNTS = ("test_packets", "test_packets_with_flow_in_train_count", "test_vectors_in_train_count",
          "train_packets", "train_flows", "train_distinct_vectors")


def vector_digests(packets) -> np.ndarray:
    """One uint64 digest (8-byte BLAKE2b, little-endian) per row of a 2-D uint8 array: rows
    equal <=> digests equal, up to a ~2^-64 chance per pair."""
    packets = np.ascontiguousarray(packets, dtype=np.uint8)
    if packets.ndim != 2:
        raise ValueError(f"packets must be [n, bytes], got shape {packets.shape}")
    digests = b"".join(hashlib.blake2b(row, digest_size=DIGEST_SIZE).digest() for row in packets)
    return np.frombuffer(digests, "<u8").astype(np.uint64)


def figures_from_keys(train_flows, train_vectors, test_flows, test_vectors) -> dict:
    """FIGURES and COUNTS from per-packet keys: flow keys (any comparable values that name a
    flow uniquely, e.g. flow ids or their hashes) and vector digests, for train and test."""
    train_flows, test_flows = np.asarray(train_flows), np.asarray(test_flows)
    train_vectors, test_vectors = np.asarray(train_vectors), np.asarray(test_vectors)
    flows = set(train_flows.tolist())
    distinct = np.unique(train_vectors)
    flow_hits = sum(flow in flows for flow in test_flows.tolist())
    vector_hits = int(np.isin(test_vectors, distinct).sum())
    return _figures(len(test_vectors), flow_hits, vector_hits, len(train_vectors), len(flows),
                    len(distinct))


def _figures(test_packets, flow_hits, vector_hits, train_packets, train_flows, distinct) -> dict:
    share = (lambda hits: hits / test_packets) if test_packets else (lambda hits: None)
    return {
        "test_packets_with_flow_in_train": share(flow_hits),
        "test_vectors_in_train": share(vector_hits),
        "test_packets": int(test_packets),
        "test_packets_with_flow_in_train_count": int(flow_hits),
        "test_vectors_in_train_count": int(vector_hits),
        "train_packets": int(train_packets),
        "train_flows": int(train_flows),
        "train_distinct_vectors": int(distinct),
    }


def _flow_strings(flow_ids) -> np.ndarray:
    """Flow ids as str, whether given as str or as the bytes TFDS hands back."""
    return np.array([f.decode("utf-8") if isinstance(f, bytes) else str(f) for f in flow_ids],
                    dtype=object)


class LeakageCounter:
    """Streaming form: ``add_train`` every train batch first, then ``add_test`` every test batch.

    Holds one digest per distinct train vector and the set of train flow ids.
    """

    def __init__(self):
        self._train_flows: set[str] = set()
        self._train_digests: list[np.ndarray] = []
        self._train_sorted: np.ndarray | None = None
        self.train_packets = 0
        self.test_packets = 0
        self.flow_hits = 0
        self.vector_hits = 0

    @staticmethod
    def _check(flow_ids, packets):
        flow_ids = _flow_strings(flow_ids)
        digests = vector_digests(packets)
        if len(flow_ids) != len(digests):
            raise ValueError(f"{len(flow_ids)} flow ids for {len(digests)} packets")
        return flow_ids, digests

    def add_train(self, flow_ids, packets) -> None:
        if self._train_sorted is not None:
            raise RuntimeError("add every train batch before the first test batch")
        flow_ids, digests = self._check(flow_ids, packets)
        self._train_flows.update(flow_ids)
        self._train_digests.append(np.unique(digests))
        self.train_packets += len(digests)

    def add_test(self, flow_ids, packets) -> None:
        if self._train_sorted is None:
            self._train_sorted = np.unique(np.concatenate(
                self._train_digests or [np.zeros(0, np.uint64)]))
            self._train_digests = []
        flow_ids, digests = self._check(flow_ids, packets)
        self.test_packets += len(digests)
        self.flow_hits += sum(flow in self._train_flows for flow in flow_ids)
        self.vector_hits += int(np.isin(digests, self._train_sorted, assume_unique=False).sum())

    def figures(self) -> dict:
        """The two shares (None when test is empty) and the counts they come from."""
        if self._train_sorted is None:
            distinct = len(np.unique(np.concatenate(self._train_digests))) if self._train_digests else 0
        else:
            distinct = len(self._train_sorted)
        return _figures(self.test_packets, self.flow_hits, self.vector_hits, self.train_packets,
                        len(self._train_flows), distinct)


def leakage_figures(train_flow_ids, train_packets, test_flow_ids, test_packets) -> dict:
    """The leakage figures of one train/test pair of splits.

    ``*_flow_ids``: [n] flow ids (str or bytes; they must name a flow uniquely across captures,
    as the builders' ``flow_id`` does); ``*_packets``: uint8 [n, 1500] vectors.
    Returns FIGURES (shares in [0, 1], None for an empty test split) and COUNTS.
    """
    counter = LeakageCounter()
    counter.add_train(train_flow_ids, train_packets)
    counter.add_test(test_flow_ids, test_packets)
    return counter.figures()


def _batches(builder, split: str, batch_size: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(split=split, batch_size=batch_size, shuffle_files=False)
    for batch in tfds.as_numpy(dataset):
        yield batch["flow_id"], batch["packet"]


def leakage_from_tfds(data_dir: str, config: str, *, train_split: str = "train",
                      test_split: str = "test", batch_size: int = 4096, dataset: str = "iscx") -> dict:
    """``leakage_figures`` of a built ``<dataset>/<config>`` (default ``iscx_vpn_nonvpn``) in
    ``data_dir``, streamed."""
    builder = registry.load(dataset, config, data_dir)
    counter = LeakageCounter()
    for flow_ids, packets in _batches(builder, train_split, batch_size):
        counter.add_train(flow_ids, packets)
    for flow_ids, packets in _batches(builder, test_split, batch_size):
        counter.add_test(flow_ids, packets)
    return counter.figures()
