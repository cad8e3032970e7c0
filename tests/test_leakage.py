"""mtc_keras.leakage on hand-made splits (built datasets: tests/test_probe.py)."""

import numpy as np
import pytest

from mtc_keras import leakage
from mtc_keras.packets import VECTOR_LEN


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, VECTOR_LEN), dtype=np.uint8)


def test_each_test_packet_is_counted_by_its_flow_and_by_its_bytes():
    train = _vectors(3, seed=0)
    train_flows = ["a.pcap|tcp 0:443 0:5000", "a.pcap|tcp 0:443 0:5000", "b.pcap|udp 0:53 0:6000"]
    last_byte_differs = train[2].copy()
    last_byte_differs[-1] ^= 1
    test = np.stack([train[0],            # same flow, same bytes
                     train[1],            # a new flow, but bytes seen in train (another capture)
                     _vectors(1, 1)[0],   # a flow of train, new bytes
                     last_byte_differs,   # new flow; bytes differ from train only in byte 1499
                     _vectors(1, 2)[0]])  # nothing in train
    test_flows = [b"a.pcap|tcp 0:443 0:5000", "c.pcap|tcp 0:443 0:5000", "b.pcap|udp 0:53 0:6000",
                  "d.pcap|udp 0:1 0:2", "e.pcap|udp 0:1 0:2"]

    figures = leakage.leakage_figures(train_flows, train, test_flows, test)

    assert figures["test_packets_with_flow_in_train"] == pytest.approx(2 / 5)  # bytes ids match str
    assert figures["test_vectors_in_train"] == pytest.approx(2 / 5)
    assert (figures["test_packets"], figures["test_packets_with_flow_in_train_count"],
            figures["test_vectors_in_train_count"]) == (5, 2, 2)
    assert (figures["train_packets"], figures["train_flows"], figures["train_distinct_vectors"]) == (3, 2, 3)
    assert set(leakage.FIGURES) | set(leakage.COUNTS) == set(figures)


def test_disjoint_splits_leak_nothing_and_an_empty_test_split_has_no_share():
    train, test = _vectors(50, seed=3), _vectors(20, seed=4)
    figures = leakage.leakage_figures([f"t{i}" for i in range(50)], train, [f"s{i}" for i in range(20)], test)
    assert figures["test_packets_with_flow_in_train"] == 0 and figures["test_vectors_in_train"] == 0
    empty = leakage.leakage_figures(["t"], train[:1], [], np.zeros((0, VECTOR_LEN), np.uint8))
    assert empty["test_packets_with_flow_in_train"] is None and empty["test_vectors_in_train"] is None
    assert empty["test_packets"] == 0


def test_streaming_in_batches_gives_the_one_shot_figures():
    rng = np.random.default_rng(5)
    train = _vectors(200, seed=6)
    train_flows = [f"f{i % 17}" for i in range(200)]
    test = np.concatenate([train[rng.choice(200, 30)], _vectors(40, seed=7)])
    test_flows = [f"f{i % 23}" for i in range(70)]
    whole = leakage.leakage_figures(train_flows, train, test_flows, test)

    counter = leakage.LeakageCounter()
    for start in range(0, 200, 64):
        counter.add_train(train_flows[start:start + 64], train[start:start + 64])
    for start in range(0, 70, 32):
        counter.add_test(test_flows[start:start + 32], test[start:start + 32])
    assert counter.figures() == whole
    assert 30 / 70 <= whole["test_vectors_in_train"] < 1
    with pytest.raises(RuntimeError, match="before the first test batch"):
        counter.add_train(train_flows[:1], train[:1])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 flow ids for 3 packets"):
        leakage.leakage_figures(["a", "b"], _vectors(3, 0), [], np.zeros((0, VECTOR_LEN), np.uint8))
    with pytest.raises(ValueError, match=r"\[n, bytes\]"):
        leakage.vector_digests(np.zeros(VECTOR_LEN, np.uint8))
