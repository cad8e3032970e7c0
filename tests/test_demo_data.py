"""The demo captures: deterministic bytes, every class covered, real protocols on the wire, no fingerprint."""

import collections
import hashlib
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
from scapy.all import IP, TCP, UDP, raw, rdpcap

from mtc_keras import capture, demo_data, labels, packets

SMALL = 16  # packets_per_file for tests that do not need the default size


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def default_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, demo_data.write_demo_captures(root)


def test_same_seed_same_bytes_from_cli_and_function(tmp_path):
    cli = subprocess.run([sys.executable, "-m", "mtc_keras.demo_data", str(tmp_path / "cli"),
                          "--packets_per_file", str(SMALL), "--seed", "7"],
                         capture_output=True, text=True, check=True)
    assert "wrote" in cli.stdout
    demo_data.write_demo_captures(tmp_path / "function", SMALL, seed=7)
    demo_data.write_demo_captures(tmp_path / "other_seed", SMALL, seed=8)
    first, second = _digests(tmp_path / "cli"), _digests(tmp_path / "function")
    assert len(first) == len(demo_data.DEMO_CAPTURES)
    assert first == second
    other = _digests(tmp_path / "other_seed")
    assert other.keys() == first.keys()
    assert all(other[k] != first[k] for k in first)


def test_every_app_and_traffic_class_with_and_without_vpn(default_demo):
    _, files = default_demo
    found = [labels.iscx_labels(f.name) for f in files]
    assert None not in found  # real ISCX file names only
    assert {lab.app for lab in found} == set(range(len(labels.ISCX_APPS)))
    assert {lab.traffic for lab in found} - {labels.MISSING} == set(range(len(labels.ISCX_TRAFFIC)))
    assert {lab.vpn for lab in found} == {True, False}
    names = {f.name.lower() for f in files}
    assert "torrent01.pcap" in names and any(labels.iscx_labels(n).traffic == labels.MISSING for n in names)


def test_default_size_is_a_few_mb_and_about_200_packets_per_app(default_demo):
    root, files = default_demo
    total = sum(f.stat().st_size for f in files)
    assert 1e6 < total < 5e6
    kept = collections.Counter()
    for f in files:
        kept[labels.ISCX_APPS[labels.iscx_labels(f.name).app]] += len(packets.process_capture(f))
    assert set(kept) == set(labels.ISCX_APPS)
    assert all(100 <= n <= 350 for n in kept.values()), kept


def test_files_are_pcap_or_pcapng_by_magic_in_the_official_layout(default_demo):
    root, files = default_demo
    formats = {f.name: capture.sniff_format(f) for f in files}
    assert formats["vpn_hangouts_audio2.pcap"] == "pcapng"  # as in the real download
    assert {"pcap", "pcapng"} == set(formats.values())
    for name, fmt in formats.items():
        named_ng = name.endswith(".pcapng") or name in demo_data.PCAPNG_NAMED_PCAP
        assert fmt == ("pcapng" if named_ng else "pcap"), name
    top = {f.relative_to(root).parts[0] for f in files}
    assert top == set(demo_data.ARCHIVES)
    assert any(len(f.relative_to(root).parts) > 2 for f in files)  # a deeper folder too


def test_headers_are_valid_for_an_independent_reader(tmp_path):
    """scapy reads every file, and the IP and TCP/UDP checksums the generator wrote are right."""
    files = demo_data.write_demo_captures(tmp_path, SMALL)
    checked = 0
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
            checked += 1
    assert checked > 1000


def test_zip_archives_hold_the_same_captures(tmp_path):
    folders = demo_data.write_demo_captures(tmp_path / "folders", SMALL)
    zips = demo_data.write_demo_captures(tmp_path / "zips", SMALL, zip_archives=demo_data.ARCHIVES)
    assert sorted(z.name for z in zips) == sorted(f"{a}.zip" for a in demo_data.ARCHIVES)
    members = {}
    for z in zips:
        with zipfile.ZipFile(z) as archive:
            members.update({info.filename: archive.read(info) for info in archive.infolist()})
    assert members == {str(f.relative_to(tmp_path / "folders")): f.read_bytes() for f in folders}


def test_preprocessing_drops_what_it_should_and_vpn_is_tunnelled(default_demo):
    _, files = default_demo
    totals = collections.Counter()
    for f in files:
        batch = packets.process_capture(f)
        totals.update(batch.counts)
        fields = packets.header_fields(batch.packets)
        ports = set(fields["src_port"].tolist()) | set(fields["dst_port"].tolist())
        if labels.iscx_labels(f.name).vpn:
            # OpenVPN over UDP 1194, plus the background SSDP packet some captures hold.
            tunnel = (fields["protocol"] == 17) & ((fields["src_port"] == 1194) | (fields["dst_port"] == 1194))
            assert np.count_nonzero(~tunnel) <= 1, f.name
        assert 53 not in ports
    assert totals["dropped_empty_tcp"] > 0 and totals["dropped_dns"] > 0 and totals["dropped_not_ip"] > 0
    assert totals["read"] == totals["kept"] + sum(totals[f"dropped_{r}"] for r in packets.DROP_REASONS)


def test_vectors_are_not_copies(default_demo):
    """No vector repeats except the one background SSDP packet shared across captures."""
    _, files = default_demo
    vectors = np.concatenate([packets.process_capture(f).packets for f in files])
    assert len(vectors) - len(np.unique(vectors, axis=0)) < len(files) // 2


# ---------------------------------------------------------------- the protocols on the wire

def _flows(name, packets_per_file=demo_data.DEFAULT_PACKETS_PER_FILE):
    """{(proto, src, sport, dst, dport): [payload, ...]} of one demo capture, in time order
    (TCP segments with data only)."""
    flows = collections.defaultdict(list)
    for _, frame in demo_data.capture_frames(name, packets_per_file, demo_data.DEFAULT_SEED):
        if frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        total, proto = struct.unpack("!H", ip[2:4])[0], ip[9]
        ip = ip[:total]
        l4 = ip[(ip[0] & 15) * 4:]
        sport, dport = struct.unpack("!HH", l4[:4])
        payload = l4[(l4[12] >> 4) * 4:] if proto == 6 else l4[8:]
        if proto == 6 and not payload:  # handshake, pure ACKs, FINs
            continue
        flows[(proto, ip[12:16], sport, ip[16:20], dport)].append(payload)
    return flows


def _streams(name, port, packets_per_file=demo_data.DEFAULT_PACKETS_PER_FILE):
    """The TCP byte streams to and from `port` (client->server, server->client) per connection."""
    flows = _flows(name, packets_per_file)
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


@pytest.mark.parametrize("name, port, server_name, explicit_nonce", [
    ("netflix1.pcap", 443, b"nflxvideo.net", True), ("hangouts_chat_4a.pcap", 443, b"google.com", False),
    ("gmailchat1.pcapng", 5228, b"mtalk.google.com", False), ("email1a.pcap", 993, b"imap.gmail.com", True)])
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


def test_oscar_streams_are_flap_frames():
    for name, digits in (("aim_chat_3a.pcap", False), ("icq_chat_3a.pcap", True)):
        for stream in _streams(name, 5190)[0]:
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


def test_ssh_bittorrent_spotify_openings():
    for up, down in _streams("scp1.pcap", 22) + _streams("sftpUp1.pcap", 22):
        assert up.startswith(b"SSH-2.0-") and down.startswith(b"SSH-2.0-")
        kexinit = up[up.index(b"\r\n") + 2:]
        assert kexinit[5] == 20  # SSH_MSG_KEXINIT
    for up, down in _streams("spotify1.pcap", 4070):
        assert up[:2] == b"\x00\x04" and struct.unpack("!I", up[2:6])[0] > 6
    flows = _flows("torrent01.pcap")
    handshakes = [p[0] for (proto, *_), p in flows.items() if proto == 6 and p and p[0][:20] == b"\x13BitTorrent protocol"]
    assert len(handshakes) >= 2
    dht = [p[0] for (proto, *_), p in flows.items() if proto == 17 and p[0].startswith(b"d1:")]
    assert dht and all(p.endswith(b"e") for p in dht)


def test_stun_srtp_and_rtp_calls():
    stun = 0
    for (proto, *_), parts in _flows("hangouts_audio1a.pcap").items():
        for payload in parts:
            if proto == 17 and payload[4:8] == b"\x21\x12\xa4\x42":  # STUN magic cookie
                assert struct.unpack("!H", payload[2:4])[0] == len(payload) - 20
                crc = struct.unpack("!I", payload[-4:])[0]
                assert payload[-8:-6] == b"\x80\x28" and crc == zlib.crc32(payload[:-8]) ^ 0x5354554E
                stun += 1
            elif proto == 17 and payload[0] >> 6 == 2 and payload[1] & 0x7F == 111:  # SRTP, Opus
                assert payload[0] & 0x10 and payload[12:14] == b"\xbe\xde"
    assert stun >= 2
    rtp = [p for (proto, *_), parts in _flows("voipbuster1b.pcap").items() for p in parts
           if proto == 17 and p[0] == 0x80 and p[1] in (0, 8)]
    assert rtp and {len(p) for p in rtp} == {12 + 160}
    sip = [p for (proto, _, sport, _, dport), parts in _flows("voipbuster1b.pcap").items() for p in parts
           if proto == 17 and 5060 in (sport, dport)]
    assert sip[0].startswith(b"INVITE sip:") and b"m=audio" in sip[0]


def test_quic_public_header():
    flows = [(key, parts) for key, parts in _flows("youtube1.pcap").items() if key[0] == 17 and key[4] == 443]
    assert flows
    for _, parts in flows:
        first = parts[0]
        assert first[0] & 0x09 == 0x09 and first[9:13] == b"Q035" and len(first) == 1350
        assert {p[1:9] for p in parts} == {first[1:9]}  # one connection id


def test_openvpn_framing():
    for name in ("vpn_netflix_A.pcap", "vpn_aim_chat1a.pcap"):
        sessions = [parts for (proto, _, _, _, dport), parts in _flows(name).items() if proto == 17 and dport == 1194]
        assert len(sessions) == demo_data._VPN_SESSIONS
        for parts in sessions:
            opcodes = [p[0] >> 3 for p in parts]
            assert opcodes[0] == 7 and set(opcodes) <= {7, 4, 9}  # HARD_RESET_CLIENT_V2, CONTROL_V1, DATA_V2
            data = [p for p in parts if p[0] == 0x48]  # P_DATA_V2, key id 0
            assert len({p[1:4] for p in data}) == 1  # one peer id
            ids = [struct.unpack("!I", p[4:8])[0] for p in data]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_ciphertext_carries_no_per_class_byte_pattern():
    """What is encrypted is uniform random bytes: the byte histogram of every app's tunnelled
    (OpenVPN) and TLS application-data bytes is as flat as uniform sampling allows."""
    for name in ("vpn_aim_chat1a.pcap", "vpn_netflix_A.pcap", "vpn_voipbuster1a.pcap", "vpn_sftp_A.pcap",
                 "netflix1.pcap", "vimeo1.pcap", "youtube1.pcap"):
        data = bytearray()
        for (proto, _, sport, _, dport), parts in _flows(name, 400).items():
            if proto == 17 and 1194 in (sport, dport):
                data += b"".join(p[24:] for p in parts if p[0] == 0x48)
        if not data:
            for up, down in _streams(name, 443, 400):  # TLS bulk, AES-GCM or ChaCha20
                data += b"".join(body[8:] for kind, body in _tls_records(down) if kind == 23)
        counts = np.bincount(np.frombuffer(bytes(data), np.uint8), minlength=256)
        expected = counts.sum() / 256
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert counts.sum() > 20_000, name
        assert chi2 < 350, (name, chi2)  # 255 degrees of freedom: p > 1e-4 for uniform bytes


def test_module_reads_the_constants_it_shares():
    assert demo_data.PCAP_MAGIC == 0xA1B2C3D4
    assert (demo_data.PCAPNG_SHB, demo_data.PCAPNG_BOM) == (0x0A0D0D0A, 0x1A2B3C4D)
    assert demo_data._APPS == labels.ISCX_APPS and len(demo_data._TRAFFIC) == 12
