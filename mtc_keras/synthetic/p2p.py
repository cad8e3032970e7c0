"""BitTorrent: the peer wire protocol over TCP (BEP 3, BEP 10), uTP (BEP 29) and the DHT (BEP 5)."""

from __future__ import annotations

import struct

from mtc_keras.synthetic.ip import Capture, Session, Udp, room


class PeerWire(Session):
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
            blocks = max(1, min(4, room(self.cap, left) // 16384))
            flow.send(False, b"".join(struct.pack("!IBII", 9 + 16384, 7, piece, k * 16384) + self.cap.random(16384)
                                      for k in range(blocks)))


def utp_dht(cap: Capture, budget: int, time_us: int, info_hash: bytes) -> None:
    """BitTorrent over UDP: DHT get_peers queries and answers (BEP 5, bencoded), and a uTP
    (BEP 29) connection: 20-byte header (type/version, extension, connection id, timestamps,
    window, seq and ack numbers) carrying peer-wire data."""
    t = time_us
    node_id = cap.rng.bytes(20)
    for _ in range(min(4, budget // 4)):
        dht = Udp(cap, int(cap.rng.integers(1024, 65535)), "peer", cport=int(cap.rng.integers(10000, 65000)))
        tid = cap.rng.bytes(2)
        dht.send(t, True, b"d1:ad2:id20:" + node_id + b"9:info_hash20:" + info_hash + b"e1:q9:get_peers1:t2:" + tid
                 + b"1:v4:UT\x01\x02" + b"1:y1:qe")
        nodes = cap.rng.bytes(26 * 8)
        dht.send(t + 60_000, False, b"d1:rd2:id20:" + cap.rng.bytes(20) + b"5:nodes208:" + nodes + b"5:token8:"
                 + cap.rng.bytes(8) + b"e1:t2:" + tid + b"1:y1:re")
        t += 30_000
        budget -= 2
    utp = Udp(cap, int(cap.rng.integers(10000, 65000)), "peer")
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
            utp.send(t, False, header(0, False) + cap.random(int(cap.rng.integers(900, cap.mss - 78))))
