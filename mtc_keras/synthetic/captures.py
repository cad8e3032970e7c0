"""The demo captures: their names, link types, frames and files in the official download's layout."""

from __future__ import annotations

import pathlib
import struct
import zipfile
from collections.abc import Iterable

import numpy as np

from mtc_keras import capture_writer, labels
from mtc_keras.capture_writer import LINKTYPE_ETHERNET, LINKTYPE_RAW
from mtc_keras.synthetic import recipes
from mtc_keras.synthetic.ip import CLIENT_MAC, CLIENT_NET, Capture, ethernet, ipv4, udp

# 220 frames in 21 sessions a capture: about 1,600 flows, most of them just their protocol's
# opening (4 to 17 kept packets), so that the demo's flow_split tests on over 300 flows
# (issue 31). No flow is shorter than its opening: more flows cost kept packets (10,454
# here, 3,164 with 80 frames in one round).
DEFAULT_PACKETS_PER_FILE = 220
DEFAULT_FLOWS_PER_CAPTURE = 21
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
# The real download holds 29 raw-IP VPN captures and 2 Ethernet VoIP ones (which two is not
# documented). Here the two are the browser calls: vpn_hangouts_audio2 (pcapng under a .pcap
# name, so taken with another tool than the rest) and vpn_facebook_audio2.
ETHERNET_VPN_CAPTURES = ("vpn_hangouts_audio2.pcap", "vpn_facebook_audio2.pcap")

START_TIME_US = 1_453_800_000_000_000  # 2016-01-26, when ISCX was captured; never the clock
SNAPLEN = 65535


def linktype_of(name: str) -> int:
    """The demo capture's link type: raw IP (101) for VPN captures, but ETHERNET_VPN_CAPTURES
    and the non-VPN ones are Ethernet (1)."""
    vpn = labels.iscx_labels(name).vpn
    return LINKTYPE_RAW if vpn and name not in ETHERNET_VPN_CAPTURES else LINKTYPE_ETHERNET


def capture_frames(name: str, packets: int, seed: int, flows: int = 1) -> list[tuple[int, bytes, int]]:
    """(timestamp µs, frame, link type) of the demo capture `name`, in time order: Ethernet
    frames, or the raw IP packets of a VPN capture (``linktype_of``). `packets` frames in
    about `flows` sessions (``recipes.app_traffic``)."""
    stem_labels = labels.iscx_labels(name)
    if stem_labels is None:
        raise ValueError(f"{name!r} is not a known ISCX capture name")
    index = DEMO_CAPTURES.index(name)
    rng = np.random.default_rng([seed, index])
    cap = Capture(rng, name, stem_labels.app, stem_labels.traffic, vpn=stem_labels.vpn)
    linktype = linktype_of(name)
    recipes.app_traffic(cap, stem_labels, packets - 2, flows)
    if index % 3 == 0 and linktype == LINKTYPE_ETHERNET:  # a tunnel carries no ARP or LAN multicast
        _background(cap, 300_000)
    start = START_TIME_US + index * 3_600_000_000
    raw = linktype == LINKTYPE_RAW
    return [(start + t, packet if raw or not is_ip else ethernet(packet), linktype)
            for t, _, packet, is_ip in sorted(cap.items)]


def _background(cap: Capture, time_us: int) -> None:
    """An ARP request (dropped) and one SSDP NOTIFY, byte-identical in every capture that has it."""
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, CLIENT_MAC,
                      cap.client, b"\0" * 6, CLIENT_NET + b"\x01")
    cap.emit(time_us, ethernet(arp, 0x0806), is_ip=False)
    notify = (b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n"
              b"NTS: ssdp:alive\r\nLOCATION: http://131.202.240.150:49152/description.xml\r\n\r\n")
    printer, group = CLIENT_NET + b"\x96", bytes([239, 255, 255, 250])
    cap.emit(time_us + 1, ipv4(printer, group, 17, udp(printer, group, 1900, 1900, notify), 0, 4))


def _archive_of(name: str) -> str:
    """The folder/zip a capture goes to, spread like the official five archives."""
    vpn = name.lower().startswith("vpn_")
    same_side = [n for n in DEMO_CAPTURES if n.lower().startswith("vpn_") == vpn]
    archives = VPN_ARCHIVES if vpn else NONVPN_ARCHIVES
    archive = archives[same_side.index(name) * len(archives) // len(same_side)]
    # Tor captures sit one level deeper, to show that any depth works.
    return f"{archive}/Tor" if name.lower().startswith("tor") and not name.lower().startswith("torrent") else archive


def _per_capture(name: str, per_file: int, least: int) -> int:
    """Frames (or sessions) for one capture: every app gets about 4 * per_file in total."""
    app = labels.iscx_labels(name).app
    files_of_app = sum(labels.iscx_labels(n).app == app for n in DEMO_CAPTURES)
    return max(least, round(per_file * 4 / files_of_app))


def capture_bytes(name: str, packets_per_file: int = DEFAULT_PACKETS_PER_FILE, seed: int = DEFAULT_SEED,
                  flows_per_capture: int = DEFAULT_FLOWS_PER_CAPTURE) -> bytes:
    """The file of the demo capture `name`: pcapng when named so (or in PCAPNG_NAMED_PCAP), else pcap."""
    frames = capture_frames(name, _per_capture(name, packets_per_file, 16), seed,
                            _per_capture(name, flows_per_capture, 1))
    pcapng = name.endswith(".pcapng") or name in PCAPNG_NAMED_PCAP
    return capture_writer.capture_bytes(frames, pcapng, snaplen=SNAPLEN, ticks_per_second=1_000_000)


def write_demo_captures(directory, packets_per_file: int = DEFAULT_PACKETS_PER_FILE,
                        seed: int = DEFAULT_SEED, captures: Iterable[str] | None = None,
                        zip_archives: Iterable[str] = (),
                        flows_per_capture: int = DEFAULT_FLOWS_PER_CAPTURE) -> list[pathlib.Path]:
    """Writes demo captures under `directory`; returns the files written (captures and zips).

    captures: a subset of DEMO_CAPTURES (default: all). zip_archives: archive names (from
    ARCHIVES) written as `<name>.zip` holding their captures instead of as folders.
    flows_per_capture: sessions sharing a capture's packets_per_file frames, at most one per
    recipes.MIN_SESSION_FRAMES of them (so small captures keep one round of their recipe, 2 or
    3 sessions, as 1 gives at any size); both are scaled like the frames for apps with other
    than 4 captures. More sessions in the same frames: more, shorter flows.
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
        data = capture_bytes(name, packets_per_file, seed, flows_per_capture)
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
