"""How much of a test split the train split already holds: the two leakage figures of a dataset.

A per-packet random split (the paper's) puts packets of one flow in both train and test, and
identical packet vectors (retransmissions, keep-alives, background broadcasts) on both sides,
so a model can score by recall instead of by generalising. Two figures measure that:

- ``test_packets_with_flow_in_train``: the share of test packets whose flow id also has
  packets in train;
- ``test_vectors_in_train``: the share of test vectors that also occur byte-for-byte in train.

Both are exactly 0 for a flow split that keeps identical vectors in one split. Vectors are
compared by a 16-byte BLAKE2b digest of their bytes (a collision is ~2^-64 likely per pair),
so train can be summarised in one streaming pass and never held whole in memory.

``leakage_figures`` works on arrays (a builder calls it with the splits it wrote);
``leakage_from_tfds`` reads a built ISCX (or USTC-TFC2016) config back and computes the same figures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

DIGEST_SIZE = 16
FIGURES = ("test_packets_with_flow_in_train", "test_vectors_in_train")
# Counts beside the shares: test_packets is the denominator of both.
COUNTS = ("test_packets", "test_packets_with_flow_in_train_count", "test_vectors_in_train_count",
          "train_packets", "train_flows", "train_distinct_vectors")


def vector_digests(packets) -> np.ndarray:
    """One ``S16`` BLAKE2b digest per row of a 2-D uint8 array (rows equal <=> digests equal)."""
    packets = np.ascontiguousarray(packets, dtype=np.uint8)
    if packets.ndim != 2:
        raise ValueError(f"packets must be [n, bytes], got shape {packets.shape}")
    return np.array([hashlib.blake2b(row, digest_size=DIGEST_SIZE).digest() for row in packets],
                    dtype=f"S{DIGEST_SIZE}")


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
                self._train_digests or [np.zeros(0, f"S{DIGEST_SIZE}")]))
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
        share = (lambda hits: hits / self.test_packets) if self.test_packets else (lambda hits: None)
        return {
            "test_packets_with_flow_in_train": share(self.flow_hits),
            "test_vectors_in_train": share(self.vector_hits),
            "test_packets": self.test_packets,
            "test_packets_with_flow_in_train_count": self.flow_hits,
            "test_vectors_in_train_count": self.vector_hits,
            "train_packets": self.train_packets,
            "train_flows": len(self._train_flows),
            "train_distinct_vectors": distinct,
        }


def leakage_figures(train_flow_ids, train_packets, test_flow_ids, test_packets) -> dict:
    """The leakage figures of one train/test pair of splits.

    ``*_flow_ids``: [n] flow ids (str or bytes; they must name a flow uniquely across captures,
    as the builder's ``flow_id`` does); ``*_packets``: uint8 [n, 1500] vectors.
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


def prepared_builder(data_dir: str, config: str, dataset: str = "iscx"):
    """The built ``<dataset's TFDS name>/<config>`` builder of ``data_dir`` (dataset: a packet
    dataset key of mtc_keras.labels.TASKS, "iscx" or "ustc_tfc2016"); ValueError when the
    config is unknown or not built there (with the command that builds it)."""
    import tensorflow_datasets as tfds

    from mtc_keras.inputs import tfds_name  # registers the builder

    name = tfds_name(dataset, config)  # ValueError for an unknown dataset
    builder = tfds.builder(name, data_dir=data_dir)  # ValueError if the config is unknown
    if not builder.is_prepared():
        folder = name.split("/")[0]
        raise ValueError(f"{name} is not built in {data_dir}: run `tfds build "
                         f"tfds_builders/{folder} --config={config} --data_dir={data_dir} "
                         f"--manual_dir=CAPTURES` first")
    return builder


def prepared_iscx_builder(data_dir: str, config: str):
    """``prepared_builder`` of ISCX VPN-nonVPN."""
    return prepared_builder(data_dir, config, "iscx")


def leakage_from_tfds(data_dir: str, config: str, *, train_split: str = "train",
                      test_split: str = "test", batch_size: int = 4096, dataset: str = "iscx") -> dict:
    """``leakage_figures`` of a built ``<dataset>/<config>`` (default ``iscx_vpn_nonvpn``) in
    ``data_dir``, streamed."""
    builder = prepared_builder(data_dir, config, dataset)
    counter = LeakageCounter()
    for flow_ids, packets in _batches(builder, train_split, batch_size):
        counter.add_train(flow_ids, packets)
    for flow_ids, packets in _batches(builder, test_split, batch_size):
        counter.add_test(flow_ids, packets)
    return counter.figures()
