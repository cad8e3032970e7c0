"""Regenerates dummy_data/: a tiny USTC-TFC2016 manual folder for the builder's tests.

    python -m tfds_builders.ustc_tfc2016.make_dummy_data

Generated (scapy, fixed seed), laid out like the download: ``Benign/`` and ``Malware/``, with
- ordinary TCP / UDP conversations (BitTorrent, MySQL, Zeus, Nsis-ay), each with a few DNS
  queries and payload-less ACKs that the preprocessing drops, and one keep-alive vector repeated
  in several conversations (the flow split must keep it in one split);
- Facetime anonymised as in the public copy: every packet its own address pair, all UDP
  16403<->16403 (the builder must not key its flows on addresses there);
- Weibo in two numbered parts, ``Weibo-1.pcap`` and ``Weibo-2.pcapng``;
- ``Benign/SMB.7z``, a 7z archive holding ``SMB.pcap`` and a text file;
- what a build must report and skip: a capture with an unknown name, a known name that is not a
  capture, and a text file.
"""

from __future__ import annotations

import pathlib
import random
import shutil

from mtc_keras.capture_writer import write_capture

DUMMY_DATA = pathlib.Path(__file__).resolve().parent / "dummy_data"
SEED = 2016
START = 1_460_000_000  # capture timestamps, seconds
UNKNOWN_CAPTURE = "Benign/Browsing.pcap"
NOT_A_CAPTURE = "Malware/Tinba.pcap"
OTHER_FILE = "README.txt"
KEEPALIVE = b"\x00keep-alive\x00" * 4


def _tcp_conversation(rng, client, server, sport, dport, exchanges, with_keepalive=False):
    """TCP request / reply / ACK exchanges; with_keepalive: then one segment whose vector is the
    same in every conversation of the class (fixed ports and payload; addresses are zeroed)."""
    from scapy.layers.inet import IP, TCP

    seq, ack, frames = rng.randrange(1 << 30), rng.randrange(1 << 30), []
    for i in range(exchanges):
        request = bytes(rng.randrange(256) for _ in range(rng.randrange(40, 300)))
        reply = bytes(rng.randrange(256) for _ in range(rng.randrange(40, 900)))
        frames.append(IP(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="PA", seq=seq, ack=ack) / request)
        seq += len(request)
        frames.append(IP(src=server, dst=client) / TCP(sport=dport, dport=sport, flags="PA", seq=ack, ack=seq) / reply)
        ack += len(reply)
        frames.append(IP(src=client, dst=server) / TCP(sport=sport, dport=dport, flags="A", seq=seq, ack=ack))
    if with_keepalive:
        frames.append(IP(src=client, dst=server, id=7) / TCP(sport=40000, dport=dport, flags="PA", seq=0, ack=0)
                      / KEEPALIVE)
    return frames


def _dns(rng, client):
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import IP, UDP

    return [IP(src=client, dst="8.8.8.8") / UDP(sport=rng.randrange(1024, 65535), dport=53)
            / DNS(rd=1, qd=DNSQR(qname=f"host{rng.randrange(100)}.example"))]


def _tcp_class(rng, server_port, conversations, exchanges=2, keepalive=False):
    frames = []
    for i in range(conversations):
        client = f"192.168.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
        server = f"10.{rng.randrange(250)}.{rng.randrange(250)}.{rng.randrange(2, 250)}"
        frames += _tcp_conversation(rng, client, server, rng.randrange(1024, 65535), server_port,
                                    exchanges, with_keepalive=keepalive and i % 2 == 0)
        if i % 3 == 0:
            frames += _dns(rng, client)
    return frames


def _udp_class(rng, port, conversations, datagrams):
    from scapy.layers.inet import IP, UDP

    frames = []
    for _ in range(conversations):
        a = f"172.16.{rng.randrange(250)}.{rng.randrange(2, 250)}"
        b = f"172.17.{rng.randrange(250)}.{rng.randrange(2, 250)}"
        for i in range(datagrams):
            src, dst = (a, b) if i % 2 == 0 else (b, a)
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(20, 200)))
            frames.append(IP(src=src, dst=dst) / UDP(sport=port, dport=port) / payload)
    return frames


def _facetime(rng, packets):
    """Anonymised as in the public copy: a fresh address pair on every packet, one port pair."""
    from scapy.layers.inet import IP, UDP

    return [IP(src=f"1.{rng.randrange(250)}.{rng.randrange(250)}.{rng.randrange(250)}",
               dst=f"2.{rng.randrange(250)}.{rng.randrange(250)}.{rng.randrange(250)}")
            / UDP(sport=16403, dport=16403) / bytes(rng.randrange(256) for _ in range(rng.randrange(60, 160)))
            for _ in range(packets)]


def _write(path: pathlib.Path, frames, start: int, pcapng: bool = False) -> pathlib.Path:
    """Ethernet frames 10 ms apart from `start`, as scapy's writers wrote the committed files:
    pcap with snaplen 65535 and the fraction rounded to the microsecond, pcapng with
    ``int(t * 10**6)`` microseconds (scapy truncates there), so the bytes stay the same."""
    from scapy.layers.l2 import Ether

    records = [(start + i * 0.01, bytes(Ether(src="00:11:22:33:44:55", dst="66:77:88:99:aa:bb") / frame))
               for i, frame in enumerate(frames)]
    if pcapng:
        return write_capture(path, [(int(t * 1_000_000), fr) for t, fr in records], pcapng=True,
                             ticks_per_second=1_000_000)
    return write_capture(path, records, pcapng=False, snaplen=65535)


def write_dummy_data(directory=DUMMY_DATA) -> list[pathlib.Path]:
    """Writes the dummy manual folder into `directory` (emptied first); returns its files."""
    import py7zr

    directory = pathlib.Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    rng = random.Random(SEED)
    captures = {
        "Benign/BitTorrent.pcap": _tcp_class(rng, 6881, 8, keepalive=True),
        "Benign/MySQL.pcap": _tcp_class(rng, 3306, 7),
        "Benign/Facetime.pcap": _facetime(rng, 40),
        "Benign/Weibo-1.pcap": _tcp_class(rng, 80, 4),
        "Benign/Weibo-2.pcapng": _tcp_class(rng, 443, 4),
        "Malware/Zeus.pcap": _tcp_class(rng, 8080, 8, keepalive=True),
        "Malware/Nsis-ay.pcap": _udp_class(rng, 7600, 6, 5),
        UNKNOWN_CAPTURE: _tcp_class(rng, 443, 2),
    }
    files = []
    for i, (relative, frames) in enumerate(captures.items()):
        files.append(_write(directory / relative, frames, START + 3600 * i, relative.endswith(".pcapng")))
    staging = directory / "_smb"
    member = _write(staging / "SMB.pcap", _tcp_class(rng, 445, 7), START + 3600 * len(captures))
    (staging / "notes.txt").write_text("not a capture\n")
    with py7zr.SevenZipFile(directory / "Benign" / "SMB.7z", "w") as archive:
        archive.write(member, "SMB.pcap")
        archive.write(staging / "notes.txt", "notes.txt")
    shutil.rmtree(staging)
    files.append(directory / "Benign" / "SMB.7z")
    for relative, data in ((NOT_A_CAPTURE, b"<html><body>Download interrupted</body></html>\n"),
                           (OTHER_FILE, b"USTC-TFC2016 dummy data, see make_dummy_data.py\n")):
        (directory / relative).write_bytes(data)
        files.append(directory / relative)
    return sorted(files)


if __name__ == "__main__":
    written = write_dummy_data()
    print(f"wrote {len(written)} files, {sum(f.stat().st_size for f in written)} bytes, in {DUMMY_DATA}")
