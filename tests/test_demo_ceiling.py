"""The demo's bound (benchmarks.demo_ceiling) is a bound: no rule of the same keys scores higher."""

import numpy as np

from benchmarks import demo_ceiling
from mtc_keras.labels import ISCX_VPN_TRAFFIC, MISSING, TASKS
from mtc_keras.packets import header_fields


def test_in_sample_majority_is_the_best_rule_of_its_keys():
    rng = np.random.default_rng(0)
    keys = np.stack([rng.integers(0, 6, 400), rng.integers(0, 2, 400)], 1)
    y = (keys[:, 0] + rng.integers(0, 3, 400)) % 5  # labels that the keys only partly tell
    best = demo_ceiling.in_sample_majority(keys, y)
    best_accuracy = (best == y).mean()
    domain = sorted(set(map(tuple, keys)))
    for _ in range(200):  # any other lookup table from key to label does no better
        table = dict(zip(domain, rng.integers(0, 5, len(domain))))
        assert (np.array([table[tuple(k)] for k in keys]) == y).mean() <= best_accuracy
    # constant on each key, and ties go to the lowest label
    assert demo_ceiling.in_sample_majority(np.array([[1, 0], [1, 0], [2, 1]]), np.array([4, 3, 7])).tolist() == [3, 3, 7]


def test_nearest_label_takes_the_closest_train_key():
    train_keys, train_y = np.array([900, 10, 500]), np.array([2, 0, 1])
    assert demo_ceiling.nearest_label(train_keys, train_y, np.array([0, 11, 200, 499, 700, 2000])).tolist() == \
        [0, 0, 0, 1, 1, 2]


def test_ip_id_and_vpn_rows():
    packets = np.zeros((3, 1500), np.uint8)
    packets[:2, 0] = 0x45  # IPv4
    packets[0, 4:6] = [0x12, 0x34]
    packets[1, 4:6] = [0xFF, 0xFE]
    packets[2, 0] = 0x60  # IPv6 has no identification field
    packets[2, 4:6] = [0x12, 0x34]
    assert header_fields(packets)["ip_id"].tolist() == [0x1234, 0xFFFE, 0]
    traffic = TASKS["iscx"]["traffic"]
    rows = np.array([traffic.index("Chat"), traffic.index("VPN: Chat"), MISSING, traffic.index("VPN: VoIP")])
    assert demo_ceiling.is_vpn(rows).tolist() == [False, True, False, True]
    assert len(ISCX_VPN_TRAFFIC) == len(traffic) // 2
