"""Streaming: Spotify's access-point protocol on TCP 4070 and YouTube's gQUIC on UDP 443.
(Netflix, Vimeo and YouTube's HTTPS are TLS bulk: ``tls.TlsSession``.)"""

from __future__ import annotations

import struct

from mtc_keras.synthetic.ip import Capture, Session, Udp, message_size, room


class Spotify(Session):
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
        flow.send(True, self.cap.random(3 + message_size(self.cap, 40, 10) + 4))  # requests, pongs
        if left > 2:  # audio data in channel packets of up to 4 KiB payload each
            total, out = min(room(self.cap, left), message_size(self.cap, 40000, 4000)), []
            while total > 0:
                out.append(self.cap.random(3 + 2 + min(total, 4096) + 4))
                total -= 4096
            flow.send(False, b"".join(out))


def quic(cap: Capture, budget: int, time_us: int, server_name: str) -> None:
    """Chrome to YouTube over gQUIC Q035 on UDP 443: public header (flags, 8-byte connection
    id, the version in the client's packets until the server answers, packet number), the
    client's padded CHLO in clear (with its message hash), then AEAD-sealed packets."""
    flow = Udp(cap, 443, "google")
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
