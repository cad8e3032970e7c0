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
            frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl, id=ident) / tcp / Raw(b"x" * 30)
        elif i % 3 == 1:
            frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl, id=ident) / UDP(**ports) / Raw(b"y" * 20)
        else:
            frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=ttl) / tcp / Raw(b"z" * 25)
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


# ---------------------------------------------------------------- the forged test
def conversations(seed: int, flows: int = 6, per_flow: int = 6):
    """(vectors, flow ids, capture positions) of TCP and UDP conversations over IPv4 and IPv6,
    both directions, each TCP direction with its own sequence numbers and acknowledgements of
    the other's; every other flow's first packet is the server's (as when a handshake is dropped
    or a sample starts mid-flow); rows shuffled (the order array says where each row sat)."""
    rng = np.random.default_rng(seed)
    frames, ids = [], []
    for f in range(flows):
        client, server = int(rng.integers(1024, 65536)), (443, 80, 5228)[f % 3]
        ttl = {0: int(rng.integers(30, 129)), 1: int(rng.integers(30, 129))}
        ip_id = {0: int(rng.integers(0, 65536)), 1: int(rng.integers(0, 65536))}
        seq = {0: int(rng.integers(0, 2**32)), 1: int(rng.integers(0, 2**32))}
        window = {0: int(rng.integers(1, 65536)), 1: int(rng.integers(1, 65536))}
        v6, udp = f % 3 == 2, f % 4 == 3
        for i in range(per_flow):
            d = (i + f) % 2
            size = int(rng.integers(10, 200))
            ports = (dict(sport=client, dport=server) if d == 0
                     else dict(sport=server, dport=client))
            if udp:
                l4 = UDP(**ports)
            else:
                l4 = TCP(seq=seq[d], ack=seq[1 - d], flags="PA", window=window[d], **ports)
                seq[d] = (seq[d] + size) % 2**32
            if v6:
                ip = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=ttl[d], fl=7 + f)
            else:
                ip = IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl[d], id=ip_id[d])
                ip_id[d] = (ip_id[d] + 3) % 65536
            frames.append((1, bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4 / Raw(bytes(size)))))
            ids.append(f"cap|flow{f}")
    vectors = packets.process_frames(frames).packets
    shuffle = rng.permutation(len(vectors))
    return vectors[shuffle], np.array(ids, object)[shuffle], shuffle


def by_group(fields, flow, direction, name, rows):
    """{(flow, direction): the field's values in capture order} over ``rows``."""
    out = {}
    for r in rows:
        out.setdefault((flow[r], direction[r]), []).append(fields[name][r])
    return out


def test_forging_redraws_host_fields_per_flow_and_direction_and_keeps_the_rest():
    train, _, _ = conversations(0)
    test, ids, order = conversations(1)
    test_before = test.copy()
    pools = perturb.field_pools(train)
    forged = perturb.forge(test, pools, flow_ids=ids, order=order, seed=4)
    assert np.array_equal(test, test_before)  # a copy
    before, after = header_fields(test), header_fields(forged)
    for field in set(FIELDS) - {"ip_id", "ttl", "tcp_seq", "tcp_ack", "tcp_window",
                                "ipv6_flow_label", "src_port", "dst_port"}:
        assert np.array_equal(before[field], after[field]), field
    assert np.array_equal(test[:, 60:], forged[:, 60:])  # payloads
    for field in ("ip_id", "ttl", "tcp_seq", "tcp_window", "src_port"):
        assert not np.array_equal(before[field], after[field]), field
    flow, direction = perturb.flow_directions(test, ids, order)
    # the server is the port more flows use, whoever sent a flow's first packet
    assert set(np.where(direction == 1, before["src_port"], before["dst_port"])) <= {443, 80, 5228}
    assert (before["src_port"][direction == 0] > 1023).all()
    in_order = np.argsort(order)
    v4 = in_order[after["ip_version"][in_order] == 4]
    tcp = in_order[after["protocol"][in_order] == 6]
    # one TTL and one window per flow and direction, drawn from the training split
    train_fields = header_fields(train)
    for field, rows in (("ttl", in_order), ("tcp_window", tcp)):
        for values in by_group(after, flow, direction, field, rows).values():
            assert len(set(values)) == 1, field
        assert np.isin(after[field][rows], train_fields[field]).all(), field
    # the steps between IP IDs and between sequence numbers are kept, the starts are new
    for field, rows, top in (("ip_id", v4, 1 << 16), ("tcp_seq", tcp, 1 << 32)):
        new, old = by_group(after, flow, direction, field, rows), by_group(before, flow, direction, field, rows)
        for key in new:
            assert np.array_equal(np.diff(new[key]) % top, np.diff(old[key]) % top), field
            assert new[key][0] != old[key][0], field
    # acknowledgements follow the other direction's new sequence numbers
    shift = {k: (after["tcp_seq"][r] - before["tcp_seq"][r]) % (1 << 32)
             for r in tcp for k in [(flow[r], direction[r])]}
    for r in tcp:
        assert (after["tcp_ack"][r] - before["tcp_ack"][r]) % (1 << 32) == shift[(flow[r], 1 - direction[r])]
    # one new client port per flow, a training client's, on the client's side of both
    # directions; the server's stays
    training_clients = np.concatenate([pools[("client_port", 0)], pools[("client_port", 1)]])
    assert not np.isin(training_clients, (443, 80, 5228)).any()
    for f in np.unique(flow):
        rows = np.flatnonzero(flow == f)
        out, back = rows[direction[rows] == 0], rows[direction[rows] == 1]
        assert len(out) and len(back)
        client = set(after["src_port"][out]) | set(after["dst_port"][back])
        assert len(client) == 1 and client.pop() in training_clients
        assert np.array_equal(after["dst_port"][out], before["dst_port"][out])
        assert np.array_equal(after["src_port"][back], before["src_port"][back])
    # IPv6 flow labels: new, one per flow and direction
    v6 = in_order[after["ip_version"][in_order] == 6]
    assert not np.array_equal(after["ipv6_flow_label"][v6], before["ipv6_flow_label"][v6])
    for values in by_group(after, flow, direction, "ipv6_flow_label", v6).values():
        assert len(set(values)) == 1


def test_forging_ports_too_redraws_the_server_port_per_flow_from_training_servers():
    train, _, _ = conversations(0)
    test, ids, order = conversations(2)
    pools = perturb.field_pools(train)
    forged = perturb.forge(test, pools, flow_ids=ids, order=order, seed=0, ports_too=True)
    before, after = header_fields(test), header_fields(forged)
    flow, direction = perturb.flow_directions(test, ids, order)
    servers = np.where(direction == 0, after["dst_port"], after["src_port"])
    training_servers = np.concatenate([pools[("server_port", 0)], pools[("server_port", 1)]])
    assert np.isin(servers, training_servers).all()
    for f in np.unique(flow):
        assert len(set(servers[flow == f])) == 1
    assert not np.array_equal(np.where(direction == 0, before["dst_port"], before["src_port"]), servers)
    # the plain forged test keeps the server's port
    plain = header_fields(perturb.forge(test, pools, flow_ids=ids, order=order, seed=0))
    assert np.array_equal(np.where(direction == 0, plain["dst_port"], plain["src_port"]),
                          np.where(direction == 0, before["dst_port"], before["src_port"]))


def test_forging_is_seeded_and_keeps_masked_fields_zero():
    train, _, _ = conversations(0)
    test, ids, order = conversations(1)
    pools = perturb.field_pools(train)
    one = perturb.forge(test, pools, flow_ids=ids, order=order, seed=1)
    assert np.array_equal(one, perturb.forge(test, pools, flow_ids=ids, order=order, seed=1))
    assert not np.array_equal(one, perturb.forge(test, pools, flow_ids=ids, order=order, seed=2))
    masked_pools = perturb.field_pools(packets.mask_ports(train))
    forged = header_fields(perturb.forge(packets.mask_ports(test), masked_pools, flow_ids=ids,
                                         order=order, ports_too=True))
    assert not forged["src_port"].any() and not forged["dst_port"].any()


def test_mask_arm_zeroes_exactly_the_host_fields():
    test, _, _ = conversations(1)
    masked = perturb.mask_host_fields(test)
    before, after = header_fields(test), header_fields(masked)
    for field in FIELDS:
        if field in perturb.HOST_FIELDS:
            assert not after[field].any(), field
        else:
            assert np.array_equal(before[field], after[field]), field
    assert np.array_equal(perturb.model_inputs(test, "mask"), masked)
    assert perturb.model_inputs(test, "redraw") is test  # evaluation data are never redrawn
    with pytest.raises(ValueError, match="identifiers must be one of"):
        perturb.model_inputs(test, "drop")


def test_redraw_arm_draws_afresh_at_every_call():
    train, ids, order = conversations(0)
    forger = perturb.training_inputs("redraw", perturb.field_pools(train), seed=0)
    first, second = forger(train, ids, order), forger(train, ids, order)
    assert not np.array_equal(first, second)
    again = perturb.training_inputs("redraw", perturb.field_pools(train), seed=0)
    assert np.array_equal(again(train, ids, order), first)  # seeded once
