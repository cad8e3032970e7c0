"""Calls and Skype: STUN (RFC 5389) and SRTP / SRTCP (RFC 3711) of browser calls, SIP (RFC 3261)
with plain G.711 RTP and RTCP (RFC 3550), Skype's UDP framing and its obfuscated TCP streams."""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib

import numpy as np

from mtc_keras.synthetic.ip import Capture, Session, Udp, message_size, room


class SkypeTcp(Session):
    """Skype's TCP streams: RC4-obfuscated from the first byte (no clear framing)."""

    def __init__(self, cap, upload: bool):
        super().__init__(cap, int(cap.rng.integers(1024, 65000)), "peer")
        self.upload = upload

    def opening(self, flow):
        flow.send(True, self.cap.random(14))
        flow.send(False, self.cap.random(14))

    def message(self, flow, left):
        flow.send(self.upload, self.cap.random(min(room(self.cap, left), message_size(self.cap, 6000, 500))))
        flow.send(not self.upload, self.cap.random(message_size(self.cap, 30, 8)))


def stun(cap: Capture, msg_type: int, attributes: list[tuple[int, bytes]], key: bytes | None) -> bytes:
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


def rtp_header(payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool = False,
                extension: bytes = b"") -> bytes:
    """RTP fixed header (RFC 3550 §5.1), with a one-byte-header extension (RFC 5285) if any."""
    first = 0x80 | (0x10 if extension else 0)
    header = struct.pack("!BBHII", first, payload_type | (0x80 if marker else 0), seq & 0xFFFF,
                         timestamp & 0xFFFFFFFF, ssrc)
    if extension:
        extension += b"\0" * (-len(extension) % 4)
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return header


def g711(cap: Capture, n: int, alaw: bool) -> bytes:
    """n G.711 samples (ITU-T G.711) of speech-like noise: talk spurts and near silence."""
    loud = cap.rng.random() < 0.6
    samples = np.clip(cap.rng.laplace(0, 2500 if loud else 40, n), -32635, 32635).astype(np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.abs(samples) + 132
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 7, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    ulaw = (~(sign | (exponent << 4) | mantissa)) & 0xFF
    return (ulaw ^ 0x55 if alaw else ulaw).astype(np.uint8).tobytes()  # A-law here: u-law's bits, even bits inverted


def webrtc_call(cap: Capture, budget: int, time_us: int, google: bool) -> None:
    """A browser call (Hangouts or Facebook): ICE connectivity checks over STUN, then SRTP
    Opus audio with the abs-send-time / audio-level extensions and SRTCP reports."""
    flow = Udp(cap, 19305 if google else 3478, "google" if google else "facebook")
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
                payload = stun(cap, 0x0001, attrs, key)
            else:
                xport = flow.cport ^ 0x2112
                attrs = [(0x0020, struct.pack("!BBH", 0, 1, xport) + bytes(a ^ b for a, b in zip(cap.public, b"\x21\x12\xa4\x42")))]
                payload = stun(cap, 0x0101, attrs, key)
        elif cap.rng.random() < 0.06:  # SRTCP (RFC 3711 §3.4): RTCP header, encrypted rest, E|index, tag
            srtcp_index[side] += 1
            payload = (struct.pack("!BBHI", 0x80, 200, 6, ssrc[side]) + cap.random(20)
                       + struct.pack("!I", 0x80000000 | srtcp_index[side]) + cap.random(10))
        else:  # SRTP: Opus (PT 111), one-byte extensions, encrypted payload, 80-bit tag
            ext = (b"\x10" + bytes([int(cap.rng.integers(0, 128))])  # id 1: ssrc-audio-level
                   + b"\x32" + cap.rng.bytes(3))  # id 3: abs-send-time
            header = rtp_header(111, seq[side], seq[side] * 960, ssrc[side], extension=ext)
            seq[side] += 1
            payload = header + cap.random(int(cap.rng.integers(40, 140))) + cap.random(10)
        flow.send(t + int(cap.rng.integers(0, 3000)), from_client, payload)
        t += 10_000


def sip_rtp_call(cap: Capture, budget: int, time_us: int) -> None:
    """Voipbuster: SIP over UDP 5060 with SDP (RFC 3261, RFC 4566), then plain RTP carrying
    G.711 (PT 0 PCMU or 8 PCMA, 160 samples per 20 ms) and RTCP sender reports (RFC 3550)."""
    sip = Udp(cap, 5060, "voipbuster", cport=5060)
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
    rtp = Udp(cap, int(cap.rng.integers(10000, 20000)) * 2, "voipbuster", cport=media_port)
    rtcp = Udp(cap, rtp.sport + 1, "voipbuster", cport=media_port + 1)
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
                     rtp_header(8 if alaw else 0, seq[side], seq[side] * 160, ssrc[side]) + g711(cap, 160, alaw))
            seq[side] += 1
        t += 10_000


def skype_udp(cap: Capture, budget: int, time_us: int, voice: bool) -> None:
    """Skype's UDP (2016): a 2-byte frame id and a function byte (0x0d: data, 0x02: control,
    0x07: resend), the rest RC4-obfuscated (Bonfiglio et al., SIGCOMM 2007)."""
    flow = Udp(cap, int(cap.rng.integers(1024, 65000)), "peer")
    t = time_us
    for i in range(budget):
        function = 0x0d if voice and cap.rng.random() < 0.9 else int(cap.rng.choice([0x02, 0x07, 0x0d]))
        size = int(cap.rng.integers(30, 160)) if voice else int(cap.rng.integers(10, 90))
        flow.send(t, i % 2 == 0, cap.rng.bytes(2) + bytes([function]) + cap.random(size))
        t += 20_000 if voice else int(cap.rng.exponential(300_000))
