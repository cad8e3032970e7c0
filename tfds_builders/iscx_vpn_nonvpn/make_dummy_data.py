"""Regenerates dummy_data/: a tiny manual folder for the builder's tests.

    python -m tfds_builders.iscx_vpn_nonvpn.make_dummy_data

Demo captures (mtc_keras.synthetic, fixed seed) for AIM, Hangouts and Netflix with and without
VPN (raw IP; vpn_hangouts_audio2 is the Ethernet one, a pcapng named .pcap), Tor (no traffic
label) and Torrent (non-VPN only here); one archive zipped, Tor one folder deeper; the background
SSDP packet in three captures (aim_chat_3a, torFacebook, netflix1), which the flow split must
keep out of two splits. Plus what a build must report and skip: a capture with an unknown name,
a known name that is not a capture, and a text file.
"""

from __future__ import annotations

import pathlib
import shutil

from mtc_keras import synthetic

DUMMY_DATA = pathlib.Path(__file__).resolve().parent / "dummy_data"
PACKETS_PER_FILE = 16
CAPTURES = (
    "AIMchat1.pcapng", "aim_chat_3a.pcap", "vpn_aim_chat1a.pcap",
    "hangouts_chat_4a.pcap", "vpn_hangouts_audio2.pcap",
    "torrent01.pcap", "torFacebook.pcap", "netflix1.pcap", "vpn_netflix_A.pcap",
)
ZIPPED = ("NonVPN-PCAPs-03",)
UNKNOWN_CAPTURE = "NonVPN-PCAPs-01/browsing_firefox1.pcap"
NOT_A_CAPTURE = "VPN-PCAPs-01/vpn_email2b.pcap"
OTHER_FILE = "README.txt"


def write_dummy_data(directory=DUMMY_DATA) -> list[pathlib.Path]:
    """Writes the dummy manual folder into `directory` (emptied first); returns its files."""
    directory = pathlib.Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    files = synthetic.write_demo_captures(directory, PACKETS_PER_FILE, captures=CAPTURES, zip_archives=ZIPPED)
    extras = {
        UNKNOWN_CAPTURE: next(f for f in files if f.name == "aim_chat_3a.pcap").read_bytes(),
        NOT_A_CAPTURE: b"<html><body>Download interrupted</body></html>\n",
        OTHER_FILE: b"ISCX VPN-nonVPN dummy data, see make_dummy_data.py\n",
    }
    for relative, data in extras.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append(path)
    return sorted(files)


if __name__ == "__main__":
    written = write_dummy_data()
    print(f"wrote {len(written)} files, {sum(f.stat().st_size for f in written)} bytes, in {DUMMY_DATA}")
