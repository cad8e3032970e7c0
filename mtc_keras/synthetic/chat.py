"""Chat protocols with their own framing: OSCAR (AIM, ICQ) on 5190. (XMPP and the web chats
run over TLS: ``tls.TlsSession``.)"""

from __future__ import annotations

import struct

from mtc_keras.synthetic.ip import Capture, Session


WORDS = ("hi", "hey", "ok", "yes", "no", "sure", "thanks", "see", "you", "later", "are", "we",
           "still", "on", "for", "tonight", "the", "meeting", "is", "at", "lol", "what", "time",
           "call", "me", "when", "free", "sounds", "good", "i", "will", "send", "it", "now", "bye")


class Oscar(Session):
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
        text = words(self.cap, 1, 9)
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


def words(cap: Capture, lo: int, hi: int) -> str:
    """A chat line of `lo` to `hi` words."""
    return " ".join(cap.rng.choice(WORDS, int(cap.rng.integers(lo, hi + 1))))
