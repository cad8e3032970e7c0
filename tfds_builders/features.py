"""TFDS feature definitions shared by the packet builders (ISCX VPN-nonVPN, USTC-TFC2016)."""

import numpy as np
import tensorflow_datasets as tfds

from mtc_keras import packets


def packet_feature() -> tfds.features.Tensor:
    """The `packet` feature: one mtc_keras.packets vector, stored as raw bytes."""
    return tfds.features.Tensor(
        shape=(packets.VECTOR_LEN,), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES,
        doc="IP packet, addresses and checksums zeroed, TCP header cut / UDP header padded "
            "to 20 bytes, zero-padded or truncated to 1500 bytes (mtc_keras.packets)")


def index_feature() -> tfds.features.Scalar:
    """The `index` feature: the packet's position among its capture's kept packets, which
    orders a flow's packets in time (a flow's first N packets: mtc_keras.flows)."""
    return tfds.features.Scalar(
        np.int64, doc="position of the packet among the kept packets of its capture (capture "
                      "order; the stored order of a split is not)")
