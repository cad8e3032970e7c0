"""Synthetic ISCX VPN-nonVPN-shaped captures: the embedded demo data and the builder's dummy data.

    python -m mtc_keras.demo_data DIR [--packets_per_file N] [--seed S] [--zip]

writes a manual folder laid out like the official download (NonVPN-PCAPs-01..03/,
VPN-PCAPs-01..02/, or the five zips with --zip) holding captures with real ISCX file names,
four per app (Gmail 3, Skype 6, Torrent 2: the real stems allow no other split), covering all
17 apps and all 12 traffic classes. Some are pcapng, one of them named .pcap, as in the
real download (vpn_hangouts_audio2.pcap).

What is inside is synthetic, but every packet carries what the real application puts on the
wire, and nothing else: Ethernet + IPv4 with valid checksums and trailer padding on short
frames; TCP flows with handshakes, pure ACKs and FIN teardown (dropped by the preprocessing),
a Windows client (TTL 128) and each service's servers at their own distance and TCP window;
DNS look-ups and an ARP request (dropped too). On top, per application:

- TLS 1.2 (RFC 5246): ClientHello of the client software (Chrome, Thunderbird/NSS, Skype/
  SChannel, FileZilla/GnuTLS, Tor/OpenSSL) with SNI, the server's flight (ServerHello,
  Certificate with the service's names, ServerKeyExchange), then AEAD records: AES-GCM with
  the 8-byte explicit nonce that OpenSSL-style stacks fill with the record sequence number
  (RFC 5288), or ChaCha20-Poly1305 without one (RFC 7905) for Google's services;
- AIM and ICQ: OSCAR on 5190, FLAP frames and SNAC headers (ICBM messages, typing, presence,
  keep-alives); AIM screen names and HTML text, ICQ UINs and UCS-2 text;
- Gmail chat: XMPP over TLS on 5228; Email: SMTP with STARTTLS (RFC 3207), IMAP and POP3
  over implicit TLS (RFC 8314); FTPS: FTP control with AUTH TLS (RFC 4217) and TLS data
  connections on passive ports;
- Facebook and Hangouts calls: WebRTC, STUN binding requests and responses (RFC 5389) with
  ICE attributes, then SRTP and SRTCP (RFC 3711); Voipbuster: SIP (RFC 3261) with SDP, plain
  RTP carrying G.711 u-law or A-law speech, RTCP sender reports (RFC 3550); Skype: its own
  UDP framing (2-byte frame id, function byte, obfuscated body) and obfuscated TCP streams;
- YouTube: gQUIC (Q035 public header: flags, 8-byte connection id, version in the client's
  first packets, packet number; the CHLO in clear) besides TLS; Netflix and Vimeo: TLS bulk;
- Spotify: its access-point protocol on 4070 (length-prefixed hello, then Shannon-encrypted
  packets); BitTorrent: the handshake, peer-wire messages (BEP 3), uTP (BEP 29) and DHT
  queries and answers (BEP 5, bencoded); Tor: 514-byte cells, one per 543-byte TLS record;
- SCP and SFTP: SSH (RFC 4253) banners, KEXINIT, ECDH, NEWKEYS, then encrypted packets:
  OpenSSH's scp with chacha20-poly1305 and window adjusts, a PuTTY-based SFTP client with
  aes-ctr + hmac-sha2-256 and its 32 KiB read/write requests;
- VPN captures are OpenVPN over UDP 1194 (control channel resets, ACKs and TLS records,
  then P_DATA_V2 packets: opcode/key id, peer id, packet id, AEAD tag): the inner packet
  is encrypted, so only the size of the inner traffic shows through.

Encrypted bytes are uniform random bytes, as real ciphertext is: there is no per-class byte
pattern. No two vectors are identical, except one background SSDP packet (the same bytes in
many captures, as in the real files) that the flow split must keep out of two splits.

Bytes depend only on the seed and the sizes: numpy's Generator with a fixed seed, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import pathlib
import struct
import zipfile
import zlib
from collections.abc import Iterable

import numpy as np

from mtc_keras import capture, labels

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

_APPS = labels.TASKS["iscx"]["app"]
_TRAFFIC = labels.TASKS["iscx"]["traffic"]
# The pcap magic (microsecond timestamps, written little-endian) and the pcapng block
# constants, as the reader knows them.
PCAP_MAGIC = next(m for m, (order, extra) in capture._PCAP_MAGICS.items() if order == "<" and not extra)
PCAPNG_SHB, PCAPNG_BOM = capture._PCAPNG_SHB, capture._PCAPNG_BOM
_PCAPNG_IDB, _PCAPNG_EPB = 0x00000001, 0x00000006
_LINKTYPE_ETHERNET = 1

_MSS = 1460
_VPN_MSS = 1360  # OpenVPN's mssfix keeps tunnelled segments under the outer MTU
_VPN_SESSIONS = 5
_START_TIME_US = 1_453_800_000_000_000  # 2016-01-26, when ISCX was captured; never the clock
_CLIENT_NET = bytes([131, 202, 240])  # the capture hosts' network (UNB)

# Servers of each service as seen from the capture point: the initial TTL of their OS
# minus the hops to them, and the TCP window they advertise.
_SERVICES = {
    "aol": (64 - 17, 16384), "icq": (64 - 21, 14600), "google": (64 - 9, 42540),
    "facebook": (64 - 12, 28960), "netflix": (64 - 13, 65535), "akamai": (64 - 10, 28960),
    "microsoft": (128 - 14, 8192), "spotify": (64 - 15, 14480), "mail": (64 - 9, 42540),
    "ftp": (128 - 6, 65535), "ssh": (64 - 3, 28960),
    "tor": (64 - 16, 29200), "voipbuster": (64 - 19, 5840), "vpn": (64 - 17, 0),
}


def _server_traits(rng: np.random.Generator, service: str) -> tuple[int, int]:
    """(TTL as seen here, TCP window) of one server; "peer": a P2P peer, any host anywhere."""
    if service == "peer":
        return (int(rng.choice([64, 128])) - int(rng.integers(6, 25)),
                int(rng.choice([65535, 64240, 8192, 29200, 14600])))
    ttl, window = _SERVICES[service]
    return ttl - int(rng.integers(0, 2)), window  # servers of a service differ by a hop
_WORDS = ("hi", "hey", "ok", "yes", "no", "sure", "thanks", "see", "you", "later", "are", "we",
          "still", "on", "for", "tonight", "the", "meeting", "is", "at", "lol", "what", "time",
          "call", "me", "when", "free", "sounds", "good", "i", "will", "send", "it", "now", "bye")


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

    def __init__(self, rng: np.random.Generator, name: str, app: int, traffic: int, mss: int = _MSS):
        self.rng, self.name, self.app, self.traffic, self.mss = rng, name, app, traffic, mss
        self.items: list[tuple[int, int, bytes, bool]] = []
        self.client = _CLIENT_NET + bytes([int(rng.integers(2, 250))])
        self.client_ip_id = int(rng.integers(0, 1 << 16))

    def emit(self, time_us: int, packet: bytes, is_ip: bool = True) -> None:
        self.items.append((time_us, len(self.items), packet, is_ip))

    def server(self) -> bytes:
        return bytes([int(self.rng.integers(23, 210)), int(self.rng.integers(0, 256)),
                      int(self.rng.integers(0, 256)), int(self.rng.integers(1, 255))])

    def next_ip_id(self) -> int:
        self.client_ip_id += 1
        return self.client_ip_id

    def random(self, n: int) -> bytes:
        """Ciphertext (or compressed media): uniform random bytes."""
        return self.rng.bytes(max(0, int(n)))

    def words(self, lo: int, hi: int) -> str:
        return " ".join(self.rng.choice(_WORDS, int(self.rng.integers(lo, hi + 1))))

    def dns_lookup(self, time_us: int, name: str) -> None:
        """A DNS query and answer (dropped by the preprocessing)."""
        qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
        txid = int(self.rng.integers(0, 1 << 16))
        query = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
        answer = (struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0) + qname + b"\x00\x01\x00\x01"
                  + b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", 300, 4) + self.server())
        resolver, port = _CLIENT_NET + b"\x01", int(self.rng.integers(49152, 65535))
        self.emit(time_us, _ipv4(self.client, resolver, 17, _udp(self.client, resolver, port, 53, query),
                                 self.next_ip_id(), 128))
        self.emit(time_us + 9_000, _ipv4(resolver, self.client, 17,
                                         _udp(resolver, self.client, 53, port, answer), 0, 64))


class _TcpFlow:
    """One TCP connection: handshake, data segmented at the MSS, pure ACKs, teardown."""

    def __init__(self, cap: _Capture, sport: int, time_us: int, gap_us: float, service: str):
        self.cap, self.rng = cap, cap.rng
        self.server, self.sport = cap.server(), sport
        self.cport = int(self.rng.integers(49152, 65535))
        self.time, self.gap = time_us, gap_us
        self.seq = [int(self.rng.integers(0, 1 << 32)), int(self.rng.integers(0, 1 << 32))]
        self.server_ttl, self.server_window = _server_traits(self.rng, service)
        self.client_window = int(self.rng.integers(250, 1030))  # Windows, window scale 8
        self.server_ip_id = int(self.rng.integers(0, 1 << 16))
        self.packets = 0

    def _segment(self, from_client: bool, flags: int, payload: bytes = b"", syn: bool = False) -> None:
        src, dst = (self.cap.client, self.server) if from_client else (self.server, self.cap.client)
        sport, dport = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        side = 0 if from_client else 1
        if syn:  # MSS, NOP, window scale, SACK-permitted (Windows); the server echoes them
            options = b"\x02\x04" + struct.pack("!H", self.cap.mss) + b"\x01\x03\x03\x08\x01\x01\x04\x02"
            window = 8192 if from_client else self.server_window
        else:
            options = b""
            window = self.client_window + int(self.rng.integers(0, 3)) if from_client else self.server_window
        ack = self.seq[1 - side] if flags & 0x10 else 0
        header = struct.pack("!HHIIBBHHH", sport, dport, self.seq[side], ack, (20 + len(options)) // 4 << 4,
                             flags, window, 0, 0) + options
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
        mss = self.cap.mss
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


# --------------------------------------------------------------------------- TLS (RFC 5246)

# Cipher suites offered by each client (as their 2016 versions sent them) and what the
# server picks: (suites, extensions style, chosen suite).
_TLS_CLIENTS = {
    # Chrome 47: ECDHE-*-AES128-GCM, the ChaCha20-Poly1305 suites, then the CBC fallbacks.
    "chrome": bytes.fromhex("c02bc02f009ecca9cca8cc14cc13c00ac014c009c013009c0035002f000a"),
    # Thunderbird / Firefox (NSS 3.2x).
    "nss": bytes.fromhex("c02bc02fcca9cca8c00ac009c013c01400330039002f0035000a"),
    # Skype on Windows (SChannel).
    "schannel": bytes.fromhex("c028c027c014c013009f009e00390033009d009c003d003c0035002fc02cc02b"),
    # FileZilla (GnuTLS).
    "gnutls": bytes.fromhex("c02bc02cc086c087c009c023c00ac024c072c073cca9c008c02fc030c08a"),
    # Tor (OpenSSL 1.0.2).
    "openssl": bytes.fromhex("c030c02cc028c024c014c00a009f006b0039ff85c4c02fc02bc027c023c013c009"),
}
_GCM, _CHACHA = b"\xc0\x2f", b"\xcc\xa8"  # ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-CHACHA20-POLY1305


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 128 else (b"\x81" + bytes([n]) if n < 256 else b"\x82" + struct.pack("!H", n))
    return bytes([tag]) + length + body


def _der_name(common_name: str, org: str) -> bytes:
    def rdn(oid: bytes, value: str) -> bytes:
        return _der(0x31, _der(0x30, _der(0x06, oid) + _der(0x0C, value.encode())))
    return _der(0x30, rdn(b"\x55\x04\x06", "US") + rdn(b"\x55\x04\x0a", org) + rdn(b"\x55\x04\x03", common_name))


def _certificate(cap: _Capture, subject: str, issuer: str, org: str) -> bytes:
    """An X.509 certificate (RFC 5280) shape: names in clear, key and signature random."""
    sha256_rsa = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")
    validity = _der(0x30, _der(0x17, b"160113090000Z") + _der(0x17, b"160412090000Z"))
    key = _der(0x30, _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
               + _der(0x03, b"\x00" + _der(0x30, _der(0x02, b"\x00" + cap.random(256)) + b"\x02\x03\x01\x00\x01")))
    san = _der(0x30, _der(0x06, b"\x55\x1d\x11") + _der(0x04, _der(0x30, _der(0x82, subject.encode()))))
    tbs = _der(0x30, b"\xa0\x03\x02\x01\x02" + _der(0x02, cap.random(16)) + sha256_rsa
               + _der_name(issuer, org) + validity + _der_name(subject, org) + key + _der(0xA3, _der(0x30, san)))
    return _der(0x30, tbs + sha256_rsa + _der(0x03, b"\x00" + cap.random(256)))


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + struct.pack("!I", len(body))[1:] + body


def _record(content_type: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([content_type]) + version + struct.pack("!H", len(body)) + body


def _extension(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


class _Tls:
    """One TLS 1.2 connection: handshake messages in clear, then AEAD records (RFC 5246 §6.2)."""

    def __init__(self, cap: _Capture, client: str, server_name: str, cert: tuple[str, str, str],
                 aead: bytes, resumed: bool = False, alpn: bool = False):
        self.cap, self.client, self.server_name, self.cert = cap, client, server_name, cert
        self.aead, self.resumed, self.alpn = aead, resumed, alpn
        self.seq = [0, 0]  # record sequence numbers after ChangeCipherSpec, per direction

    def client_hello(self) -> bytes:
        cap = self.cap
        exts = b""
        if self.server_name:  # server_name (RFC 6066)
            name = self.server_name.encode()
            exts += _extension(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
        exts += _extension(0xFF01, b"\x00") + _extension(0x0017, b"")  # renegotiation_info, EMS
        exts += _extension(0x000A, b"\x00\x06\x00\x1d\x00\x17\x00\x18")  # supported_groups
        exts += _extension(0x000B, b"\x01\x00")  # ec_point_formats: uncompressed
        exts += _extension(0x000D, b"\x00\x10\x06\x01\x06\x03\x05\x01\x05\x03\x04\x01\x04\x03\x02\x01\x02\x03")
        exts += _extension(0x0023, cap.random(192) if self.resumed else b"")  # session ticket
        if self.alpn:
            exts += _extension(0x0010, b"\x00\x0c\x02h2\x08http/1.1")
        suites = _TLS_CLIENTS[self.client]
        session_id = b"\x20" + cap.random(32) if self.resumed or self.client != "openssl" else b"\x00"
        body = (b"\x03\x03" + cap.random(32) + session_id + struct.pack("!H", len(suites)) + suites
                + b"\x01\x00")
        if self.client == "chrome":  # Chrome pads its ClientHello to 512 bytes (RFC 7685)
            pad = 508 - (len(body) + 2 + len(exts)) - 4
            if pad > 0:
                exts += _extension(0x0015, b"\0" * pad)
        body += struct.pack("!H", len(exts)) + exts
        return _record(22, _handshake(1, body), b"\x03\x01")

    def server_flight(self) -> bytes:
        cap = self.cap
        exts = _extension(0xFF01, b"\x00") + _extension(0x0017, b"")
        if self.alpn:
            exts += _extension(0x0010, b"\x00\x03\x02h2")
        hello = _handshake(2, b"\x03\x03" + cap.random(32) + b"\x20" + cap.random(32) + self.aead + b"\x00"
                           + struct.pack("!H", len(exts)) + exts)
        if self.resumed:
            return _record(22, hello) + _record(20, b"\x01") + self._sealed(False, 22, 16)
        subject, issuer, org = self.cert
        chain = b"".join(struct.pack("!I", len(c))[1:] + c for c in (
            _certificate(cap, subject, issuer, org), _certificate(cap, issuer, issuer.split()[0] + " Root CA", org)))
        certificate = _handshake(11, struct.pack("!I", len(chain))[1:] + chain)
        # ServerKeyExchange: named curve x25519/secp256r1 point, RSA-SHA256 signature
        kex = _handshake(12, b"\x03\x00\x17\x41\x04" + cap.random(64) + b"\x04\x01\x01\x00" + cap.random(256))
        return _record(22, hello + certificate + kex + _handshake(14, b""))

    def client_finish(self) -> bytes:
        if self.resumed:
            return _record(20, b"\x01") + self._sealed(True, 22, 16)
        return (_record(22, _handshake(16, b"\x41\x04" + self.cap.random(64))) + _record(20, b"\x01")
                + self._sealed(True, 22, 16))

    def server_finish(self) -> bytes:
        ticket = _handshake(4, struct.pack("!IH", 100800, 192) + self.cap.random(192))
        return _record(22, ticket) + _record(20, b"\x01") + self._sealed(False, 22, 16)

    def handshake(self, flow: _TcpFlow) -> None:
        flow.send(True, self.client_hello())
        flow.send(False, self.server_flight())
        if self.resumed:
            flow.send(True, self.client_finish())
        else:
            flow.send(True, self.client_finish())
            flow.send(False, self.server_finish())

    def _sealed(self, from_client: bool, content_type: int, n: int) -> bytes:
        side = 0 if from_client else 1
        if self.aead != _CHACHA:  # AES-GCM's explicit nonce: the record sequence number (RFC 5288 §3)
            body = struct.pack("!Q", self.seq[side]) + self.cap.random(n + 16)
        else:  # ChaCha20-Poly1305: the nonce is implicit (RFC 7905 §2)
            body = self.cap.random(n + 16)
        self.seq[side] += 1
        return _record(content_type, body)

    def data(self, from_client: bool, size: int, record_max: int = 16384) -> bytes:
        """`size` bytes of application data in records of at most `record_max` bytes."""
        out, size = [], max(1, size)
        while size > 0:
            n = min(size, record_max)
            out.append(self._sealed(from_client, 23, n))
            size -= n
        return b"".join(out)


# --------------------------------------------------------------------------- sessions

def _size(cap: _Capture, mean: float, lo: int = 1) -> int:
    return lo + int(cap.rng.exponential(mean))


class _Session:
    """A TCP connection running one protocol: `opening` then `message(s)` until the budget."""

    def __init__(self, cap: _Capture, port: int, service: str, gap_us: float = 3_000):
        self.cap, self.rng, self.port, self.service, self.gap = cap, cap.rng, port, service, gap_us

    def opening(self, flow: _TcpFlow) -> None:
        pass

    def message(self, flow: _TcpFlow, left: int) -> None:
        raise NotImplementedError

    def run(self, budget: int, time_us: int) -> _TcpFlow:
        flow = _TcpFlow(self.cap, self.port, time_us, self.gap, self.service)
        flow.open()
        self.opening(flow)
        while flow.packets < budget - 4:
            self.message(flow, budget - 4 - flow.packets)
        flow.close()
        return flow


def _room(cap: _Capture, left: int) -> int:
    """Bytes that fit in about `left` packets (n segments cost about 1.5 n with the ACKs)."""
    return max(1, left * 2 // 3) * (cap.mss - 100)


class _TlsSession(_Session):
    """HTTPS / TLS-wrapped protocols. `pattern`: chat (small writes both ways), bulk_down,
    bulk_up (a transfer, the other side's short requests), email (commands, long answers)."""

    def __init__(self, cap, port, service, tls: _Tls, pattern: str, record_max: int = 16384,
                 plain_opening: list[tuple[bool, bytes]] = (), gap_us: float = 3_000):
        super().__init__(cap, port, service, gap_us)
        self.tls, self.pattern, self.record_max, self.plain = tls, pattern, record_max, plain_opening

    def opening(self, flow):
        for from_client, text in self.plain:  # STARTTLS / AUTH TLS (in clear)
            flow.send(from_client, text)
        self.tls.handshake(flow)

    def message(self, flow, left):
        tls, room = self.tls, _room(self.cap, left)
        if self.pattern == "chat":
            from_client = bool(self.rng.random() < 0.5)
            flow.send(from_client, tls.data(from_client, min(room, _size(self.cap, 120, 20)), self.record_max))
        elif self.pattern == "email":
            flow.send(True, tls.data(True, _size(self.cap, 40, 12), self.record_max))
            if left > 2:
                flow.send(False, tls.data(False, min(room, _size(self.cap, 3000, 40)), self.record_max))
        else:
            up = self.pattern == "bulk_up"
            flow.send(not up, tls.data(not up, _size(self.cap, 300, 60), self.record_max))  # request
            if left > 2:
                flow.send(up, tls.data(up, min(room, _size(self.cap, 20000, 4000)), self.record_max))


class _Oscar(_Session):
    """AIM / ICQ over OSCAR on 5190: FLAP frames (0x2A, channel, sequence, length) carrying
    SNACs (family, subtype, flags, request id), as in the OSCAR protocol documentation."""

    def __init__(self, cap, icq: bool):
        super().__init__(cap, 5190, "icq" if icq else "aol", gap_us=40_000)
        self.icq, self.flap_seq = icq, [int(self.rng.integers(0, 1 << 15)), int(self.rng.integers(0, 1 << 15))]
        self.buddy = self._screen_name()
        self.request_id = int(self.rng.integers(1, 1 << 16))

    def _screen_name(self) -> bytes:
        if self.icq:  # ICQ numbers (UINs)
            return str(int(self.rng.integers(100_000_000, 700_000_000))).encode()
        return ("iscx" + "".join(self.rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 6))).encode()

    def _flap(self, from_client: bool, channel: int, data: bytes) -> bytes:
        side = 0 if from_client else 1
        self.flap_seq[side] = (self.flap_seq[side] + 1) & 0xFFFF
        return struct.pack("!BBHH", 0x2A, channel, self.flap_seq[side], len(data)) + data

    def _snac(self, from_client: bool, family: int, subtype: int, body: bytes) -> bytes:
        self.request_id += 1
        return self._flap(from_client, 2, struct.pack("!HHHI", family, subtype, 0, self.request_id) + body)

    def _text(self) -> bytes:
        text = self.cap.words(1, 9)
        if self.icq:  # ICQ clients send UCS-2BE (charset 2)
            return struct.pack("!HH", 2, 0) + text.encode("utf-16-be")
        return struct.pack("!HH", 0, 0) + f"<HTML><BODY>{text}</BODY></HTML>".encode()

    def opening(self, flow):
        flow.send(False, self._flap(False, 1, b"\0\0\0\1"))  # FLAP version
        cookie = self.rng.bytes(256)
        flow.send(True, self._flap(True, 1, b"\0\0\0\1" + struct.pack("!HH", 6, 256) + cookie))
        # SNAC(01,17) family versions, SNAC(01,18) reply, SNAC(01,06) rate request
        families = b"".join(struct.pack("!HH", f, v) for f, v in ((1, 4), (2, 1), (3, 1), (4, 1), (0x13, 4)))
        flow.send(True, self._snac(True, 1, 0x17, families))
        flow.send(False, self._snac(False, 1, 0x18, families))

    def message(self, flow, left):
        draw = self.rng.random()
        name = bytes([len(self.buddy)]) + self.buddy
        if draw < 0.15:  # keep-alive: channel 5, no data
            flow.send(True, self._flap(True, 5, b""))
        elif draw < 0.35:  # SNAC(04,14) typing notification
            from_client = bool(self.rng.random() < 0.5)
            flow.send(from_client, self._snac(from_client, 4, 0x14, b"\0" * 8 + b"\0\1" + name
                                              + struct.pack("!H", int(self.rng.integers(0, 3)))))
        elif draw < 0.42:  # SNAC(03,0B) buddy arrived, with user info TLVs
            flow.send(False, self._snac(False, 3, 0x0B, name + b"\0\0\0\3" + struct.pack("!HHH", 1, 2, 0x10)
                                        + struct.pack("!HHI", 3, 4, int(self.rng.integers(1 << 30, 1 << 31)))
                                        + struct.pack("!HHI", 0x0F, 4, int(self.rng.integers(0, 1 << 16)))))
        else:  # ICBM channel 1 message: SNAC(04,06) sent, SNAC(04,07) received
            text = self._text()
            fragments = b"\x05\x01\x00\x03\x01\x01\x02" + struct.pack("!BBH", 1, 1, len(text)) + text
            message = struct.pack("!HH", 2, len(fragments)) + fragments
            if self.rng.random() < 0.5:
                flow.send(True, self._snac(True, 4, 6, self.rng.bytes(8) + b"\0\1" + name + message + b"\0\3\0\0"))
            else:
                flow.send(False, self._snac(False, 4, 7, self.rng.bytes(8) + b"\0\1" + name + b"\0\0\0\2"
                                            + struct.pack("!HHH", 1, 2, 0x10)
                                            + struct.pack("!HHI", 6, 4, 0) + message))


class _Ssh(_Session):
    """SCP (OpenSSH: chacha20-poly1305@openssh.com, packet length encrypted too) or SFTP
    (a PuTTY-based client: aes256-ctr + hmac-sha2-256) over SSH (RFC 4253)."""

    def __init__(self, cap, sftp: bool, upload: bool):
        super().__init__(cap, 22, "ssh")
        self.sftp, self.upload = sftp, upload

    def _plain_packet(self, payload: bytes) -> bytes:  # RFC 4253 §6, before NEWKEYS
        pad = 8 - (len(payload) + 5) % 8
        pad += 8 if pad < 4 else 0
        return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + self.rng.bytes(pad)

    def _sealed(self, payload_len: int) -> bytes:
        """An encrypted packet: all random on the wire, only its length is the protocol's."""
        if self.sftp:  # aes-ctr: length field encrypted, 16-byte blocks, 32-byte HMAC
            body = 5 + payload_len
            body += 16 - body % 16 + (16 if 16 - body % 16 < 4 else 0)
            return self.cap.random(body + 32)
        body = 1 + payload_len  # chacha20-poly1305: 4-byte encrypted length, 8-byte blocks, 16-byte tag
        body += 8 - body % 8 + (8 if 8 - body % 8 < 4 else 0)
        return self.cap.random(4 + body + 16)

    def opening(self, flow):
        client = b"SSH-2.0-PuTTY_Release_0.66\r\n" if self.sftp else b"SSH-2.0-OpenSSH_7.2p2 Ubuntu-4ubuntu2.1\r\n"
        flow.send(False, b"SSH-2.0-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2.6\r\n")
        flow.send(True, client)

        def name_list(text: str) -> bytes:
            return struct.pack("!I", len(text)) + text.encode()
        if self.sftp:
            kex = ("ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha256,diffie-hellman-group14-sha1",
                   "ssh-rsa,ssh-dss", "aes256-ctr,aes256-cbc,aes192-ctr,aes128-ctr,blowfish-ctr,3des-ctr",
                   "hmac-sha2-256,hmac-sha1,hmac-sha1-96,hmac-md5", "none,zlib")
        else:
            kex = ("curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha1,ext-info-c",
                   "ecdsa-sha2-nistp256-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512,ssh-rsa",
                   "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com",
                   "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-256,hmac-sha1",
                   "none,zlib@openssh.com,zlib")
        lists = [kex[0], kex[1], kex[2], kex[2], kex[3], kex[3], kex[4], kex[4], "", ""]
        kexinit = b"\x14" + self.rng.bytes(16) + b"".join(name_list(x) for x in lists) + b"\0\0\0\0\0"
        flow.send(True, self._plain_packet(kexinit))
        server_lists = ["curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha1",
                        "ssh-rsa,ecdsa-sha2-nistp256,ssh-ed25519",
                        "aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com", "",
                        "hmac-sha2-256,hmac-sha1,umac-64@openssh.com", "", "none,zlib@openssh.com", "", "", ""]
        server_lists[3], server_lists[5], server_lists[7] = server_lists[2], server_lists[4], server_lists[6]
        flow.send(False, self._plain_packet(b"\x14" + self.rng.bytes(16)
                                            + b"".join(name_list(x) for x in server_lists) + b"\0\0\0\0\0"))
        point = 65 if self.sftp else 32
        flow.send(True, self._plain_packet(b"\x1e" + struct.pack("!I", point) + self.rng.bytes(point)))
        host_key = name_list("ssh-rsa") + struct.pack("!I", 3) + b"\x01\x00\x01" + struct.pack("!I", 257) + self.rng.bytes(257)
        reply = (b"\x1f" + struct.pack("!I", len(host_key)) + host_key + struct.pack("!I", point) + self.rng.bytes(point)
                 + struct.pack("!I", 271) + name_list("ssh-rsa") + struct.pack("!I", 256) + self.rng.bytes(256))
        flow.send(False, self._plain_packet(reply) + self._plain_packet(b"\x15"))
        flow.send(True, self._plain_packet(b"\x15"))
        # service request, user auth, channel open, subsystem / exec: short encrypted packets
        for payload_len in (17, 60, 340, 24, 40):
            flow.send(True, self._sealed(payload_len + int(self.rng.integers(0, 8))))
            flow.send(False, self._sealed(int(self.rng.integers(8, 40))))

    def message(self, flow, left):
        room = _room(self.cap, left)
        if self.sftp:
            # SSH_FXP_READ / SSH_FXP_WRITE of 32 KiB, answered by SSH_FXP_DATA / SSH_FXP_STATUS
            n = min(room, 32768 + 13)
            if self.upload:
                flow.send(True, self._sealed(9 + 4 + 25 + n))
                flow.send(False, self._sealed(9 + 28))
            else:
                flow.send(True, self._sealed(9 + 29))
                flow.send(False, self._sealed(9 + 13 + n))
        else:
            # scp: channel data in 16 KiB packets, the receiver's window adjusts now and then
            flow.send(self.upload, self._sealed(9 + min(room, 16384)))
            if self.rng.random() < 0.25:
                flow.send(not self.upload, self._sealed(9))


class _Spotify(_Session):
    """Spotify's access-point protocol on 4070: a length-prefixed ClientHello (version 0x0004)
    and APResponse (protobuf), then packets Shannon-encrypted with a 4-byte MAC: random bytes."""

    def __init__(self, cap):
        super().__init__(cap, 4070, "spotify")

    def opening(self, flow):
        hello = (b"\x52\x0f\x50\x00\x1a\x0a\x08\x01\x10\x00\x18\xc0\xbb\x0c\x20\x00\xa0\x01\x01"
                 + b"\xe0\x03\x00\x52\x66\x50\x00\x5a\x62\x0a\x60" + self.rng.bytes(96)
                 + b"\xf2\x03\x12\x0a\x10" + self.rng.bytes(16) + b"\x82\x05\x01\x1e")
        flow.send(True, b"\x00\x04" + struct.pack("!I", len(hello) + 6) + hello)
        challenge = (b"\x52\x82\x01\x81\x0a\x82\x01\x7d\x0a\x60" + self.rng.bytes(96) + b"\x12\x82\x01\x00"
                     + self.rng.bytes(256) + b"\x92\x03\x12\x0a\x10" + self.rng.bytes(16))
        flow.send(False, struct.pack("!I", len(challenge) + 4) + challenge)
        response = b"\x52\x16\x0a\x14" + self.rng.bytes(20) + b"\x5a\x00\x62\x00"
        flow.send(True, struct.pack("!I", len(response) + 4) + response)

    def message(self, flow, left):
        flow.send(True, self.cap.random(3 + _size(self.cap, 40, 10) + 4))  # requests, pongs
        if left > 2:  # audio data in channel packets of up to 4 KiB payload each
            total, out = min(_room(self.cap, left), _size(self.cap, 40000, 4000)), []
            while total > 0:
                out.append(self.cap.random(3 + 2 + min(total, 4096) + 4))
                total -= 4096
            flow.send(False, b"".join(out))


class _TorLink(_Session):
    """A Tor link (tor-spec §2-3): TLS to a relay's ORPort with a random-looking name, then
    514-byte cells, one per TLS record: 5 + 8 (nonce) + 514 + 16 (tag) = 543 bytes."""

    def __init__(self, cap):
        port = 9001 if cap.rng.random() < 0.6 else 443
        super().__init__(cap, port, "tor")
        rand_name = "".join(cap.rng.choice(list("abcdefghijklmnopqrstuvwxyz234567"), int(cap.rng.integers(8, 20))))
        issuer = "".join(cap.rng.choice(list("abcdefghijklmnopqrstuvwxyz234567"), 14))
        self.tls = _Tls(cap, "openssl", f"www.{rand_name}.com", (f"www.{rand_name}.net", f"www.{issuer}.com", ""),
                        b"\xc0\x30")  # ECDHE-RSA-AES256-GCM-SHA384

    def opening(self, flow):
        self.tls.handshake(flow)

    def message(self, flow, left):
        from_client = bool(self.rng.random() < 0.35)
        cells = 1 if from_client else int(self.rng.integers(1, 12))
        flow.send(from_client, b"".join(self.tls._sealed(from_client, 23, 514) for _ in range(cells)))


class _PeerWire(_Session):
    """A BitTorrent peer connection (BEP 3): handshake, extension handshake (BEP 10),
    bitfield, interested/unchoke, requests of 16 KiB blocks and the pieces that answer them."""

    def __init__(self, cap, info_hash: bytes):
        super().__init__(cap, int(cap.rng.integers(10000, 65000)), "peer")
        self.info_hash, self.pieces = info_hash, int(cap.rng.integers(300, 3000))

    def opening(self, flow):
        def handshake(peer_id: bytes) -> bytes:
            return b"\x13BitTorrent protocol" + b"\0\0\0\0\0\x10\0\x05" + self.info_hash + peer_id
        flow.send(True, handshake(b"-UT3450-" + self.rng.bytes(12)))
        flow.send(False, handshake(b"-TR2840-" + self.rng.bytes(12)))
        ext = b"d1:md11:ut_metadatai2e6:ut_pexi1ee1:pi" + str(int(self.rng.integers(10000, 65000))).encode() + b"e1:v15:\xc2\xb5Torrent 3.4.5e"
        flow.send(True, struct.pack("!IBB", len(ext) + 2, 20, 0) + ext)
        bitfield = self.rng.bytes(-(-self.pieces // 8))
        flow.send(False, struct.pack("!IB", len(bitfield) + 1, 5) + bitfield)
        flow.send(True, struct.pack("!IB", 1, 2))  # interested
        flow.send(False, struct.pack("!IB", 1, 1))  # unchoke

    def message(self, flow, left):
        piece = int(self.rng.integers(0, self.pieces))
        requests = b"".join(struct.pack("!IBIII", 13, 6, piece, k * 16384, 16384) for k in range(4))
        flow.send(True, requests + (struct.pack("!IBI", 5, 4, int(self.rng.integers(0, self.pieces)))
                                    if self.rng.random() < 0.3 else b""))
        if left > 2:
            blocks = max(1, min(4, _room(self.cap, left) // 16384))
            flow.send(False, b"".join(struct.pack("!IBII", 9 + 16384, 7, piece, k * 16384) + self.cap.random(16384)
                                      for k in range(blocks)))


class _Obfuscated(_Session):
    """Skype's TCP streams: RC4-obfuscated from the first byte (no clear framing)."""

    def __init__(self, cap, upload: bool):
        super().__init__(cap, int(cap.rng.integers(1024, 65000)), "peer")
        self.upload = upload

    def opening(self, flow):
        flow.send(True, self.cap.random(14))
        flow.send(False, self.cap.random(14))

    def message(self, flow, left):
        flow.send(self.upload, self.cap.random(min(_room(self.cap, left), _size(self.cap, 6000, 500))))
        flow.send(not self.upload, self.cap.random(_size(self.cap, 30, 8)))


# --------------------------------------------------------------------------- UDP protocols

class _Udp:
    """One UDP flow between the client and a server."""

    def __init__(self, cap: _Capture, sport: int, service: str, cport: int | None = None):
        self.cap, self.server = cap, cap.server()
        self.sport, self.cport = sport, cport or int(cap.rng.integers(49152, 65535))
        self.ttl = _server_traits(cap.rng, service)[0]
        self.server_ip_id = int(cap.rng.integers(0, 1 << 16))
        self.packets = 0

    def send(self, time_us: int, from_client: bool, payload: bytes) -> None:
        cap = self.cap
        if from_client:
            packet = _ipv4(cap.client, self.server, 17, _udp(cap.client, self.server, self.cport, self.sport, payload),
                           cap.next_ip_id(), 128)
        else:
            self.server_ip_id += 1
            packet = _ipv4(self.server, cap.client, 17, _udp(self.server, cap.client, self.sport, self.cport, payload),
                           self.server_ip_id, self.ttl)
        cap.emit(time_us, packet)
        self.packets += 1


def _stun(cap: _Capture, msg_type: int, attributes: list[tuple[int, bytes]], key: bytes | None) -> bytes:
    """A STUN message (RFC 5389 §6, §15): header with the magic cookie, attributes, then
    MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32 xor 0x5354554E)."""
    tid = cap.rng.bytes(12)
    body = b"".join(struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4) for t, v in attributes)
    if key is not None:
        header = struct.pack("!HHI", msg_type, len(body) + 24, 0x2112A442) + tid
        body += struct.pack("!HH", 0x0008, 20) + hmac.new(key, header + body, hashlib.sha1).digest()
    header = struct.pack("!HHI", msg_type, len(body) + 8, 0x2112A442) + tid
    crc = zlib.crc32(header + body) ^ 0x5354554E
    return header + body + struct.pack("!HHI", 0x8028, 4, crc)


def _rtp_header(payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool = False,
                extension: bytes = b"") -> bytes:
    """RTP fixed header (RFC 3550 §5.1), with a one-byte-header extension (RFC 5285) if any."""
    first = 0x80 | (0x10 if extension else 0)
    header = struct.pack("!BBHII", first, payload_type | (0x80 if marker else 0), seq & 0xFFFF,
                         timestamp & 0xFFFFFFFF, ssrc)
    if extension:
        extension += b"\0" * (-len(extension) % 4)
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return header


def _g711(cap: _Capture, n: int, alaw: bool) -> bytes:
    """n G.711 samples (ITU-T G.711) of speech-like noise: talk spurts and near silence."""
    loud = cap.rng.random() < 0.6
    samples = np.clip(cap.rng.laplace(0, 2500 if loud else 40, n), -32635, 32635).astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.abs(samples) + 132
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    ulaw = (~(sign | (exponent << 4) | mantissa)) & 0xFF
    return (ulaw ^ 0x55 if alaw else ulaw).astype(np.uint8).tobytes()  # A-law here: u-law's bits, even bits inverted


def _webrtc_call(cap: _Capture, budget: int, time_us: int, google: bool) -> None:
    """A browser call (Hangouts or Facebook): ICE connectivity checks over STUN, then SRTP
    Opus audio with the abs-send-time / audio-level extensions and SRTCP reports."""
    flow = _Udp(cap, 19305 if google else 3478, "google" if google else "facebook")
    key = cap.rng.bytes(16)
    ufrag = [("".join(cap.rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789+/"), 4 if google else 16)))
             for _ in range(2)]
    ssrc = [int(cap.rng.integers(0, 1 << 32)) for _ in range(2)]
    seq = [int(cap.rng.integers(0, 1 << 16)) for _ in range(2)]
    srtcp_index = [0, 0]
    t = time_us
    for i in range(budget):
        side = i % 2
        from_client = side == 0
        if i < 4 or cap.rng.random() < 0.03:  # binding request / success response (keep-alive)
            if i % 2 == 0:
                attrs = [(0x0006, f"{ufrag[1]}:{ufrag[0]}".encode()), (0xC057, b"\0\0\0\x02"),
                         (0x802A, cap.rng.bytes(8)), (0x0024, struct.pack("!I", int(cap.rng.integers(1 << 24, 1 << 31))))]
                payload = _stun(cap, 0x0001, attrs, key)
            else:
                xport = flow.cport ^ 0x2112
                attrs = [(0x0020, struct.pack("!BBH", 0, 1, xport) + bytes(a ^ b for a, b in zip(cap.client, b"\x21\x12\xa4\x42")))]
                payload = _stun(cap, 0x0101, attrs, key)
        elif cap.rng.random() < 0.06:  # SRTCP (RFC 3711 §3.4): RTCP header, encrypted rest, E|index, tag
            srtcp_index[side] += 1
            payload = (struct.pack("!BBHI", 0x80, 200, 6, ssrc[side]) + cap.random(20)
                       + struct.pack("!I", 0x80000000 | srtcp_index[side]) + cap.random(10))
        else:  # SRTP: Opus (PT 111), one-byte extensions, encrypted payload, 80-bit tag
            ext = (b"\x10" + bytes([int(cap.rng.integers(0, 128))])  # id 1: ssrc-audio-level
                   + b"\x32" + cap.rng.bytes(3))  # id 3: abs-send-time
            header = _rtp_header(111, seq[side], seq[side] * 960, ssrc[side], extension=ext)
            seq[side] += 1
            payload = header + cap.random(int(cap.rng.integers(40, 140))) + cap.random(10)
        flow.send(t + int(cap.rng.integers(0, 3000)), from_client, payload)
        t += 10_000


def _sip_rtp_call(cap: _Capture, budget: int, time_us: int) -> None:
    """Voipbuster: SIP over UDP 5060 with SDP (RFC 3261, RFC 4566), then plain RTP carrying
    G.711 (PT 0 PCMU or 8 PCMA, 160 samples per 20 ms) and RTCP sender reports (RFC 3550)."""
    sip = _Udp(cap, 5060, "voipbuster", cport=5060)
    user, call_id = str(int(cap.rng.integers(10**9, 10**10))), cap.rng.bytes(8).hex()
    alaw = cap.rng.random() < 0.5
    media_port = int(cap.rng.integers(8000, 9000)) * 2
    via = f"Via: SIP/2.0/UDP {'.'.join(map(str, cap.client))}:5060;branch=z9hG4bK{cap.rng.bytes(6).hex()}\r\n"
    sdp = (f"v=0\r\no=- {int(cap.rng.integers(1, 1 << 30))} 1 IN IP4 {'.'.join(map(str, cap.client))}\r\ns=-\r\n"
           f"c=IN IP4 {'.'.join(map(str, cap.client))}\r\nt=0 0\r\nm=audio {media_port} RTP/AVP {8 if alaw else 0} 101\r\n"
           f"a=rtpmap:{8 if alaw else 0} {'PCMA' if alaw else 'PCMU'}/8000\r\na=rtpmap:101 telephone-event/8000\r\n")
    invite = (f"INVITE sip:{int(cap.rng.integers(10**9, 10**10))}@sip.voipbuster.com SIP/2.0\r\n{via}"
              f"From: <sip:{user}@sip.voipbuster.com>;tag={cap.rng.bytes(4).hex()}\r\n"
              f"To: <sip:{int(cap.rng.integers(10**9, 10**10))}@sip.voipbuster.com>\r\nCall-ID: {call_id}\r\n"
              f"CSeq: 1 INVITE\r\nContact: <sip:{user}@{'.'.join(map(str, cap.client))}:5060>\r\n"
              f"User-Agent: VoipBuster 4.14\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
    sip.send(time_us, True, invite.encode())
    for k, status in enumerate(("100 Trying", "180 Ringing", "200 OK")):
        sip.send(time_us + 40_000 + k * 300_000, False,
                 f"SIP/2.0 {status}\r\n{via}Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".encode())
    sip.send(time_us + 1_000_000, True, f"ACK sip:sip.voipbuster.com SIP/2.0\r\n{via}Call-ID: {call_id}\r\nCSeq: 1 ACK\r\n\r\n".encode())
    rtp = _Udp(cap, int(cap.rng.integers(10000, 20000)) * 2, "voipbuster", cport=media_port)
    rtcp = _Udp(cap, rtp.sport + 1, "voipbuster", cport=media_port + 1)
    rtcp.server = rtp.server
    ssrc = [int(cap.rng.integers(0, 1 << 32)) for _ in range(2)]
    seq = [int(cap.rng.integers(0, 1 << 16)) for _ in range(2)]
    t = time_us + 1_100_000
    for i in range(max(0, budget - 5)):
        side = i % 2
        if cap.rng.random() < 0.04:  # RTCP SR + SDES CNAME
            cname = f"{user}@voipbuster".encode()
            sdes = struct.pack("!BBHIBB", 0x81, 202, (4 + 2 + len(cname) + 4) // 4, ssrc[side], 1, len(cname)) + cname
            sdes += b"\0" * (-len(sdes) % 4 or 4)
            sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc[side], int(cap.rng.integers(0, 1 << 32)),
                             int(cap.rng.integers(0, 1 << 32)), seq[side] * 160, i, i * 172)
            rtcp.send(t, side == 0, sr + sdes)
        else:
            rtp.send(t + int(cap.rng.integers(0, 2000)), side == 0,
                     _rtp_header(8 if alaw else 0, seq[side], seq[side] * 160, ssrc[side]) + _g711(cap, 160, alaw))
            seq[side] += 1
        t += 10_000


def _skype_udp(cap: _Capture, budget: int, time_us: int, voice: bool) -> None:
    """Skype's UDP (2016): a 2-byte frame id and a function byte (0x0d: data, 0x02: control,
    0x07: resend), the rest RC4-obfuscated (Bonfiglio et al., SIGCOMM 2007)."""
    flow = _Udp(cap, int(cap.rng.integers(1024, 65000)), "peer")
    t = time_us
    for i in range(budget):
        function = 0x0d if voice and cap.rng.random() < 0.9 else int(cap.rng.choice([0x02, 0x07, 0x0d]))
        size = int(cap.rng.integers(30, 160)) if voice else int(cap.rng.integers(10, 90))
        flow.send(t, i % 2 == 0, cap.rng.bytes(2) + bytes([function]) + cap.random(size))
        t += 20_000 if voice else int(cap.rng.exponential(300_000))


def _quic(cap: _Capture, budget: int, time_us: int, server_name: str) -> None:
    """Chrome to YouTube over gQUIC Q035 on UDP 443: public header (flags, 8-byte connection
    id, the version in the client's packets until the server answers, packet number), the
    client's padded CHLO in clear (with its message hash), then AEAD-sealed packets."""
    flow = _Udp(cap, 443, "google")
    cid = cap.rng.bytes(8)
    pn = [1, 1]
    t = time_us
    for i in range(budget):
        if i == 0:  # flags 0x09: version + 8-byte cid, 1-byte packet number
            sni = server_name.encode()
            chlo = (b"CHLO" + struct.pack("<HH", 3, 0) + b"SNI\0" + struct.pack("<I", len(sni)) + b"VER\0"
                    + struct.pack("<I", len(sni) + 4) + b"UAID" + struct.pack("<I", len(sni) + 4 + 30)
                    + sni + b"Q035" + b"Chrome/47.0.2526.111 Windows NT")
            frame = b"\xa0\x01\x00" + struct.pack("<H", len(chlo)) + chlo  # stream 1
            head = b"\x09" + cid + b"Q035" + bytes([pn[0]])
            payload = head + cap.rng.bytes(12) + frame
            payload += b"\0" * (1350 - len(payload))  # PADDING frame to a full packet
            flow.send(t, True, payload)
            pn[0] += 1
        else:
            from_client = cap.rng.random() < 0.2
            side = 0 if from_client else 1
            if from_client:
                flags = 0x09 if pn[0] < 3 else (0x18 if pn[0] > 255 else 0x08)
                head = bytes([flags]) + cid + (b"Q035" if flags & 1 else b"")
                size = int(cap.rng.integers(30, 60))
            else:
                flags = 0x0C if pn[1] < 3 else (0x18 if pn[1] > 255 else 0x08)  # 0x04: diversification nonce
                head = bytes([flags]) + cid + (cap.random(32) if flags & 0x04 else b"")
                size = 1350 - len(head) - 2 if cap.rng.random() < 0.85 else int(cap.rng.integers(40, 1200))
            head += struct.pack("!H", pn[side])[-2 if flags & 0x10 else -1:]
            flow.send(t, from_client, head + cap.random(size))  # sealed: frames + 12-byte tag
            pn[side] += 1
        t += int(cap.rng.exponential(4_000)) + 1


def _utp_dht(cap: _Capture, budget: int, time_us: int, info_hash: bytes) -> None:
    """BitTorrent over UDP: DHT get_peers queries and answers (BEP 5, bencoded), and a uTP
    (BEP 29) connection: 20-byte header (type/version, extension, connection id, timestamps,
    window, seq and ack numbers) carrying peer-wire data."""
    t = time_us
    node_id = cap.rng.bytes(20)
    for _ in range(min(4, budget // 4)):
        dht = _Udp(cap, int(cap.rng.integers(1024, 65535)), "peer", cport=int(cap.rng.integers(10000, 65000)))
        tid = cap.rng.bytes(2)
        dht.send(t, True, b"d1:ad2:id20:" + node_id + b"9:info_hash20:" + info_hash + b"e1:q9:get_peers1:t2:" + tid
                 + b"1:v4:UT\x01\x02" + b"1:y1:qe")
        nodes = cap.rng.bytes(26 * 8)
        dht.send(t + 60_000, False, b"d1:rd2:id20:" + cap.rng.bytes(20) + b"5:nodes208:" + nodes + b"5:token8:"
                 + cap.rng.bytes(8) + b"e1:t2:" + tid + b"1:y1:re")
        t += 30_000
        budget -= 2
    utp = _Udp(cap, int(cap.rng.integers(10000, 65000)), "peer")
    conn = int(cap.rng.integers(0, 1 << 16))
    seq = [int(cap.rng.integers(0, 1 << 16)), 0]

    def header(kind: int, from_client: bool) -> bytes:
        side = 0 if from_client else 1
        return struct.pack("!BBHIIIHH", kind << 4 | 1, 0, (conn + (1 if from_client and kind != 4 else 0)) & 0xFFFF,
                           (t & 0xFFFFFFFF), int(cap.rng.integers(0, 1 << 20)), 1 << 20,
                           seq[side] & 0xFFFF, seq[1 - side] & 0xFFFF)
    utp.send(t, True, header(4, True))  # ST_SYN
    seq[1] = int(cap.rng.integers(0, 1 << 16))
    utp.send(t + 50_000, False, header(2, False))  # ST_STATE
    for i in range(max(0, budget - 2)):
        t += int(cap.rng.exponential(5_000)) + 1
        from_client = cap.rng.random() < 0.3
        side = 0 if from_client else 1
        seq[side] += 1
        if from_client:
            utp.send(t, True, header(2 if cap.rng.random() < 0.7 else 0, True)
                     + struct.pack("!IBIII", 13, 6, int(cap.rng.integers(0, 3000)), 0, 16384))
        else:  # ST_DATA with a slice of a piece message
            utp.send(t, False, header(0, False) + cap.random(int(cap.rng.integers(900, 1382 if cap.mss == _MSS else 1300))))


# --------------------------------------------------------------------------- applications

def _browser(cap: _Capture, server_name: str, cert: tuple[str, str, str], google: bool) -> _Tls:
    return _Tls(cap, "chrome", server_name, cert, _CHACHA if google else _GCM, alpn=True)


def _inner_traffic(cap: _Capture, stem_labels: labels.IscxLabels, budget: int) -> None:
    """The application's own traffic: a few flows sharing `budget` packets."""
    app = _APPS[cap.app]
    kind = "" if stem_labels.traffic < 0 else _TRAFFIC[stem_labels.traffic].removeprefix("VPN: ")
    rng = cap.rng
    sessions: list[tuple[str, object]] = []  # (DNS name or "", callable(budget, time))
    shares = None  # of the budget, per session (default: equal)

    def tls(port, service, name, cert, client, aead, pattern, record_max=16384, plain=(), gap=3_000):
        return lambda b, t: _TlsSession(cap, port, service, _Tls(cap, client, name, cert, aead, alpn=client == "chrome"),
                                        pattern, record_max, list(plain), gap).run(b, t)
    google_cert = ("*.google.com", "Google Internet Authority G2", "Google Inc")
    if app in ("AIM Chat", "ICQ"):
        host = "login.icq.com" if app == "ICQ" else "login.oscar.aol.com"
        sessions = [(host, lambda b, t: _Oscar(cap, app == "ICQ").run(b, t)) for _ in range(3)]
    elif app == "Email":
        cert = ("smtp.gmail.com", "Google Internet Authority G2", "Google Inc")
        smtp = [(False, b"220 smtp.gmail.com ESMTP q2sm23781443qkd.13 - gsmtp\r\n"),
                (True, b"EHLO [" + ".".join(map(str, cap.client)).encode() + b"]\r\n"),
                (False, b"250-smtp.gmail.com at your service, [" + ".".join(map(str, cap.client)).encode()
                 + b"]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
                 b"250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"),
                (True, b"STARTTLS\r\n"), (False, b"220 2.0.0 Ready to start TLS\r\n")]
        sessions = [("smtp.gmail.com", tls(587, "mail", "smtp.gmail.com", cert, "nss", _GCM, "bulk_up", plain=smtp)),
                    ("imap.gmail.com", tls(993, "mail", "imap.gmail.com", ("imap.gmail.com",) + cert[1:], "nss", _GCM, "email")),
                    ("pop.gmail.com", tls(995, "mail", "pop.gmail.com", ("pop.gmail.com",) + cert[1:], "nss", _GCM, "email"))]
    elif app == "FTPS":
        cert = ("ftp.iscx.ca", "ftp.iscx.ca", "ISCX")  # FileZilla Server's self-signed certificate
        control = [(False, b"220-FileZilla Server 0.9.53 beta\r\n220 Welcome\r\n"), (True, b"AUTH TLS\r\n"),
                   (False, b"234 Using authentication type TLS\r\n")]
        up = "up" in cap.name.lower()
        sessions = [("ftp.iscx.ca", tls(21, "ftp", "", cert, "gnutls", _GCM, "chat", plain=control, gap=40_000))]
        for _ in range(2):  # data connections on passive ports: resumed TLS sessions
            port = int(rng.integers(50000, 51000))
            sessions.append(("", lambda b, t, port=port: _TlsSession(
                cap, port, "ftp", _Tls(cap, "gnutls", "", cert, _GCM, resumed=True),
                "bulk_up" if up else "bulk_down").run(b, t)))
    elif app == "Gmail":
        sessions = [("mtalk.google.com", tls(5228, "google", "mtalk.google.com", ("mtalk.google.com",) + google_cert[1:],
                                             "chrome", _CHACHA, "chat", 4096, gap=40_000)) for _ in range(3)]
    elif app in ("Facebook", "Hangouts") and kind == "VoIP":
        google = app == "Hangouts"
        name = "hangouts.google.com" if google else "edge-chat.facebook.com"
        cert = google_cert if google else ("*.facebook.com", "DigiCert SHA2 High Assurance Server CA", "Facebook, Inc.")
        sessions = [(name, tls(443, "google" if google else "facebook", name, cert, "chrome",
                               _CHACHA if google else _GCM, "chat", gap=40_000))]
        sessions += [("", lambda b, t: _webrtc_call(cap, b, t, google)) for _ in range(2)]
        shares = (0.2, 0.4, 0.4)
    elif app in ("Facebook", "Hangouts"):
        google = app == "Hangouts"
        names = (["hangouts.google.com", "clients4.google.com", "0.client-channel.google.com"] if google
                 else ["edge-chat.facebook.com", "www.facebook.com", "2-edge-chat.facebook.com"])
        cert = google_cert if google else ("*.facebook.com", "DigiCert SHA2 High Assurance Server CA", "Facebook, Inc.")
        sessions = [(n, tls(443, "google" if google else "facebook", n, cert, "chrome", _CHACHA if google else _GCM,
                            "chat", gap=40_000)) for n in names]
    elif app in ("Netflix", "Vimeo", "Youtube"):
        if app == "Netflix":
            name, cert, service, google = ("ipv4-c001-yyz001-ix.1.oca.nflxvideo.net",
                                           ("*.1.oca.nflxvideo.net", "DigiCert SHA2 Secure Server CA", "Netflix, Inc."),
                                           "netflix", False)
        elif app == "Vimeo":
            name, cert, service, google = ("skyfire.vimeocdn.com", ("*.vimeocdn.com", "GlobalSign CloudSSL CA", "Vimeo, Inc."),
                                           "akamai", False)
        else:
            name, cert, service, google = ("r4---sn-ab5l6n7s.googlevideo.com", ("*.googlevideo.com",) + google_cert[1:],
                                           "google", True)
        sessions = [(name, tls(443, service, name, cert, "chrome", _CHACHA if google else _GCM, "bulk_down"))
                    for _ in range(2)]
        if app == "Youtube":  # most of YouTube's video came over QUIC in Chrome
            sessions.append((name, lambda b, t: _quic(cap, b, t, name)))
            shares = (0.25, 0.25, 0.5)
    elif app in ("SCP", "SFTP"):
        up = "up" in cap.name.lower()
        sessions = [("", lambda b, t: _Ssh(cap, app == "SFTP", up).run(b, t)) for _ in range(3)]
    elif app == "Skype":
        if kind == "Chat":
            cert = ("*.gateway.messenger.live.com", "Microsoft IT SSL SHA2", "Microsoft Corporation")
            sessions = [("client-s.gateway.messenger.live.com",
                         tls(443, "microsoft", "client-s.gateway.messenger.live.com", cert, "schannel", _GCM, "chat",
                             gap=40_000)) for _ in range(2)]
            sessions.append(("", lambda b, t: _skype_udp(cap, b, t, False)))
        elif kind == "File Transfer":
            sessions = [("", lambda b, t: _Obfuscated(cap, bool(rng.random() < 0.5)).run(b, t)) for _ in range(2)]
            sessions.append(("", lambda b, t: _skype_udp(cap, b, t, False)))
            shares = (0.45, 0.45, 0.1)
        else:
            sessions = [("", lambda b, t: _skype_udp(cap, b, t, True)) for _ in range(2)]
            sessions.append(("", lambda b, t: _skype_udp(cap, b, t, False)))
            shares = (0.45, 0.45, 0.1)
    elif app == "Spotify":
        sessions = [("ap.spotify.com", lambda b, t: _Spotify(cap).run(b, t)) for _ in range(3)]
    elif app == "Torrent":
        info_hash = rng.bytes(20)
        sessions = [("", lambda b, t: _PeerWire(cap, info_hash).run(b, t)) for _ in range(2)]
        sessions.append(("router.utorrent.com", lambda b, t: _utp_dht(cap, b, t, info_hash)))
    elif app == "Tor":
        sessions = [("", lambda b, t: _TorLink(cap).run(b, t)) for _ in range(3)]
    elif app == "Voipbuster":
        sessions = [("sip.voipbuster.com", lambda b, t: _sip_rtp_call(cap, b, t)) for _ in range(2)]
    else:
        raise ValueError(f"no traffic for {app}")
    shares = shares or (1 / len(sessions),) * len(sessions)
    for k, ((name, run), share) in enumerate(zip(sessions, shares)):
        start = k * 700_000
        if name:
            cap.dns_lookup(start, name)
        run(max(10, int(budget * share) - (2 if name else 0)), start + 20_000)


def _tunnel(cap: _Capture, inner: list[tuple[int, int, bytes, bool]], inner_client: bytes) -> None:
    """Re-emits `inner` packets inside OpenVPN-over-UDP tunnels (OpenVPN 2.4 wire format):
    each session starts with the control channel (P_CONTROL_HARD_RESET_CLIENT/SERVER_V2,
    P_ACK_V1, P_CONTROL_V1 carrying the TLS handshake), then P_DATA_V2 packets: opcode 9 and
    key id 0, a 3-byte peer id, a 4-byte packet id, the 16-byte AES-GCM tag and the encrypted
    inner packet. The client reconnects a few times, each session a new UDP flow."""
    vpn_server = bytes([198, 7, 62, 204])
    cap.dns_lookup(0, "ca.vpn.example.com")
    inner.sort()
    for session in range(_VPN_SESSIONS):
        part = inner[session * len(inner) // _VPN_SESSIONS:(session + 1) * len(inner) // _VPN_SESSIONS]
        if not part:
            continue
        flow = _Udp(cap, 1194, "vpn", cport=int(cap.rng.integers(49152, 65535)))
        flow.server = vpn_server
        session_id = [cap.rng.bytes(8), cap.rng.bytes(8)]
        start = part[0][0] - 5_000
        # opcode << 3 | key id; session id; packet-id array; (remote session id); message packet id
        flow.send(start, True, b"\x38" + session_id[0] + b"\x00" + struct.pack("!I", 0))
        flow.send(start + 1_000, False, b"\x40" + session_id[1] + b"\x01" + struct.pack("!I", 0) + session_id[0]
                  + struct.pack("!I", 0))
        hello = _Tls(cap, "openssl", "", ("", "", ""), _GCM).client_hello()
        flow.send(start + 2_000, True, b"\x20" + session_id[0] + b"\x01" + struct.pack("!I", 0) + session_id[1]
                  + struct.pack("!I", 1) + hello)
        flow.send(start + 3_000, False, b"\x28" + session_id[1] + b"\x01" + struct.pack("!I", 1) + session_id[0])
        peer_id = cap.rng.bytes(3)
        for packet_id, (time_us, _, packet, _) in enumerate(part, start=1):
            from_client = packet[12:16] == inner_client
            flow.send(time_us, from_client, b"\x48" + peer_id + struct.pack("!I", packet_id) + cap.random(16)
                      + cap.random(len(packet)))


def capture_frames(name: str, packets: int, seed: int) -> list[tuple[int, bytes]]:
    """(timestamp µs, Ethernet frame) of the demo capture `name`, in time order."""
    stem_labels = labels.iscx_labels(name)
    if stem_labels is None:
        raise ValueError(f"{name!r} is not a known ISCX capture name")
    rng = np.random.default_rng([seed, DEMO_CAPTURES.index(name)])
    cap = _Capture(rng, name, stem_labels.app, stem_labels.traffic)
    if stem_labels.vpn:
        inner = _Capture(rng, name, stem_labels.app, stem_labels.traffic, mss=_VPN_MSS)
        inner.client = bytes([10, 8, 0, int(rng.integers(2, 250))])
        _inner_traffic(inner, stem_labels, packets - 2 - 5 * _VPN_SESSIONS)
        cap.client_ip_id = inner.client_ip_id
        _tunnel(cap, [item for item in inner.items if item[3]], inner.client)
    else:
        _inner_traffic(cap, stem_labels, packets - 2)
    if DEMO_CAPTURES.index(name) % 3 == 0:
        _background(cap, 300_000)
    start = _START_TIME_US + DEMO_CAPTURES.index(name) * 3_600_000_000
    return [(start + t, packet if not is_ip else _ethernet(packet)) for t, _, packet, is_ip in sorted(cap.items)]


def _background(cap: _Capture, time_us: int) -> None:
    """An ARP request (dropped) and one SSDP NOTIFY, byte-identical in every capture that has it."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x00\x1b\x21\x3a\x4f\x5c",
                      cap.client, b"\0" * 6, _CLIENT_NET + b"\x01")
    cap.emit(time_us, _ethernet(arp, 0x0806), is_ip=False)
    notify = (b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n"
              b"NTS: ssdp:alive\r\nLOCATION: http://131.202.240.150:49152/description.xml\r\n\r\n")
    printer, group = _CLIENT_NET + b"\x96", bytes([239, 255, 255, 250])
    cap.emit(time_us + 1, _ipv4(printer, group, 17, _udp(printer, group, 1900, 1900, notify), 0, 4))


def _pcap_bytes(frames: list[tuple[int, bytes]]) -> bytes:
    out = [struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for t, frame in frames:
        out.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame)
    return b"".join(out)


def _pcapng_bytes(frames: list[tuple[int, bytes]]) -> bytes:
    def block(block_type: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", block_type, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = [block(PCAPNG_SHB, struct.pack("<IHHq", PCAPNG_BOM, 1, 0, -1)),
           block(_PCAPNG_IDB, struct.pack("<HHI", _LINKTYPE_ETHERNET, 0, 65535))]  # µs timestamps
    for t, frame in frames:
        out.append(block(_PCAPNG_EPB, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame))
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


def define_flags() -> None:
    """The command's flags, defined when it runs (not on import), so that importing this module
    next to other absl programs cannot clash over their names."""
    from absl import flags

    flags.DEFINE_integer("packets_per_file", DEFAULT_PACKETS_PER_FILE,
                         "Frames per capture (apps with other than 4 demo captures are scaled so "
                         "every app gets about 4x this).", lower_bound=1)
    flags.DEFINE_integer("seed", DEFAULT_SEED, "Seed of the generator.")
    flags.DEFINE_bool("zip", False, "Write the five archives as .zip files.")


def main(argv: list[str]) -> None:
    from absl import app, flags

    if len(argv) != 2:
        raise app.UsageError("usage: python -m mtc_keras.demo_data DIR [--packets_per_file N] [--seed S] [--zip]")
    directory, values = argv[1], flags.FLAGS
    files = write_demo_captures(directory, values.packets_per_file, values.seed,
                                zip_archives=ARCHIVES if values.zip else ())
    total = sum(f.stat().st_size for f in files)
    print(f"wrote {len(files)} files, {total / 1e6:.1f} MB, under {directory}")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
