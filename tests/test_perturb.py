"""mtc_keras.perturb: one header field redrawn from the training split, nothing else touched."""

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from mtc_keras import packets, perturb
from mtc_keras.packets import header_fields


def vectors(seed: int, n: int = 40) -> np.ndarray:
    """IPv4 TCP, IPv4 UDP and IPv6 TCP packets with varied header values."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        ttl, ident = int(rng.integers(30, 129)), int(rng.integers(0, 65536))
        ports = dict(sport=int(rng.integers(1, 65536)), dport=int(rng.integers(1, 65536)))
        tcp = TCP(seq=int(rng.integers(0, 2**32)), ack=int(rng.integers(0, 2**32)), flags="PA",
                  window=int(rng.integers(1, 65536)), **ports)
        if i % 3 == 0:
            frame = Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl, id=ident) / tcp / Raw(b"x" * 30)
        elif i % 3 == 1:
            frame = Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl, id=ident) / UDP(**ports) / Raw(b"y" * 20)
        else:
            frame = Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=ttl) / tcp / Raw(b"z" * 25)
        frames.append((1, bytes(frame)))
    return packets.process_frames(frames).packets


FIELDS = packets.HEADER_FIELDS + packets.IDENTIFIER_FIELDS


def test_each_perturbation_changes_only_its_fields_with_training_values():
    train, test = vectors(0), vectors(1)
    train_before, test_before = train.copy(), test.copy()
    pools = perturb.field_pools(train)
    for name, fields in perturb.PERTURBATIONS.items():
        changed = perturb.perturb(test, name, pools, seed=3)
        before, after = header_fields(test), header_fields(changed)
        for field in FIELDS:
            if field not in fields:
                assert np.array_equal(before[field], after[field]), (name, field)
        train_fields = header_fields(train)
        for field in fields:
            assert not np.array_equal(before[field], after[field]), (name, field)
            for version in (4, 6):  # drawn from the same IP version's training values
                rows = after["ip_version"] == version
                has = {"ttl": rows, "ip_id": rows & (version == 4)}.get(
                    field, rows & (after["protocol"] == 6 if field.startswith("tcp") else rows))
                values = train_fields[field][(train_fields["ip_version"] == version)]
                assert np.isin(after[field][has], values).all(), (name, field, version)
        # bytes outside the fields are the same: payloads, and the zeroed addresses and checksums
        differs = np.flatnonzero((changed != test).any(axis=0))
        assert differs.max() < 60, name
        assert not changed[:, 12:20][after["ip_version"] == 4].any()  # IPv4 addresses
        assert not changed[:, 26:28][(after["ip_version"] == 4) & (after["protocol"] == 17)].any()
    assert np.array_equal(train, train_before) and np.array_equal(test, test_before)


def test_perturbations_are_seeded():
    train, test = vectors(0), vectors(1)
    pools = perturb.field_pools(train)
    assert np.array_equal(perturb.perturb(test, "ttl", pools, seed=5),
                          perturb.perturb(test, "ttl", pools, seed=5))
    assert not np.array_equal(perturb.perturb(test, "ttl", pools, seed=5),
                              perturb.perturb(test, "ttl", pools, seed=6))
    with pytest.raises(ValueError, match="unknown perturbation 'mss'"):
        perturb.perturb(test, "mss", pools)


def test_masked_ports_stay_zero_and_pools_merge_across_batches():
    train, test = packets.mask_ports(vectors(0)), packets.mask_ports(vectors(1))
    pools = perturb.merge_pools([perturb.field_pools(train[:10]), perturb.field_pools(train[10:])])
    assert {k: v.tolist() for k, v in pools.items()} == {
        k: v.tolist() for k, v in perturb.field_pools(train).items()}
    changed = perturb.perturb(test, "ports", pools, seed=0)
    assert np.array_equal(changed, test)  # the training split's ports are all masked
    fields = header_fields(perturb.perturb(test, "ttl", pools, seed=0))
    assert not fields["src_port"].any() and not fields["dst_port"].any()


def test_reliance_is_the_drop_from_the_clean_figure():
    clean = {"app": {"macro_f1": 0.9, "accuracy": 0.95}}
    out = perturb.reliance(clean, {"ttl": {"app": {"macro_f1": 0.6, "accuracy": 0.7}}})
    assert out["app"]["ttl"] == {"macro_f1": 0.6, "accuracy": 0.7, "drop": pytest.approx(0.3)}
