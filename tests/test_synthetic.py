"""The synthetic demo captures (mtc_keras.synthetic): deterministic bytes, every class covered,
real protocols on the wire, VPN captures as the dataset holds them (raw IP, the tunnel's inner
packets in the clear), no fingerprint."""

import ast
import collections
import hashlib
import ipaddress
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
from scapy.all import IP, TCP, UDP, raw, rdpcap

from mtc_keras import capture, labels, packets, synthetic
from mtc_keras.capture_writer import LINKTYPE_ETHERNET, LINKTYPE_RAW
from tests.conftest import REPO_ROOT

SMALL = 16  # packets_per_file for tests that do not need the default size
FRAMES = 80  # frames of one capture, for the tests that look at one
VPN_NAMES = [n for n in synthetic.DEMO_CAPTURES if labels.iscx_labels(n).vpn]
TUNNEL_NETS = (ipaddress.ip_network("10.8.0.0/24"), ipaddress.ip_network("10.8.8.0/24"))


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, synthetic.write_demo_captures(root)


def test_same_seed_same_bytes_from_cli_and_function(tmp_path):
    cli = subprocess.run([sys.executable, "-m", "mtc_keras.synthetic", str(tmp_path / "cli"),
                          "--packets_per_file", str(4 * SMALL), "--flows_per_capture", "5", "--seed", "7"],
                         capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert "wrote" in cli.stdout
    synthetic.write_demo_captures(tmp_path / "function", 4 * SMALL, seed=7, flows_per_capture=5)
    synthetic.write_demo_captures(tmp_path / "other_seed", 4 * SMALL, seed=8, flows_per_capture=5)
    synthetic.write_demo_captures(tmp_path / "one_round", 4 * SMALL, seed=7, flows_per_capture=1)
    first, second = _digests(tmp_path / "cli"), _digests(tmp_path / "function")
    assert len(first) == len(synthetic.DEMO_CAPTURES)
    assert first == second
    other = _digests(tmp_path / "other_seed")
    assert other.keys() == first.keys()
    assert all(other[k] != first[k] for k in first)
    one_round = _digests(tmp_path / "one_round")  # the flag reached the generator
    assert sum(one_round[k] != first[k] for k in first) > len(first) // 2


def test_every_app_and_traffic_class_with_and_without_vpn(default_demo):
    _, files = default_demo
    found = [labels.iscx_labels(f.name) for f in files]
    assert None not in found  # real ISCX file names only
    assert {lab.app for lab in found} == set(range(len(labels.ISCX_APPS)))
    assert {lab.traffic for lab in found} - {labels.MISSING} == set(range(len(labels.ISCX_TRAFFIC)))
    assert {lab.vpn for lab in found} == {True, False}
    names = {f.name.lower() for f in files}
    assert "torrent01.pcap" in names and any(labels.iscx_labels(n).traffic == labels.MISSING for n in names)


def test_every_label_of_a_demo_capture_has_its_recipe_and_every_recipe_is_used():
    """The recipe table is keyed by the label spaces' own names: a renamed app or traffic class
    (labels.py) or a recipe nothing uses fails here."""
    from mtc_keras.synthetic import recipes

    keys = {recipes.recipe_key(labels.iscx_labels(n)) for n in synthetic.DEMO_CAPTURES}
    assert keys == set(synthetic.RECIPES)
    assert {app for app, _ in keys} == set(labels.ISCX_APPS)
    kinds = {name.removeprefix("VPN: ") for name in labels.ISCX_TRAFFIC} | {""}
    assert {kind for _, kind in keys} <= kinds


def test_default_size_is_a_few_mb_and_many_short_flows_per_app(default_demo):
    """About 85 flows per app (more for the apps whose sessions are several flows), each as
    short as its protocol's opening allows: 4 to 17 kept packets, 250 to 1,500 per app."""
    root, files = default_demo
    total = sum(f.stat().st_size for f in files)
    assert 2e6 < total < 8e6
    kept, flows = collections.Counter(), collections.Counter()
    for f in files:
        batch = packets.process_capture(f)
        app = labels.ISCX_APPS[labels.iscx_labels(f.name).app]
        kept[app] += len(batch)
        flows[app] += len(set(batch.flow_ids))
    assert set(kept) == set(labels.ISCX_APPS)
    assert all(200 <= n <= 1600 for n in kept.values()), kept
    assert all(80 <= flows[app] and kept[app] / flows[app] <= 17 for app in kept), (kept, flows)


def test_the_demo_split_tests_on_over_300_flows(default_demo, tmp_path):
    """experiments.demo's dataset (its build_dataset: the default captures, then the
    flow_split build): enough test flows for the per-flow figures, from every app."""
    import tensorflow_datasets as tfds

    from mtc_keras import inputs, registry

    root, _ = default_demo
    inputs.configure_tensorflow()
    built = registry.prepare("iscx", "flow_split", str(tmp_path / "tfds"), manual_dir=str(root))
    test = tfds.as_numpy(built.as_dataset(split="test", batch_size=-1))
    flows = collections.defaultdict(set)
    for flow, app in zip(test["flow_id"].tolist(), test["app"].tolist()):
        flows[app].add(flow)
    assert sum(len(f) for f in flows.values()) >= 300
    assert len(flows) == len(labels.ISCX_APPS) and min(len(f) for f in flows.values()) >= 10, flows


@pytest.mark.parametrize("name, port, one_round, shape, opening", [
    ("vpn_aim_chat1a.pcap", 5190, 3, lambda up, down: (up[1], down[1], down[6:10]), (1, 1, b"\0\0\0\1")),
    ("vpn_netflix_A.pcap", 443, 2, lambda up, down: (up[0], up[5], down[0], down[5]), (22, 1, 22, 2)),
])
@pytest.mark.parametrize("flows", [1, 5, 12])
def test_flows_per_capture_sets_the_sessions_each_from_its_protocols_start(tmp_path, name, port, one_round,
                                                                           shape, opening, flows):
    """The sessions are the recipe's, round after round: a capture holds as many flows as
    asked (at least one round of its recipe), each opening as its protocol does (FLAP version and
    sign-on; TLS ClientHello and ServerHello)."""
    (path,) = synthetic.write_demo_captures(tmp_path, 200, captures=[name], flows_per_capture=flows)
    assert len(set(packets.process_capture(path).flow_ids)) == max(one_round, flows)
    streams = _streams(name, port, 200, flows)
    assert len(streams) == max(one_round, flows)
    assert {shape(up, down) for up, down in streams} == {opening}


def test_small_captures_are_one_round_whatever_the_flows_asked():
    """At most one session per recipes.MIN_SESSION_FRAMES of a capture's frames: the small
    captures the builder's dummy data and the quick tests use are what they were."""
    for name in synthetic.DEMO_CAPTURES:
        assert synthetic.capture_bytes(name, SMALL, flows_per_capture=synthetic.DEFAULT_FLOWS_PER_CAPTURE) \
            == synthetic.capture_bytes(name, SMALL, flows_per_capture=1), name


def test_files_are_pcap_or_pcapng_by_magic_in_the_official_layout(default_demo):
    root, files = default_demo
    formats = {f.name: capture.sniff_format(f) for f in files}
    assert formats["vpn_hangouts_audio2.pcap"] == "pcapng"  # as in the real download
    assert {"pcap", "pcapng"} == set(formats.values())
    for name, fmt in formats.items():
        named_ng = name.endswith(".pcapng") or name in synthetic.PCAPNG_NAMED_PCAP
        assert fmt == ("pcapng" if named_ng else "pcap"), name
    top = {f.relative_to(root).parts[0] for f in files}
    assert top == set(synthetic.ARCHIVES)
    assert any(len(f.relative_to(root).parts) > 2 for f in files)  # a deeper folder too


def test_headers_are_valid_for_an_independent_reader(tmp_path):
    """scapy reads every file, raw IP ones too, and the IP and TCP/UDP checksums the generator
    wrote are right."""
    files = synthetic.write_demo_captures(tmp_path, SMALL)
    checked = collections.Counter()
    for f in files:
        for frame in rdpcap(str(f)):
            if IP not in frame:
                continue
            ip = frame[IP]
            layer = ip[TCP] if TCP in ip else ip[UDP]
            expected = (ip.chksum, layer.chksum)
            ip.chksum, layer.chksum = None, None
            rebuilt = IP(raw(ip))
            got = (rebuilt.chksum, (rebuilt[TCP] if TCP in rebuilt else rebuilt[UDP]).chksum)
            assert got == expected, f.name
            checked[labels.iscx_labels(f.name).vpn] += 1
    assert checked[False] > 1000 and checked[True] > 500


def test_zip_archives_hold_the_same_captures(tmp_path):
    folders = synthetic.write_demo_captures(tmp_path / "folders", SMALL)
    zips = synthetic.write_demo_captures(tmp_path / "zips", SMALL, zip_archives=synthetic.ARCHIVES)
    assert sorted(z.name for z in zips) == sorted(f"{a}.zip" for a in synthetic.ARCHIVES)
    members = {}
    for z in zips:
        with zipfile.ZipFile(z) as archive:
            members.update({info.filename: archive.read(info) for info in archive.infolist()})
    assert members == {str(f.relative_to(tmp_path / "folders")): f.read_bytes() for f in folders}


def test_preprocessing_drops_what_it_should_and_no_tunnel_framing_is_left(default_demo):
    _, files = default_demo
    totals = collections.Counter()
    for f in files:
        batch = packets.process_capture(f)
        totals.update(batch.counts)
        fields = packets.header_fields(batch.packets)
        ports = set(fields["src_port"].tolist()) | set(fields["dst_port"].tolist())
        assert 53 not in ports
        assert 1194 not in ports, f.name  # no OpenVPN outer framing anywhere
    assert totals["dropped_empty_tcp"] > 0 and totals["dropped_dns"] > 0 and totals["dropped_not_ip"] > 0
    assert totals["read"] == totals["kept"] + sum(totals[f"dropped_{r}"] for r in packets.DROP_REASONS)


def test_vectors_are_not_copies(default_demo):
    """No vector repeats except the one background SSDP packet shared across captures."""
    _, files = default_demo
    vectors = np.concatenate([packets.process_capture(f).packets for f in files])
    assert len(vectors) - len(np.unique(vectors, axis=0)) < len(files) // 2


def test_mtc_preprocess_reads_raw_ip_and_ethernet_vpn_captures(default_demo, tmp_path):
    """The command users run, on a raw-IP VPN capture and on the Ethernet pcapng one."""
    _, files = default_demo
    for name in ("vpn_netflix_A.pcap", "vpn_hangouts_audio2.pcap"):
        path = next(f for f in files if f.name == name)
        out = tmp_path / f"{name}.npz"
        run = subprocess.run([sys.executable, "-m", "mtc_keras.preprocess", str(path), "--output", str(out)],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        want = packets.process_capture(path)
        with np.load(out) as npz:
            assert np.array_equal(npz["packets"], want.packets) and len(want) > 30
            assert npz["flow_ids"].tolist() == list(want.flow_ids)
            assert int(npz["dropped_not_ip"]) == 0 and int(npz["dropped_dns"]) > 0
        assert all(v[0] == 0x45 for v in want.packets)  # the vector starts at the IP header either way
        assert all(" 10.8." in flow for flow in want.flow_ids)


def test_the_core_package_does_not_import_the_generator():
    root = REPO_ROOT / "mtc_keras"
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "") + "." + alias.name for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert not any("synthetic" in name for name in imported), path.name
    assert not (root / "demo_data.py").exists()


# ---------------------------------------------------------------- the protocols on the wire

def _ip_packets(name, frames=FRAMES, flows=1):
    """The IPv4 packets of one demo capture, in time order (Ethernet frames' cut at the IP length)."""
    for _, frame, linktype in synthetic.capture_frames(name, frames, synthetic.DEFAULT_SEED, flows):
        if linktype == LINKTYPE_ETHERNET:
            if frame[12:14] != b"\x08\x00":
                continue
            frame = frame[14:]
        else:
            assert linktype == LINKTYPE_RAW and frame[0] == 0x45
        yield frame[:struct.unpack("!H", frame[2:4])[0]]


def _flows(name, frames=FRAMES, sessions=1):
    """{(proto, src, sport, dst, dport): [payload, ...]} of one demo capture, in time order
    (TCP segments with data only)."""
    flows = collections.defaultdict(list)
    for ip in _ip_packets(name, frames, sessions):
        proto = ip[9]
        l4 = ip[(ip[0] & 15) * 4:]
        sport, dport = struct.unpack("!HH", l4[:4])
        payload = l4[(l4[12] >> 4) * 4:] if proto == 6 else l4[8:]
        if proto == 6 and not payload:  # handshake, pure ACKs, FINs
            continue
        flows[(proto, ip[12:16], sport, ip[16:20], dport)].append(payload)
    return flows


def _streams(name, port, frames=FRAMES, sessions=1):
    """The TCP byte streams to and from `port` (client->server, server->client) per connection."""
    flows = _flows(name, frames, sessions)
    out = []
    for (proto, src, sport, dst, dport), parts in flows.items():
        if proto == 6 and dport == port:
            back = flows.get((6, dst, dport, src, sport), [])
            out.append((b"".join(parts), b"".join(back)))
    assert out, (name, port)
    return out


def _tls_records(stream):
    records, pos = [], 0
    while pos < len(stream):
        content_type, version, length = struct.unpack("!BHH", stream[pos:pos + 5])
        assert content_type in (20, 21, 22, 23) and version in (0x0301, 0x0303), stream[pos:pos + 5]
        records.append((content_type, stream[pos + 5:pos + 5 + length]))
        pos += 5 + length
    assert pos == len(stream)
    return records


def _client_hello_shape(hello):
    """(version, cipher suites, extension types) of a ClientHello handshake message."""
    assert hello[0] == 1 and struct.unpack("!I", b"\0" + hello[1:4])[0] == len(hello) - 4
    pos = 4 + 2 + 32
    pos += 1 + hello[pos]  # session id
    n = struct.unpack("!H", hello[pos:pos + 2])[0]
    suites = hello[pos + 2:pos + 2 + n].hex()
    pos += 2 + n
    pos += 1 + hello[pos]  # compression methods
    end = pos + 2 + struct.unpack("!H", hello[pos:pos + 2])[0]
    assert end == len(hello)
    pos, extensions = pos + 2, []
    while pos < end:
        ext_type, length = struct.unpack("!HH", hello[pos:pos + 4])
        extensions.append(ext_type)
        pos += 4 + length
    assert pos == end
    return hello[4:6].hex(), suites, tuple(extensions)


def _tls_shape(name, port):
    """{(ClientHello shape, the suite the server chose, AES-GCM's explicit nonce counts up)}
    over the capture's TLS connections to `port`; every stream must parse into records."""
    shapes = set()
    for up, down in _streams(name, port):
        client, server = _tls_records(up), _tls_records(down)
        assert client[0][0] == 22 and server[0][0] == 22 and server[0][1][0] == 2  # ClientHello, ServerHello
        server_hello = server[0][1]
        chosen = server_hello[4 + 2 + 32 + 1 + server_hello[4 + 2 + 32]:][:2].hex()
        ccs = next(i for i, (kind, _) in enumerate(server) if kind == 20)
        sealed = [body for _, body in server[ccs + 1:]]
        counts_up = [struct.unpack("!Q", body[:8])[0] for body in sealed] == list(range(len(sealed)))
        shapes.add((_client_hello_shape(client[0][1]), chosen, counts_up))
    return shapes


def _oscar_shape(name):
    """FLAP frames only, their sequence numbers counting up; (first client channel, first
    server frame) per connection."""
    shapes = set()
    for up, down in _streams(name, 5190):
        for stream in (up, down):
            pos, seqs, channels = 0, [], set()
            while pos < len(stream):
                start, channel, seq, length = struct.unpack("!BBHH", stream[pos:pos + 6])
                assert start == 0x2A and channel in (1, 2, 4, 5)
                seqs.append(seq)
                channels.add(channel)
                pos += 6 + length
            assert pos == len(stream)
            assert np.all(np.diff(seqs) % 65536 == 1)  # FLAP sequence numbers count up
            assert 2 in channels
        shapes.add((up[1], down[1], down[6:10]))
    return shapes


def _ssh_shape(name):
    shapes = set()
    for up, down in _streams(name, 22):
        assert up.startswith(b"SSH-2.0-") and down.startswith(b"SSH-2.0-")
        kexinit = up[up.index(b"\r\n") + 2:]
        assert kexinit[5] == 20  # SSH_MSG_KEXINIT
        shapes.add((up[:up.index(b"\r\n")], down[:down.index(b"\r\n")]))
    return shapes


def _stun_srtp_shape(name):
    """STUN messages with a valid FINGERPRINT, then SRTP (Opus, with header extensions)."""
    stun, srtp = 0, 0
    for (proto, *_), parts in _flows(name).items():
        for payload in parts:
            if proto == 17 and payload[4:8] == b"\x21\x12\xa4\x42":  # STUN magic cookie
                assert struct.unpack("!H", payload[2:4])[0] == len(payload) - 20
                crc = struct.unpack("!I", payload[-4:])[0]
                assert payload[-8:-6] == b"\x80\x28" and crc == zlib.crc32(payload[:-8]) ^ 0x5354554E
                stun += 1
            elif proto == 17 and payload[0] >> 6 == 2 and payload[1] & 0x7F == 111:  # SRTP, Opus
                assert payload[0] & 0x10 and payload[12:14] == b"\xbe\xde"
                srtp += 1
    return stun >= 2, srtp > 10


def _sip_rtp_shape(name):
    flows = _flows(name)
    rtp = [p for (proto, *_), parts in flows.items() for p in parts if proto == 17 and p[0] == 0x80 and p[1] in (0, 8)]
    sip = [p for (proto, _, sport, _, dport), parts in flows.items() for p in parts
           if proto == 17 and 5060 in (sport, dport)]
    assert sip[0].startswith(b"INVITE sip:") and b"m=audio" in sip[0]
    return {len(p) for p in rtp}, sip[0].split(b" ")[0]


def _skype_udp_shape(name):
    functions = collections.Counter(p[2] for (proto, *_), parts in _flows(name).items() if proto == 17 for p in parts)
    assert set(functions) <= {0x02, 0x07, 0x0D}
    return functions.most_common(1)[0][0]


def _bittorrent_shape(name):
    flows = _flows(name)
    handshakes = [p[0] for (proto, *_), p in flows.items() if proto == 6 and p and p[0][:20] == b"\x13BitTorrent protocol"]
    dht = [p[0] for (proto, *_), p in flows.items() if proto == 17 and p[0].startswith(b"d1:")]
    assert dht and all(p.endswith(b"e") for p in dht)
    return len(handshakes) >= 2, {p[:12] for p in dht}


def _spotify_shape(name):
    shapes = set()
    for up, down in _streams(name, 4070):
        assert struct.unpack("!I", up[2:6])[0] > 6
        shapes.add(up[:2])
    return shapes


def _quic_shape(name):
    flows = [(key, parts) for key, parts in _flows(name).items() if key[0] == 17 and key[4] == 443]
    assert flows
    shapes = set()
    for _, parts in flows:
        first = parts[0]
        assert {p[1:9] for p in parts} == {first[1:9]}  # one connection id
        shapes.add((first[0] & 0x09, first[9:13], len(first)))
    return shapes


@pytest.mark.parametrize("name, port, server_name, explicit_nonce", [
    ("netflix1.pcap", 443, b"nflxvideo.net", True), ("hangouts_chat_4a.pcap", 443, b"google.com", False),
    ("gmailchat1.pcapng", 5228, b"mtalk.google.com", False), ("email1a.pcap", 993, b"imap.gmail.com", True),
    ("vpn_netflix_A.pcap", 443, b"nflxvideo.net", True), ("vpn_hangouts_chat1a.pcap", 443, b"google.com", False)])
def test_tls_streams_parse_into_records_with_a_client_hello_and_aead_records(name, port, server_name,
                                                                             explicit_nonce):
    for up, down in _streams(name, port):
        client, server = _tls_records(up), _tls_records(down)
        hello = client[0][1]
        assert client[0][0] == 22 and hello[0] == 1  # handshake: ClientHello
        assert server_name in hello  # SNI, in clear
        assert server[0][0] == 22 and server[0][1][0] == 2  # ServerHello
        sealed = [body for kind, body in server if kind == 23]
        assert sealed
        nonces = [struct.unpack("!Q", body[:8])[0] for body in sealed]
        if explicit_nonce:  # AES-GCM: the explicit nonce is the record sequence number
            assert nonces == list(range(1, len(sealed) + 1))
        else:  # ChaCha20-Poly1305 has none: the first bytes are ciphertext
            assert nonces != list(range(1, len(sealed) + 1))


def test_tor_cells_ride_in_543_byte_records():
    for up, down in _streams("torGoogle.pcap", 9001) + _streams("torFacebook.pcap", 9001):
        sizes = {len(body) for kind, body in _tls_records(down) if kind == 23}
        assert sizes == {8 + 514 + 16}


@pytest.mark.parametrize("vpn, plain, shape", [
    ("vpn_netflix_A.pcap", "netflix1.pcap", lambda n: _tls_shape(n, 443)),
    ("vpn_vimeo_A.pcap", "vimeo1.pcap", lambda n: _tls_shape(n, 443)),
    ("vpn_youtube_A.pcap", "youtube1.pcap", lambda n: _tls_shape(n, 443)),
    ("vpn_youtube_A.pcap", "youtube1.pcap", _quic_shape),
    ("vpn_hangouts_chat1a.pcap", "hangouts_chat_4a.pcap", lambda n: _tls_shape(n, 443)),
    ("vpn_facebook_chat1a.pcap", "facebook_chat_4a.pcap", lambda n: _tls_shape(n, 443)),
    ("vpn_skype_chat1a.pcap", "skype_chat1a.pcap", lambda n: _tls_shape(n, 443)),
    ("vpn_email2a.pcap", "email1a.pcap", lambda n: _tls_shape(n, 993)),
    ("vpn_email2b.pcap", "email2a.pcap", lambda n: _tls_shape(n, 995)),
    ("vpn_aim_chat1a.pcap", "aim_chat_3a.pcap", _oscar_shape),
    ("vpn_icq_chat1a.pcap", "icq_chat_3a.pcap", _oscar_shape),
    ("vpn_sftp_A.pcap", "sftp_down_3a.pcap", _ssh_shape),
    ("vpn_hangouts_audio2.pcap", "hangouts_audio1a.pcap", _stun_srtp_shape),
    ("vpn_facebook_audio2.pcap", "facebook_audio1a.pcap", _stun_srtp_shape),
    ("vpn_voipbuster1a.pcap", "voipbuster1b.pcap", _sip_rtp_shape),
    ("vpn_skype_audio1.pcap", "skype_audio1a.pcap", _skype_udp_shape),
    ("vpn_bittorrent.pcap", "torrent01.pcap", _bittorrent_shape),
    ("vpn_spotify_A.pcap", "spotify1.pcap", _spotify_shape),
])
def test_a_vpn_capture_frames_its_application_as_the_non_vpn_capture_does(vpn, plain, shape):
    """The tunnel's inner packets are the application's own: the same framing parses them and
    gives the same shape (same ClientHello, chosen suite and record layer; FLAP; SSH banners;
    STUN + SRTP; SIP + G.711 RTP; ...) as in the non-VPN capture of the same app."""
    got, want = shape(vpn), shape(plain)
    assert got == want and got not in (set(), (False, False))


def test_vpn_captures_are_raw_ip_at_a_tunnel_address(default_demo):
    """Link type 101 in the file's own header (but the two Ethernet VoIP captures), the client
    at 10.8.0.x or 10.8.8.x, TTL 64 from it and the real files' TTLs from the servers, one
    tunnel MSS per capture; the non-VPN captures keep their Ethernet LAN client."""
    _, files = default_demo
    mss_seen = set()
    for f in files:
        data, vpn = f.read_bytes(), labels.iscx_labels(f.name).vpn
        if capture.sniff_format(f) == "pcap":
            linktype = struct.unpack("<I", data[20:24])[0]
        else:  # the first interface description block, after the section header block
            shb_len = struct.unpack("<I", data[4:8])[0]
            assert struct.unpack("<I", data[shb_len:shb_len + 4])[0] == 1
            linktype = struct.unpack("<H", data[shb_len + 8:shb_len + 10])[0]
        expected = LINKTYPE_ETHERNET if not vpn or f.name in synthetic.ETHERNET_VPN_CAPTURES else LINKTYPE_RAW
        assert linktype == expected == synthetic.linktype_of(f.name), f.name
        with capture.open_capture(f) as cap:
            assert {lt for lt, _ in cap} == {expected}

        ips = [ip for ip in _ip_packets(f.name) if ip[16] < 224]  # unicast (not the SSDP multicast)
        hosts = set.intersection(*({ip[12:16], ip[16:20]} for ip in ips))
        assert len(hosts) == 1, f.name
        client = hosts.pop()
        from_client = [ip for ip in ips if ip[12:16] == client]
        to_client = [ip for ip in ips if ip[16:20] == client]
        syn_mss = {struct.unpack("!H", ip[42:44])[0] for ip in from_client
                   if ip[9] == 6 and ip[33] & 0x02 and ip[40] == 2}
        assert len(syn_mss) <= 1, f.name  # (none in the captures that are UDP only)
        if vpn:
            assert any(ipaddress.ip_address(client) in net for net in TUNNEL_NETS), f.name
            assert {ip[8] for ip in from_client} == {64}
            assert {ip[8] for ip in to_client} <= {64, 63, 59, 54, 49, 47}  # 64: the tunnel's resolver
            assert syn_mss <= {1320, 1350, 1460}
            mss_seen |= syn_mss
            for ip in from_client + to_client:  # no segment larger than the tunnel's MSS
                if ip[9] == 6:
                    assert len(ip) - 20 - (ip[32] >> 4) * 4 <= min(syn_mss)
        else:
            assert ipaddress.ip_address(client) in ipaddress.ip_network("131.202.240.0/24")
            assert {ip[8] for ip in from_client} == {128} and syn_mss <= {1460}
    assert len(mss_seen) > 1  # chosen per capture


def test_ciphertext_carries_no_per_class_byte_pattern():
    """What is encrypted is uniform random bytes: the byte histogram of every app's TLS
    application-data bytes, in a VPN capture or not, is as flat as uniform sampling allows."""
    for name in ("vpn_netflix_A.pcap", "vpn_vimeo_A.pcap", "vpn_youtube_A.pcap",
                 "netflix1.pcap", "vimeo1.pcap", "youtube1.pcap"):
        data = bytearray()
        for up, down in _streams(name, 443, 400):  # TLS bulk, AES-GCM or ChaCha20
            data += b"".join(body[8:] for kind, body in _tls_records(down) if kind == 23)
        counts = np.bincount(np.frombuffer(bytes(data), np.uint8), minlength=256)
        expected = counts.sum() / 256
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert counts.sum() > 20_000, name
        assert chi2 < 350, (name, chi2)  # 255 degrees of freedom: p > 1e-4 for uniform bytes
