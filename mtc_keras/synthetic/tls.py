"""TLS 1.2 (RFC 5246): the ClientHello of each client software, the server's flight with its
certificate chain, then AEAD records (AES-GCM with the explicit nonce, ChaCha20-Poly1305
without); and HTTPS-like sessions over it."""

from __future__ import annotations

import struct

from mtc_keras.synthetic.ip import Capture, Session, TcpFlow, message_size, room


# Cipher suites offered by each client (as their 2016 versions sent them) and what the
# server picks: (suites, extensions style, chosen suite).
TLS_CLIENTS = {
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
GCM, CHACHA = b"\xc0\x2f", b"\xcc\xa8"  # ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-CHACHA20-POLY1305


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 128 else (b"\x81" + bytes([n]) if n < 256 else b"\x82" + struct.pack("!H", n))
    return bytes([tag]) + length + body


def _der_name(common_name: str, org: str) -> bytes:
    def rdn(oid: bytes, value: str) -> bytes:
        return _der(0x31, _der(0x30, _der(0x06, oid) + _der(0x0C, value.encode())))
    return _der(0x30, rdn(b"\x55\x04\x06", "US") + rdn(b"\x55\x04\x0a", org) + rdn(b"\x55\x04\x03", common_name))


def _certificate(cap: Capture, subject: str, issuer: str, org: str) -> bytes:
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


def record(content_type: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes([content_type]) + version + struct.pack("!H", len(body)) + body


def _extension(ext_type: int, body: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(body)) + body


class Tls:
    """One TLS 1.2 connection: handshake messages in clear, then AEAD records (RFC 5246 §6.2)."""

    def __init__(self, cap: Capture, client: str, server_name: str, cert: tuple[str, str, str],
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
        suites = TLS_CLIENTS[self.client]
        session_id = b"\x20" + cap.random(32) if self.resumed or self.client != "openssl" else b"\x00"
        body = (b"\x03\x03" + cap.random(32) + session_id + struct.pack("!H", len(suites)) + suites
                + b"\x01\x00")
        if self.client == "chrome":  # Chrome pads its ClientHello to 512 bytes (RFC 7685)
            pad = 508 - (len(body) + 2 + len(exts)) - 4
            if pad > 0:
                exts += _extension(0x0015, b"\0" * pad)
        body += struct.pack("!H", len(exts)) + exts
        return record(22, _handshake(1, body), b"\x03\x01")

    def server_flight(self) -> bytes:
        cap = self.cap
        exts = _extension(0xFF01, b"\x00") + _extension(0x0017, b"")
        if self.alpn:
            exts += _extension(0x0010, b"\x00\x03\x02h2")
        hello = _handshake(2, b"\x03\x03" + cap.random(32) + b"\x20" + cap.random(32) + self.aead + b"\x00"
                           + struct.pack("!H", len(exts)) + exts)
        if self.resumed:
            return record(22, hello) + record(20, b"\x01") + self.sealed(False, 22, 16)
        subject, issuer, org = self.cert
        chain = b"".join(struct.pack("!I", len(c))[1:] + c for c in (
            _certificate(cap, subject, issuer, org), _certificate(cap, issuer, issuer.split()[0] + " Root CA", org)))
        certificate = _handshake(11, struct.pack("!I", len(chain))[1:] + chain)
        # ServerKeyExchange: named curve x25519/secp256r1 point, RSA-SHA256 signature
        kex = _handshake(12, b"\x03\x00\x17\x41\x04" + cap.random(64) + b"\x04\x01\x01\x00" + cap.random(256))
        return record(22, hello + certificate + kex + _handshake(14, b""))

    def client_finish(self) -> bytes:
        if self.resumed:
            return record(20, b"\x01") + self.sealed(True, 22, 16)
        return (record(22, _handshake(16, b"\x41\x04" + self.cap.random(64))) + record(20, b"\x01")
                + self.sealed(True, 22, 16))

    def server_finish(self) -> bytes:
        ticket = _handshake(4, struct.pack("!IH", 100800, 192) + self.cap.random(192))
        return record(22, ticket) + record(20, b"\x01") + self.sealed(False, 22, 16)

    def handshake(self, flow: TcpFlow) -> None:
        flow.send(True, self.client_hello())
        flow.send(False, self.server_flight())
        if self.resumed:
            flow.send(True, self.client_finish())
        else:
            flow.send(True, self.client_finish())
            flow.send(False, self.server_finish())

    def sealed(self, from_client: bool, content_type: int, n: int) -> bytes:
        side = 0 if from_client else 1
        if self.aead != CHACHA:  # AES-GCM's explicit nonce: the record sequence number (RFC 5288 §3)
            body = struct.pack("!Q", self.seq[side]) + self.cap.random(n + 16)
        else:  # ChaCha20-Poly1305: the nonce is implicit (RFC 7905 §2)
            body = self.cap.random(n + 16)
        self.seq[side] += 1
        return record(content_type, body)

    def data(self, from_client: bool, size: int, record_max: int = 16384) -> bytes:
        """`size` bytes of application data in records of at most `record_max` bytes."""
        out, size = [], max(1, size)
        while size > 0:
            n = min(size, record_max)
            out.append(self.sealed(from_client, 23, n))
            size -= n
        return b"".join(out)


class TlsSession(Session):
    """HTTPS / TLS-wrapped protocols. `pattern`: chat (small writes both ways), bulk_down,
    bulk_up (a transfer, the other side's short requests), email (commands, long answers)."""

    def __init__(self, cap, port, service, tls: Tls, pattern: str, record_max: int = 16384,
                 plain_opening: list[tuple[bool, bytes]] = (), gap_us: float = 3_000):
        super().__init__(cap, port, service, gap_us)
        self.tls, self.pattern, self.record_max, self.plain = tls, pattern, record_max, plain_opening

    def opening(self, flow):
        for from_client, text in self.plain:  # STARTTLS / AUTH TLS (in clear)
            flow.send(from_client, text)
        self.tls.handshake(flow)

    def message(self, flow, left):
        tls, space = self.tls, room(self.cap, left)
        if self.pattern == "chat":
            from_client = bool(self.rng.random() < 0.5)
            flow.send(from_client, tls.data(from_client, min(space, message_size(self.cap, 120, 20)), self.record_max))
        elif self.pattern == "email":
            flow.send(True, tls.data(True, message_size(self.cap, 40, 12), self.record_max))
            if left > 2:
                flow.send(False, tls.data(False, min(space, message_size(self.cap, 3000, 40)), self.record_max))
        else:
            up = self.pattern == "bulk_up"
            flow.send(not up, tls.data(not up, message_size(self.cap, 300, 60), self.record_max))  # request
            if left > 2:
                flow.send(up, tls.data(up, min(space, message_size(self.cap, 20000, 4000)), self.record_max))
