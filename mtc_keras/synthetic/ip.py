"""IPv4, TCP, UDP and Ethernet building; the capture being generated; TCP connections and UDP flows.

A non-VPN capture is taken on the client's LAN: a Windows client (TTL 128) in the capture
hosts' network, MSS 1460, each service's servers at their own distance and TCP window.

A VPN capture holds the tunnel's inner packets, in the clear, as the real ISCX VPN captures do
(see ``Capture``): the client at a tunnel address, 10.8.0.x or 10.8.8.x; the MSS the tunnel
leaves, 1320, 1350 or 1460, chosen per capture; the client's packets with TTL 64; and, per flow,
the server's packets with TTL 63 (three flows in four) or else 59, 54, 49 or 47 — the values the
real VPN captures show after 64 and 63. Where exactly the real captures were taken is not
documented: the rule reproduces the values the files hold, not a topology. None of it depends
on the application.
"""

from __future__ import annotations

import struct

import numpy as np

MSS = 1460
TUNNEL_MSS = (1320, 1350, 1460)
TUNNEL_NETS = (bytes([10, 8, 0]), bytes([10, 8, 8]))
TUNNEL_CLIENT_TTL = 64
TUNNEL_SERVER_TTL = 63  # three flows in four
TUNNEL_FAR_TTLS = (59, 54, 49, 47)  # the rest
CLIENT_NET = bytes([131, 202, 240])  # the capture hosts' network (UNB)
CLIENT_TTL = 128  # Windows

# Servers of each service as seen from the capture point: the initial TTL of their OS
# minus the hops to them, and the TCP window they advertise.
SERVICES = {
    "aol": (64 - 17, 16384), "icq": (64 - 21, 14600), "google": (64 - 9, 42540),
    "facebook": (64 - 12, 28960), "netflix": (64 - 13, 65535), "akamai": (64 - 10, 28960),
    "microsoft": (128 - 14, 8192), "spotify": (64 - 15, 14480), "mail": (64 - 9, 42540),
    "ftp": (128 - 6, 65535), "ssh": (64 - 3, 28960),
    "tor": (64 - 16, 29200), "voipbuster": (64 - 19, 5840),
}


def server_traits(rng: np.random.Generator, service: str) -> tuple[int, int]:
    """(TTL as seen on the LAN, TCP window) of one server; "peer": a P2P peer, any host anywhere."""
    if service == "peer":
        return (int(rng.choice([64, 128])) - int(rng.integers(6, 25)),
                int(rng.choice([65535, 64240, 8192, 29200, 14600])))
    ttl, window = SERVICES[service]
    return ttl - int(rng.integers(0, 2)), window  # servers of a service differ by a hop


def checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = int(np.frombuffer(data, ">u2").sum(dtype=np.uint64))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int, ttl: int) -> bytes:
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF,
                                   0x4000, ttl, proto, 0, src, dst))
    struct.pack_into("!H", header, 10, checksum(bytes(header)))
    return bytes(header) + payload


def l4_checksum(src: bytes, dst: bytes, proto: int, segment: bytes) -> int:
    return checksum(src + dst + struct.pack("!BBH", 0, proto, len(segment)) + segment)


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    header = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    csum = l4_checksum(src, dst, 17, header + payload) or 0xFFFF
    return header[:6] + struct.pack("!H", csum) + payload


CLIENT_MAC, GATEWAY_MAC = b"\x00\x1b\x21\x3a\x4f\x5c", b"\xb8\xac\x6f\x2e\x91\x07"


def ethernet(packet: bytes, ethertype: int = 0x0800) -> bytes:
    frame = CLIENT_MAC + GATEWAY_MAC + struct.pack("!H", ethertype) + packet
    return frame + b"\0" * (60 - len(frame))  # trailer padding the preprocessing must cut


class Capture:
    """Packets of one capture as (time in µs, order, IP packet or raw frame, is_ip).

    vpn: the inner packets of a VPN tunnel (the module docstring says how they differ)."""

    def __init__(self, rng: np.random.Generator, name: str, app: int, traffic: int, vpn: bool = False):
        self.rng, self.name, self.app, self.traffic, self.vpn = rng, name, app, traffic, vpn
        self.items: list[tuple[int, int, bytes, bool]] = []
        self.client = CLIENT_NET + bytes([int(rng.integers(2, 250))])
        self.client_ip_id = int(rng.integers(0, 1 << 16))
        self.mss, self.client_ttl, self.resolver = MSS, CLIENT_TTL, CLIENT_NET + b"\x01"
        self.public = self.client  # the client's address as servers on the internet see it
        if vpn:
            net = TUNNEL_NETS[int(rng.integers(0, len(TUNNEL_NETS)))]
            self.client, self.resolver = net + bytes([int(rng.integers(2, 250))]), net + b"\x01"
            self.mss, self.client_ttl = int(rng.choice(TUNNEL_MSS)), TUNNEL_CLIENT_TTL
            self.public = self.server()  # the VPN's exit address

    def emit(self, time_us: int, packet: bytes, is_ip: bool = True) -> None:
        self.items.append((time_us, len(self.items), packet, is_ip))

    def server(self) -> bytes:
        return bytes([int(self.rng.integers(23, 210)), int(self.rng.integers(0, 256)),
                      int(self.rng.integers(0, 256)), int(self.rng.integers(1, 255))])

    def server_traits(self, service: str) -> tuple[int, int]:
        """(TTL of the server's packets as captured, TCP window) of one server of ``service``."""
        ttl, window = server_traits(self.rng, service)
        if self.vpn:
            ttl = (TUNNEL_SERVER_TTL if self.rng.random() < 0.75
                   else int(self.rng.choice(TUNNEL_FAR_TTLS)))
        return ttl, window

    def next_ip_id(self) -> int:
        self.client_ip_id += 1
        return self.client_ip_id

    def random(self, n: int) -> bytes:
        """Ciphertext (or compressed media): uniform random bytes."""
        return self.rng.bytes(max(0, int(n)))

    def dns_lookup(self, time_us: int, name: str) -> None:
        """A DNS query and answer (dropped by the preprocessing)."""
        qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
        txid = int(self.rng.integers(0, 1 << 16))
        query = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
        answer = (struct.pack("!HHHHHH", txid, 0x8180, 1, 1, 0, 0) + qname + b"\x00\x01\x00\x01"
                  + b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", 300, 4) + self.server())
        resolver, port = self.resolver, int(self.rng.integers(49152, 65535))
        self.emit(time_us, ipv4(self.client, resolver, 17, udp(self.client, resolver, port, 53, query),
                                self.next_ip_id(), self.client_ttl))
        self.emit(time_us + 9_000, ipv4(resolver, self.client, 17,
                                        udp(resolver, self.client, 53, port, answer), 0, 64))


class TcpFlow:
    """One TCP connection: handshake, data segmented at the MSS, pure ACKs, teardown."""

    def __init__(self, cap: Capture, sport: int, time_us: int, gap_us: float, service: str):
        self.cap, self.rng = cap, cap.rng
        self.server, self.sport = cap.server(), sport
        self.cport = int(self.rng.integers(49152, 65535))
        self.time, self.gap = time_us, gap_us
        self.seq = [int(self.rng.integers(0, 1 << 32)), int(self.rng.integers(0, 1 << 32))]
        self.server_ttl, self.server_window = cap.server_traits(service)
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
        csum = l4_checksum(src, dst, 6, header + payload)
        segment = header[:16] + struct.pack("!H", csum) + header[18:] + payload
        if from_client:
            packet = ipv4(src, dst, 6, segment, self.cap.next_ip_id(), self.cap.client_ttl)
        else:
            self.server_ip_id += 1
            packet = ipv4(src, dst, 6, segment, self.server_ip_id, self.server_ttl)
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


class Udp:
    """One UDP flow between the client and a server."""

    def __init__(self, cap: Capture, sport: int, service: str, cport: int | None = None):
        self.cap, self.server = cap, cap.server()
        self.sport, self.cport = sport, cport or int(cap.rng.integers(49152, 65535))
        self.ttl = cap.server_traits(service)[0]
        self.server_ip_id = int(cap.rng.integers(0, 1 << 16))
        self.packets = 0

    def send(self, time_us: int, from_client: bool, payload: bytes) -> None:
        cap = self.cap
        if from_client:
            packet = ipv4(cap.client, self.server, 17, udp(cap.client, self.server, self.cport, self.sport, payload),
                          cap.next_ip_id(), cap.client_ttl)
        else:
            self.server_ip_id += 1
            packet = ipv4(self.server, cap.client, 17, udp(self.server, cap.client, self.sport, self.cport, payload),
                          self.server_ip_id, self.ttl)
        cap.emit(time_us, packet)
        self.packets += 1


# --------------------------------------------------------------------------- sessions

def message_size(cap: Capture, mean: float, lo: int = 1) -> int:
    """A message length: `lo` plus an exponential of mean `mean` (bytes)."""
    return lo + int(cap.rng.exponential(mean))


def room(cap: Capture, left: int) -> int:
    """Bytes that fit in about `left` packets (n segments cost about 1.5 n with the ACKs)."""
    return max(1, left * 2 // 3) * (cap.mss - 100)


class Session:
    """A TCP connection running one protocol: `opening` then `message(s)` until the budget."""

    def __init__(self, cap: Capture, port: int, service: str, gap_us: float = 3_000):
        self.cap, self.rng, self.port, self.service, self.gap = cap, cap.rng, port, service, gap_us

    def opening(self, flow: TcpFlow) -> None:
        pass

    def message(self, flow: TcpFlow, left: int) -> None:
        raise NotImplementedError

    def run(self, budget: int, time_us: int) -> TcpFlow:
        flow = TcpFlow(self.cap, self.port, time_us, self.gap, self.service)
        flow.open()
        self.opening(flow)
        while flow.packets < budget - 4:
            self.message(flow, budget - 4 - flow.packets)
        flow.close()
        return flow
