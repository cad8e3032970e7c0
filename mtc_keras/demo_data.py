"""Synthetic ISCX VPN-nonVPN-shaped captures: the embedded demo data and the builder's dummy data.

    python -m mtc_keras.demo_data DIR [--packets_per_file N] [--seed S] [--zip]

writes a manual folder laid out like the official download (NonVPN-PCAPs-01..03/,
VPN-PCAPs-01..02/, or the five zips with --zip) holding captures with real ISCX file names,
four per app (Gmail 3, Skype 6, Torrent 2: the real stems allow no other split), covering all
17 apps and all 12 traffic classes. Some are pcapng, one of them named .pcap, as in the
real download (vpn_hangouts_audio2.pcap).

What is inside is synthetic but plausible, frame by frame: Ethernet + IPv4 with valid
checksums and trailer padding on short frames; TCP flows with handshakes, pure ACKs and FIN
teardown (all dropped by the preprocessing); DNS look-ups and an ARP request (dropped too);
TLS records (ClientHello with SNI, then application data), SSH for SCP/SFTP, BitTorrent peer
wire and DHT, Tor cells, RTP over UDP for VoIP; VPN captures are OpenVPN tunnels (UDP 1194)
whose encrypted payload carries the same inner traffic. Classes differ in ports, TTL, TCP
window, packet sizes and in a byte-frequency fingerprint of the "encrypted" bytes (a few
byte values per app and per traffic type occur more often), so a model can learn them while
no two vectors are identical, except one background SSDP packet (the same bytes in many
captures, as in the real files) that the flow split must keep out of two splits.

Bytes depend only on the seed and the sizes: numpy's Generator with a fixed seed, no clock.
"""

from __future__ import annotations

import argparse
import pathlib
import struct
import sys
import zipfile
from collections.abc import Iterable

import numpy as np

from mtc_keras import labels

DEFAULT_PACKETS_PER_FILE = 80
DEFAULT_SEED = 2016
NONVPN_ARCHIVES = ("NonVPN-PCAPs-01", "NonVPN-PCAPs-02", "NonVPN-PCAPs-03")
VPN_ARCHIVES = ("VPN-PCAPs-01", "VPN-PCAPs-02")
ARCHIVES = NONVPN_ARCHIVES + VPN_ARCHIVES

# Real ISCX file names (the download's spelling), four per app where the real stems allow.
# The format follows the suffix, except vpn_hangouts_audio2.pcap, which is pcapng as in
# the real download.
DEMO_CAPTURES = (
    "aim_chat_3a.pcap", "AIMchat1.pcapng", "vpn_aim_chat1a.pcap", "vpn_aim_chat1b.pcap",
    "email1a.pcap", "email2a.pcap", "vpn_email2a.pcap", "vpn_email2b.pcap",
    "facebook_chat_4a.pcap", "facebook_audio1a.pcap", "vpn_facebook_chat1a.pcap",
    "vpn_facebook_audio2.pcap",
    "ftps_down_1a.pcap", "ftps_up_2a.pcap", "vpn_ftps_A.pcap", "vpn_ftps_B.pcap",
    "icq_chat_3a.pcap", "ICQchat1.pcapng", "vpn_icq_chat1a.pcap", "vpn_icq_chat1b.pcap",
    "gmailchat1.pcapng", "gmailchat2.pcapng", "gmailchat3.pcapng",
    "hangouts_chat_4a.pcap", "hangouts_audio1a.pcap", "vpn_hangouts_chat1a.pcap",
    "vpn_hangouts_audio2.pcap",
    "netflix1.pcap", "netflix2.pcap", "netflix3.pcap", "vpn_netflix_A.pcap",
    "scp1.pcap", "scpDown1.pcap", "scpUp1.pcap", "scpDown2.pcap",
    "sftp_down_3a.pcap", "sftpUp1.pcap", "vpn_sftp_A.pcap", "vpn_sftp_B.pcap",
    "skype_chat1a.pcap", "skype_file1.pcap", "skype_audio1a.pcap", "vpn_skype_chat1a.pcap",
    "vpn_skype_files1a.pcap", "vpn_skype_audio1.pcap",
    "spotify1.pcap", "spotify2.pcap", "spotify3.pcap", "vpn_spotify_A.pcap",
    "torrent01.pcap", "vpn_bittorrent.pcap",
    "torFacebook.pcap", "torGoogle.pcap", "torTwitter.pcap", "torYoutube1.pcap",
    "vimeo1.pcap", "vimeo2.pcap", "vpn_vimeo_A.pcap", "vpn_vimeo_B.pcap",
    "voipbuster1b.pcap", "voipbuster_4a.pcap", "vpn_voipbuster1a.pcap", "vpn_voipbuster1b.pcap",
    "youtube1.pcap", "youtube2.pcap", "youtubeHTML5_1.pcap", "vpn_youtube_A.pcap",
)
PCAPNG_NAMED_PCAP = ("vpn_hangouts_audio2.pcap",)

# Per-app traits: server port, a TLS server name, and the kind of session it runs.
_APP_TRAITS = {
    "AIM Chat": (5190, "login.oscar.aol.com", "tls"),
    "Email": (993, "imap.gmail.com", "tls"),
    "Facebook": (443, "edge-chat.facebook.com", "tls"),
    "FTPS": (990, "ftps.example.net", "tls"),
    "ICQ": (5190, "login.icq.com", "tls"),
    "Gmail": (5228, "mtalk.google.com", "tls"),
    "Hangouts": (443, "hangouts.google.com", "tls"),
    "Netflix": (443, "ipv4-c001-yyz001.nflxvideo.net", "tls"),
    "SCP": (22, "", "ssh"),
    "SFTP": (22, "", "ssh"),
    "Skype": (443, "api.skype.com", "tls"),
    "Spotify": (4070, "ap.spotify.com", "tls"),
    "Torrent": (6881, "", "bittorrent"),
    "Tor": (9001, "www.2x7h4ld6yvvmx.com", "tor"),
    "Vimeo": (443, "player.vimeo.com", "tls"),
    "Voipbuster": (5060, "", "tls"),
    "Youtube": (443, "r4---sn-ab5l6n7s.googlevideo.com", "tls"),
}
# Byte-frequency fingerprints: 4 byte values per app and per traffic type (index 6: Tor,
# which has no traffic type) occur more often in their "encrypted" bytes. Fixed, not seeded.
_FINGERPRINTS = np.random.default_rng(20160101).permutation(256).astype(np.uint8)
_APP_BYTES = _FINGERPRINTS[: 4 * 17].reshape(17, 4)
_TRAFFIC_BYTES = _FINGERPRINTS[4 * 17: 4 * 24].reshape(7, 4)
_MSS = 1460
_VPN_SESSIONS = 5
_START_TIME_US = 1_453_800_000_000_000  # 2016-01-26, when ISCX was captured; never the clock


def _checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = int(np.frombuffer(data, ">u2").sum(dtype=np.uint64))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int, ttl: int) -> bytes:
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF,
                                   0x4000, ttl, proto, 0, src, dst))
    struct.pack_into("!H", header, 10, _checksum(bytes(header)))
    return bytes(header) + payload


def _l4_checksum(src: bytes, dst: bytes, proto: int, segment: bytes) -> int:
    return _checksum(src + dst + struct.pack("!BBH", 0, proto, len(segment)) + segment)


def _udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    header = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    csum = _l4_checksum(src, dst, 17, header + payload) or 0xFFFF
    return header[:6] + struct.pack("!H", csum) + payload


def _ethernet(packet: bytes, ethertype: int = 0x0800) -> bytes:
    frame = b"\x00\x1b\x21\x3a\x4f\x5c" + b"\xb8\xac\x6f\x2e\x91\x07" + struct.pack("!H", ethertype)
    frame += packet
    return frame + b"\0" * (60 - len(frame))  # trailer padding the preprocessing must cut


class _Capture:
    """Packets of one capture as (time in µs, order, IP packet or raw frame, is_ip)."""

    def __init__(self, rng: np.random.Generator, app: int, traffic: int):
        self.rng, self.app, self.traffic = rng, app, traffic
        self.items: list[tuple[int, int, bytes, bool]] = []
        self.client = bytes([131, 202, 240, int(rng.integers(2, 250))])
        self.client_ip_id = int(rng.integers(0, 1 << 16))

    def emit(self, time_us: int, packet: bytes, is_ip: bool = True) -> None:
        self.items.append((time_us, len(self.items), packet, is_ip))

    def server(self) -> bytes:
        return bytes([int(self.rng.integers(23, 210)), int(self.rng.integers(0, 256)),
                      int(self.rng.integers(0, 256)), int(self.rng.integers(1, 255))])

    def next_ip_id(self) -> int:
        self.client_ip_id += 1
        return self.client_ip_id

    def ciphertext(self, n: int, strength: float = 1.0) -> bytes:
        """Random bytes with this class's byte-frequency fingerprint mixed in."""
        data = self.rng.integers(0, 256, n, dtype=np.uint8)
        draw = self.rng.random(n)
        app_mask = draw < 0.15 * strength
        traffic_mask = (draw >= 0.15 * strength) & (draw < 0.25 * strength)
        traffic = self.traffic % 6 if self.traffic >= 0 else 6
        data[app_mask] = _APP_BYTES[self.app][self.rng.integers(0, 4, int(app_mask.sum()))]
        data[traffic_mask] = _TRAFFIC_BYTES[traffic][self.rng.integers(0, 4, int(traffic_mask.sum()))]
        return data.tobytes()

    def dns_lookup(self, time_us: int, name: str) -> None:
        """A DNS query and answer (dropped by the preprocessing)."""
        qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
        txid = int(self.rng.integers(0, 1 << 16))
        query = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
        answer = (struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0) + qname + b"\x00\x01\x00\x01"
                  + b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", 300, 4) + self.server())
        resolver, port = bytes([131, 202, 240, 1]), int(self.rng.integers(49152, 65535))
        self.emit(time_us, _ipv4(self.client, resolver, 17, _udp(self.client, resolver, port, 53, query),
                                 self.next_ip_id(), 128))
        self.emit(time_us + 9_000, _ipv4(resolver, self.client, 17,
                                         _udp(resolver, self.client, 53, port, answer), 0, 64))


class _TcpFlow:
    """One TCP connection: handshake, data segmented at the MSS, pure ACKs, teardown."""

    def __init__(self, cap: _Capture, sport: int, time_us: int, gap_us: float):
        self.cap, self.rng = cap, cap.rng
        self.server, self.sport = cap.server(), sport
        self.cport = int(self.rng.integers(49152, 65535))
        self.time, self.gap = time_us, gap_us
        self.seq = [int(self.rng.integers(0, 1 << 32)), int(self.rng.integers(0, 1 << 32))]
        self.server_ttl = 40 + (5 * cap.app) % 60  # distance of the app's servers
        self.window = 8192 + 1024 * cap.app
        self.timestamps = cap.app % 2 == 0  # TCP timestamp option (cut by the preprocessing)
        self.server_ip_id = int(self.rng.integers(0, 1 << 16))
        self.packets = 0

    def _segment(self, from_client: bool, flags: int, payload: bytes = b"", syn: bool = False) -> None:
        src, dst = (self.cap.client, self.server) if from_client else (self.server, self.cap.client)
        sport, dport = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        side = 0 if from_client else 1
        if syn:
            options = b"\x02\x04\x05\xb4\x01\x03\x03\x08\x01\x01\x04\x02"  # MSS, WS, SACK-permitted
        elif self.timestamps:
            options = b"\x01\x01\x08\x0a" + struct.pack("!II", self.time // 1000 & 0xFFFFFFFF, 0)
        else:
            options = b""
        ack = self.seq[1 - side] if flags & 0x10 else 0
        header = struct.pack("!HHIIBBHHH", sport, dport, self.seq[side], ack, (20 + len(options)) // 4 << 4,
                             flags, self.window, 0, 0) + options
        csum = _l4_checksum(src, dst, 6, header + payload)
        segment = header[:16] + struct.pack("!H", csum) + header[18:] + payload
        if from_client:
            packet = _ipv4(src, dst, 6, segment, self.cap.next_ip_id(), 128)
        else:
            self.server_ip_id += 1
            packet = _ipv4(src, dst, 6, segment, self.server_ip_id, self.server_ttl)
        self.cap.emit(self.time, packet)
        self.seq[side] = (self.seq[side] + len(payload) + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF
        self.time += int(self.rng.exponential(self.gap)) + 1
        self.packets += 1

    def open(self) -> None:
        self._segment(True, 0x02, syn=True)
        self._segment(False, 0x12, syn=True)
        self._segment(True, 0x10)

    def send(self, from_client: bool, data: bytes) -> None:
        """Writes `data`; the receiver ACKs every second segment (pure ACKs are dropped), and
        a lone segment half the time (otherwise the ACK rides on the next data)."""
        mss = _MSS - (12 if self.timestamps else 0)
        chunks = [data[i:i + mss] for i in range(0, len(data), mss)]
        for i, chunk in enumerate(chunks):
            self._segment(from_client, 0x18 if i == len(chunks) - 1 else 0x10, chunk)
            if i % 2 == 1 or (i == len(chunks) - 1 and self.rng.random() < 0.5):
                self._segment(not from_client, 0x10)

    def close(self) -> None:
        self._segment(True, 0x11)
        self._segment(False, 0x10)
        self._segment(False, 0x11)
        self._segment(True, 0x10)


def _tls_records(cap: _Capture, size: int) -> bytes:
    """TLS 1.2 application-data records (AES-GCM: 8-byte explicit nonce, 16-byte tag)."""
    out = b""
    while size > 0:
        n = min(size, 16384)
        body = cap.rng.bytes(8) + cap.ciphertext(n) + cap.rng.bytes(16)
        out += b"\x17\x03\x03" + struct.pack("!H", len(body)) + body
        size -= n
    return out


def _client_hello(cap: _Capture, server_name: str) -> bytes:
    name = server_name.encode()
    sni = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    suites = b"\xc0\x2b\xc0\x2f\xc0\x2c\xc0\x30\xcc\xa9\xcc\xa8\x00\x9c\x00\x9d\x00\x2f\x00\x35"
    body = (b"\x03\x03" + cap.rng.bytes(32) + b"\x20" + cap.rng.bytes(32)
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00"
            + struct.pack("!H", len(sni)) + sni)
    handshake = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def _message_size(cap: _Capture, kind: str, bulk: bool) -> int:
    """Bytes of one application write: the size profile of each traffic type, scaled per app."""
    rng, scale = cap.rng, 0.6 + 0.05 * ((cap.app * 7) % 17)
    if kind == "Email":
        return 200 + int(rng.exponential(2500 * scale)) if bulk else 30 + int(rng.exponential(150 * scale))
    if bulk:  # file transfer, streaming, torrent
        return 8000 + int(rng.exponential(12000 * scale))
    return 20 + int(rng.exponential(90 * scale))


def _tcp_session(cap: _Capture, kind: str, budget: int, time_us: int) -> None:
    """A TLS, SSH, Tor or BitTorrent connection of about `budget` packets."""
    rng = cap.rng
    port, server_name, protocol = _APP_TRAITS[labels.ISCX_APPS[cap.app]]
    if protocol == "bittorrent":
        port = int(rng.integers(6881, 6890))
    flow = _TcpFlow(cap, port, time_us, gap_us=40_000 if kind == "Chat" else 3_000)
    flow.open()
    if protocol in ("tls", "tor"):
        flow.send(True, _client_hello(cap, server_name))
        flow.send(False, b"\x16\x03\x03" + struct.pack("!H", 2800) + cap.ciphertext(2800, 0.3))
    elif protocol == "ssh":
        flow.send(True, b"SSH-2.0-OpenSSH_7.2p2 Ubuntu-4ubuntu2.1\r\n")
        flow.send(False, b"SSH-2.0-OpenSSH_6.6.1p1 Debian-4~bpo70+1\r\n")
        kex = b"\x14" + rng.bytes(16) + b"curve25519-sha256@libssh.org,ecdh-sha2-nistp256"
        flow.send(True, struct.pack("!IB", len(kex) + 5, 4) + kex + b"\0" * 4)
    else:
        handshake = b"\x13BitTorrent protocol" + b"\0" * 8 + rng.bytes(20) + b"-UT3450-" + rng.bytes(12)
        flow.send(True, handshake)
        flow.send(False, handshake[:28] + rng.bytes(40))
    # Chat and Tor talk both ways; e-mail fetches big messages; bulk traffic flows one way
    # (uploads from the client: about half the file-transfer captures).
    bulk_from_client = kind == "File Transfer" and rng.random() < 0.5
    while flow.packets < budget - 4:
        if kind in ("File Transfer", "Streaming", "Torrent"):
            from_client, bulk = bulk_from_client, True
        else:
            from_client = bool(rng.random() < (0.3 if kind in ("Email", "") else 0.5))
            bulk = kind == "Email" and not from_client
        # Keep to the budget: n segments cost about 1.5 n packets with the receiver's ACKs.
        room = max(1, (budget - 4 - flow.packets) * 2 // 3) * (_MSS - 100)
        size = min(_message_size(cap, kind, bulk), room)
        flow.send(from_client, _app_data(cap, protocol, size, cells=1 if from_client else int(rng.integers(1, 9))))
        if bulk and rng.random() < 0.3:  # the other side's short requests
            flow.send(not from_client, _app_data(cap, protocol, 20 + int(rng.exponential(60)), cells=1))
    flow.close()


def _app_data(cap: _Capture, protocol: str, size: int, cells: int) -> bytes:
    """One write of about `size` bytes in the session's own framing (Tor: `cells` cells)."""
    if protocol == "tls":
        return _tls_records(cap, size)
    if protocol == "tor":  # 514-byte cells, one TLS record each (543 bytes on the wire)
        return b"".join(b"\x17\x03\x03\x02\x1a" + cap.ciphertext(538) for _ in range(cells))
    if protocol == "ssh":  # length, encrypted padded packet, MAC
        n = -(-size // 16) * 16
        return struct.pack("!I", n) + cap.ciphertext(n) + cap.rng.bytes(16)
    # BitTorrent piece message (the plain peer wire protocol)
    return struct.pack("!IBII", 9 + size, 7, int(cap.rng.integers(0, 4096)), 0) + cap.ciphertext(size, 0.5)


def _rtp_call(cap: _Capture, budget: int, time_us: int) -> None:
    """A voice call: RTP over UDP in both directions every 20 ms, SRTP-encrypted but for Voipbuster."""
    app = labels.ISCX_APPS[cap.app]
    server, cport = cap.server(), int(cap.rng.integers(10000, 60000))
    sport = {"Voipbuster": 5004, "Hangouts": 19305, "Facebook": 3478}.get(app) or int(cap.rng.integers(10000, 60000))
    payload_type = {"Voipbuster": 0, "Skype": 101, "Hangouts": 111, "Facebook": 120}.get(app, 96)
    frame_bytes = {"Voipbuster": 160, "Skype": 60, "Hangouts": 110, "Facebook": 80}.get(app, 100)
    ssrc = [int(cap.rng.integers(0, 1 << 32)), int(cap.rng.integers(0, 1 << 32))]
    seq = [int(cap.rng.integers(0, 1 << 16)), int(cap.rng.integers(0, 1 << 16))]
    server_ip_id = int(cap.rng.integers(0, 1 << 16))
    for i in range(budget):
        side = i % 2
        size = frame_bytes + (0 if app == "Voipbuster" else int(cap.rng.integers(-20, 21)))
        rtp = struct.pack("!BBHII", 0x80, payload_type, seq[side] & 0xFFFF, (seq[side] * 160) & 0xFFFFFFFF,
                          ssrc[side])
        body = cap.ciphertext(size, 0.6) + (b"" if app == "Voipbuster" else cap.rng.bytes(10))
        seq[side] += 1
        t = time_us + (i // 2) * 20_000 + int(cap.rng.integers(0, 3000))
        if side == 0:
            cap.emit(t, _ipv4(cap.client, server, 17, _udp(cap.client, server, cport, sport, rtp + body),
                              cap.next_ip_id(), 128))
        else:
            server_ip_id += 1
            cap.emit(t, _ipv4(server, cap.client, 17, _udp(server, cap.client, sport, cport, rtp + body),
                              server_ip_id, 50))


def _dht_query(cap: _Capture, time_us: int) -> None:
    """A BitTorrent DHT get_peers query over UDP (bencoded, plain)."""
    node = cap.server()
    query = (b"d1:ad2:id20:" + cap.rng.bytes(20) + b"9:info_hash20:" + cap.rng.bytes(20)
             + b"e1:q9:get_peers1:t2:" + cap.rng.bytes(2) + b"1:y1:qe")
    cap.emit(time_us, _ipv4(cap.client, node, 17, _udp(cap.client, node, 6881, int(cap.rng.integers(1024, 65535)),
                                                       query), cap.next_ip_id(), 128))


def _background(cap: _Capture, time_us: int) -> None:
    """An ARP request (dropped) and one SSDP NOTIFY, byte-identical in every capture that has it."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x00\x1b\x21\x3a\x4f\x5c",
                      cap.client, b"\0" * 6, bytes([131, 202, 240, 1]))
    cap.emit(time_us, _ethernet(arp, 0x0806), is_ip=False)
    notify = (b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n"
              b"NTS: ssdp:alive\r\nLOCATION: http://131.202.240.150:49152/description.xml\r\n\r\n")
    printer, group = bytes([131, 202, 240, 150]), bytes([239, 255, 255, 250])
    cap.emit(time_us + 1, _ipv4(printer, group, 17, _udp(printer, group, 1900, 1900, notify), 0, 4))


def _inner_traffic(cap: _Capture, stem_labels: labels.IscxLabels, budget: int) -> None:
    """The application's own traffic: several flows sharing `budget` packets."""
    kind = "" if stem_labels.traffic < 0 else labels.ISCX_TRAFFIC[stem_labels.traffic].removeprefix("VPN: ")
    time_us, n_flows = 0, 3
    if kind == "VoIP":
        # Signalling over TLS, then two calls.
        _tcp_session(cap, "Chat", max(8, budget // 5), time_us)
        for k in range(2):
            _rtp_call(cap, max(4, (budget - budget // 5) // 2), time_us + 200_000 + k * 2_000_000)
        return
    if kind == "Torrent":
        for k in range(3):
            _dht_query(cap, time_us + k * 50_000)
        budget -= 3
    for k in range(n_flows):
        cap.dns_lookup(time_us + k * 700_000, _APP_TRAITS[labels.ISCX_APPS[cap.app]][1] or "tracker.example.org")
        _tcp_session(cap, kind, max(10, budget // n_flows - 2), time_us + k * 700_000 + 20_000)


def _tunnel(cap: _Capture, inner: list[tuple[int, int, bytes, bool]], inner_client: bytes) -> None:
    """Re-emits `inner` packets inside OpenVPN-over-UDP tunnels (P_DATA_V2, AEAD): the client
    reconnects a few times, each session a new UDP flow, so the flow split has flows to split."""
    vpn_server = bytes([198, 7, 62, 204])
    cap.dns_lookup(0, "ca.vpn.example.com")
    inner.sort()
    for session in range(_VPN_SESSIONS):
        part = inner[session * len(inner) // _VPN_SESSIONS:(session + 1) * len(inner) // _VPN_SESSIONS]
        if not part:
            continue
        cport, peer_id = int(cap.rng.integers(49152, 65535)), cap.rng.bytes(3)
        start = part[0][0] - 5_000
        reset = b"\x38" + cap.rng.bytes(8) + b"\0" * 5 + cap.rng.bytes(40)  # P_CONTROL_HARD_RESET_CLIENT_V2
        cap.emit(start, _ipv4(cap.client, vpn_server, 17, _udp(cap.client, vpn_server, cport, 1194, reset),
                              cap.next_ip_id(), 128))
        for packet_id, (time_us, _, packet, _) in enumerate(part, start=1):
            from_client = packet[12:16] == inner_client
            # opcode P_DATA_V2 / key 0, peer id, packet id, AEAD tag, the encrypted inner packet
            body = (b"\x48" + peer_id + struct.pack("!I", packet_id) + cap.rng.bytes(16)
                    + cap.ciphertext(len(packet), 0.7))
            src, dst = (cap.client, vpn_server) if from_client else (vpn_server, cap.client)
            sport, dport = (cport, 1194) if from_client else (1194, cport)
            cap.emit(time_us, _ipv4(src, dst, 17, _udp(src, dst, sport, dport, body),
                                    cap.next_ip_id() if from_client else int(cap.rng.integers(0, 1 << 16)),
                                    128 if from_client else 47))


def capture_frames(name: str, packets: int, seed: int) -> list[tuple[int, bytes]]:
    """(timestamp µs, Ethernet frame) of the demo capture `name`, in time order."""
    stem_labels = labels.iscx_labels(name)
    if stem_labels is None:
        raise ValueError(f"{name!r} is not a known ISCX capture name")
    rng = np.random.default_rng([seed, DEMO_CAPTURES.index(name)])
    cap = _Capture(rng, stem_labels.app, stem_labels.traffic)
    if stem_labels.vpn:
        inner = _Capture(rng, stem_labels.app, stem_labels.traffic)
        inner.client = bytes([10, 8, 0, int(rng.integers(2, 250))])
        _inner_traffic(inner, stem_labels, packets - 2 - _VPN_SESSIONS)
        cap.client_ip_id = inner.client_ip_id
        _tunnel(cap, [item for item in inner.items if item[3]], inner.client)
    else:
        _inner_traffic(cap, stem_labels, packets - 2)
    if DEMO_CAPTURES.index(name) % 3 == 0:
        _background(cap, 300_000)
    start = _START_TIME_US + DEMO_CAPTURES.index(name) * 3_600_000_000
    return [(start + t, packet if not is_ip else _ethernet(packet)) for t, _, packet, is_ip in sorted(cap.items)]


def _pcap_bytes(frames: list[tuple[int, bytes]]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet link type
    for t, frame in frames:
        out.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame)
    return b"".join(out)


def _pcapng_bytes(frames: list[tuple[int, bytes]]) -> bytes:
    def block(block_type: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", block_type, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           block(0x00000001, struct.pack("<HHI", 1, 0, 65535))]  # Ethernet; µs timestamps
    for t, frame in frames:
        out.append(block(0x00000006, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame))
                         + frame))
    return b"".join(out)


def _archive_of(name: str) -> str:
    """The folder/zip a capture goes to, spread like the official five archives."""
    vpn = name.lower().startswith("vpn_")
    same_side = [n for n in DEMO_CAPTURES if n.lower().startswith("vpn_") == vpn]
    archives = VPN_ARCHIVES if vpn else NONVPN_ARCHIVES
    archive = archives[same_side.index(name) * len(archives) // len(same_side)]
    # Tor captures sit one level deeper, to show that any depth works.
    return f"{archive}/Tor" if name.lower().startswith("tor") and not name.lower().startswith("torrent") else archive


def _packets_for(name: str, packets_per_file: int) -> int:
    """Frames for one capture: every app gets about 4 * packets_per_file frames in total."""
    app = labels.iscx_labels(name).app
    files_of_app = sum(labels.iscx_labels(n).app == app for n in DEMO_CAPTURES)
    return max(16, round(packets_per_file * 4 / files_of_app))


def write_demo_captures(directory, packets_per_file: int = DEFAULT_PACKETS_PER_FILE,
                        seed: int = DEFAULT_SEED, captures: Iterable[str] | None = None,
                        zip_archives: Iterable[str] = ()) -> list[pathlib.Path]:
    """Writes demo captures under `directory`; returns the files written (captures and zips).

    captures: a subset of DEMO_CAPTURES (default: all). zip_archives: archive names (from
    ARCHIVES) written as `<name>.zip` holding their captures instead of as folders.
    """
    directory = pathlib.Path(directory)
    names = list(DEMO_CAPTURES if captures is None else captures)
    unknown = sorted(set(names) - set(DEMO_CAPTURES))
    if unknown:
        raise ValueError(f"not demo captures: {unknown}")
    zip_archives = set(zip_archives)
    if zip_archives - set(ARCHIVES):
        raise ValueError(f"unknown archives {sorted(zip_archives - set(ARCHIVES))}; known: {ARCHIVES}")
    written, zipped = [], {}
    for name in names:
        frames = capture_frames(name, _packets_for(name, packets_per_file), seed)
        ng = name.endswith(".pcapng") or name in PCAPNG_NAMED_PCAP
        data = _pcapng_bytes(frames) if ng else _pcap_bytes(frames)
        relative = f"{_archive_of(name)}/{name}"
        archive = relative.split("/")[0]
        if archive in zip_archives:
            zipped.setdefault(archive, []).append((relative, data))
            continue
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    for archive, members in sorted(zipped.items()):
        path = directory / f"{archive}.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            for relative, data in members:
                # Stored, with a fixed date: the zip's bytes are the same on every machine
                # (deflate output can differ between zlib builds).
                zf.writestr(zipfile.ZipInfo(relative, date_time=(2016, 1, 26, 0, 0, 0)), data,
                            compress_type=zipfile.ZIP_STORED)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtc_keras.demo_data", description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="manual folder to write (created if missing)")
    parser.add_argument("--packets_per_file", type=int, default=DEFAULT_PACKETS_PER_FILE,
                        help="frames per capture (apps with other than 4 demo captures are scaled so "
                             "every app gets about 4x this); default %(default)s")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default %(default)s")
    parser.add_argument("--zip", action="store_true", help="write the five archives as .zip files")
    args = parser.parse_args(argv)
    if args.packets_per_file < 1:
        parser.error("--packets_per_file must be positive")
    files = write_demo_captures(args.directory, args.packets_per_file, args.seed,
                                zip_archives=ARCHIVES if args.zip else ())
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1e6:.1f} MB, under {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
