"""Label tables of the datasets: the only place these names and mappings live.

ISCX VPN-nonVPN: the app (17), traffic (12) and aux (6) label spaces in the order of the
MTC paper's Table 1, and the file-stem -> labels table of every known ISCX capture
(``shared/iscx-vpn-nonvpn.md``). CICIDS2017: the raw-label -> attack/mal grouping of the
paper's Table 2. USTC-TFC2016: the 20 classes (10 benign applications, 10 malware families of
W. Wang et al., ICOIN 2017) and the benign / malware grouping, with the file-stem rule.
A missing label is stored as ``MISSING`` (-1) and masked out of the loss.
"""

from __future__ import annotations

import dataclasses
import os
import re
import unicodedata

MISSING = -1

# --------------------------------------------------------------------------- ISCX
ISCX_APPS = (
    "AIM Chat", "Email", "Facebook", "FTPS", "ICQ", "Gmail", "Hangouts", "Netflix", "SCP",
    "SFTP", "Skype", "Spotify", "Torrent", "Tor", "Vimeo", "Voipbuster", "Youtube",
)
_TRAFFIC_TYPES = ("Chat", "Email", "File Transfer", "Streaming", "Torrent", "VoIP")
ISCX_VPN_TRAFFIC = tuple(f"VPN: {t}" for t in _TRAFFIC_TYPES)  # the traffic classes of VPN captures
ISCX_TRAFFIC = _TRAFFIC_TYPES + ISCX_VPN_TRAFFIC
ISCX_AUX = tuple(f"All_{t}" for t in _TRAFFIC_TYPES)


def _expand(spec: str) -> list[str]:
    """'skype_file1..8' -> skype_file1 ... skype_file8; plain stems pass through."""
    match = re.fullmatch(r"(.*?)(\d+)\.\.(\d+)", spec)
    if not match:
        return [spec]
    prefix, first, last = match.group(1), int(match.group(2)), int(match.group(3))
    return [f"{prefix}{i}" for i in range(first, last + 1)]


# (stems, app, traffic or None). Exact lower-case stems, never substrings:
# `tor` prefixes `torrent`, and `vpn_bittorrent` contains `torrent`.
_ISCX_FILE_TABLE = (
    ("aim_chat_3a aim_chat_3b aimchat1 aimchat2", "AIM Chat", "Chat"),
    ("email1a email1b email2a email2b", "Email", "Email"),
    ("facebook_chat_4a facebook_chat_4b facebookchat1 facebookchat2 facebookchat3", "Facebook", "Chat"),
    ("facebook_audio1a facebook_audio1b facebook_audio2a facebook_audio2b facebook_audio3 "
     "facebook_audio4 facebook_video1a facebook_video1b facebook_video2a facebook_video2b",
     "Facebook", "VoIP"),
    ("ftps_down_1a ftps_down_1b ftps_up_2a ftps_up_2b", "FTPS", "File Transfer"),
    ("gmailchat1 gmailchat2 gmailchat3", "Gmail", "Chat"),
    ("hangout_chat_4b hangouts_chat_4a", "Hangouts", "Chat"),
    ("hangouts_audio1a hangouts_audio1b hangouts_audio2a hangouts_audio2b hangouts_audio3 "
     "hangouts_audio4 hangouts_video1b hangouts_video2a hangouts_video2b", "Hangouts", "VoIP"),
    ("icq_chat_3a icq_chat_3b icqchat1 icqchat2", "ICQ", "Chat"),
    ("netflix1..4", "Netflix", "Streaming"),
    ("scp1 scpdown1..6 scpup1 scpup2 scpup3 scpup5 scpup6", "SCP", "File Transfer"),
    ("sftp1 sftp_down_3a sftp_down_3b sftp_up_2a sftp_up_2b sftpdown1 sftpdown2 sftpup1",
     "SFTP", "File Transfer"),
    ("skype_chat1a skype_chat1b", "Skype", "Chat"),
    ("skype_file1..8", "Skype", "File Transfer"),
    ("skype_audio1a skype_audio1b skype_audio2a skype_audio2b skype_audio3 skype_audio4 "
     "skype_video1a skype_video1b skype_video2a skype_video2b", "Skype", "VoIP"),
    ("spotify1..4", "Spotify", "Streaming"),
    ("vimeo1..4", "Vimeo", "Streaming"),
    ("voipbuster1b voipbuster2b voipbuster3b voipbuster_4a voipbuster_4b", "Voipbuster", "VoIP"),
    ("youtube1..6 youtubehtml5_1", "Youtube", "Streaming"),
    ("torrent01", "Torrent", "Torrent"),
    ("torfacebook torgoogle tortwitter torvimeo1 torvimeo2 torvimeo3 toryoutube1 toryoutube2 "
     "toryoutube3", "Tor", None),
    ("vpn_aim_chat1a vpn_aim_chat1b", "AIM Chat", "VPN: Chat"),
    ("vpn_facebook_chat1a vpn_facebook_chat1b", "Facebook", "VPN: Chat"),
    ("vpn_hangouts_chat1a vpn_hangouts_chat1b", "Hangouts", "VPN: Chat"),
    ("vpn_icq_chat1a vpn_icq_chat1b", "ICQ", "VPN: Chat"),
    ("vpn_skype_chat1a vpn_skype_chat1b", "Skype", "VPN: Chat"),
    ("vpn_email2a vpn_email2b", "Email", "VPN: Email"),
    ("vpn_ftps_a vpn_ftps_b", "FTPS", "VPN: File Transfer"),
    ("vpn_sftp_a vpn_sftp_b", "SFTP", "VPN: File Transfer"),
    ("vpn_skype_files1a vpn_skype_files1b", "Skype", "VPN: File Transfer"),
    ("vpn_netflix_a", "Netflix", "VPN: Streaming"),
    ("vpn_spotify_a", "Spotify", "VPN: Streaming"),
    ("vpn_vimeo_a vpn_vimeo_b", "Vimeo", "VPN: Streaming"),
    ("vpn_youtube_a", "Youtube", "VPN: Streaming"),
    ("vpn_bittorrent", "Torrent", "VPN: Torrent"),
    ("vpn_facebook_audio2", "Facebook", "VPN: VoIP"),
    ("vpn_hangouts_audio1 vpn_hangouts_audio2", "Hangouts", "VPN: VoIP"),
    ("vpn_skype_audio1 vpn_skype_audio2", "Skype", "VPN: VoIP"),
    ("vpn_voipbuster1a vpn_voipbuster1b", "Voipbuster", "VPN: VoIP"),
)


@dataclasses.dataclass(frozen=True)
class IscxLabels:
    """Integer labels of one ISCX capture; MISSING (-1) where a task has no label."""

    app: int
    traffic: int
    aux: int
    vpn: bool


def traffic_to_aux(traffic: str) -> str:
    """'VPN: Chat' and 'Chat' both become 'All_Chat' (the paper's auxiliary task)."""
    return "All_" + traffic.removeprefix("VPN: ")


def _build_file_labels() -> dict[str, IscxLabels]:
    table = {}
    for stems, app, traffic in _ISCX_FILE_TABLE:
        for spec in stems.split():
            for stem in _expand(spec):
                assert stem not in table, stem
                table[stem] = IscxLabels(
                    app=ISCX_APPS.index(app),
                    traffic=ISCX_TRAFFIC.index(traffic) if traffic else MISSING,
                    aux=ISCX_AUX.index(traffic_to_aux(traffic)) if traffic else MISSING,
                    vpn=stem.startswith("vpn_"),
                )
    return table


ISCX_FILE_LABELS: dict[str, IscxLabels] = _build_file_labels()
ISCX_CAPTURE_SUFFIXES = (".pcap", ".pcapng")


def iscx_stem(path: str) -> str:
    """Lower-cased file name without directory and capture suffix: 'AIMchat1.pcapng' -> 'aimchat1'."""
    name = os.path.basename(path).lower()
    for suffix in ISCX_CAPTURE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def iscx_labels(path: str) -> IscxLabels | None:
    """Labels of an ISCX capture from its file name, or None for an unknown stem."""
    return ISCX_FILE_LABELS.get(iscx_stem(path))


# ---------------------------------------------------------------------- CICIDS2017
CICIDS_ATTACKS = ("Benign", "DoS/DDoS", "PortScan", "Brute force", "Web attack", "Botnet ARES")
CICIDS_MAL = ("Benign", "Malicious")
CICIDS_DROPPED_LABELS = ("Infiltration",)  # 36 rows in the whole dataset; dropped as in the paper

_CICIDS_GROUPS = {
    "BENIGN": "Benign",
    "DDoS": "DoS/DDoS", "DoS Hulk": "DoS/DDoS", "DoS GoldenEye": "DoS/DDoS",
    "DoS slowloris": "DoS/DDoS", "DoS Slowhttptest": "DoS/DDoS", "Heartbleed": "DoS/DDoS",
    "PortScan": "PortScan",
    "FTP-Patator": "Brute force", "SSH-Patator": "Brute force",
    "Web Attack - Brute Force": "Web attack", "Web Attack - XSS": "Web attack",
    "Web Attack - Sql Injection": "Web attack",
    "Bot": "Botnet ARES",
}


def canonical_cicids_label(raw: str) -> str:
    """Normalise a raw CICIDS2017 label: trims it and repairs the mis-encoded dash.

    The official CSVs write 'Web Attack – Brute Force' with an en dash that arrives as
    U+FFFD, as cp1252/latin-1 mojibake ('Ã¯Â¿Â½', 'ï¿½', 'â€“') or as a real en dash.
    Anything between 'Web Attack' and the attack name becomes ' - '.
    """
    label = unicodedata.normalize("NFC", raw).strip()
    match = re.fullmatch(r"Web Attack\s*[^A-Za-z0-9]*\s*(Brute Force|XSS|Sql Injection)", label,
                         flags=re.IGNORECASE)
    if match:
        name = {"brute force": "Brute Force", "xss": "XSS", "sql injection": "Sql Injection"}
        return f"Web Attack - {name[match.group(1).lower()]}"
    return label


def cicids_attack(raw: str) -> int | None:
    """attack class index of a raw label; None for a dropped (Infiltration) label.

    Raises ValueError naming the label when it is not a known CICIDS2017 label.
    """
    label = canonical_cicids_label(raw)
    if label in CICIDS_DROPPED_LABELS:
        return None
    try:
        return CICIDS_ATTACKS.index(_CICIDS_GROUPS[label])
    except KeyError:
        raise ValueError(f"unknown CICIDS2017 label {raw!r}") from None


def cicids_mal(attack: int) -> int:
    """mal class index (0 Benign, 1 Malicious) of an attack class index."""
    return 0 if attack == CICIDS_ATTACKS.index("Benign") else 1


# ------------------------------------------------------------------- USTC-TFC2016
USTC_BENIGN_APPS = ("BitTorrent", "Facetime", "FTP", "Gmail", "MySQL", "Outlook", "Skype", "SMB",
                    "Weibo", "WorldOfWarcraft")
USTC_MALWARE_APPS = ("Cridex", "Geodo", "Htbot", "Miuref", "Neris", "Nsis-ay", "Shifu", "Tinba",
                     "Virut", "Zeus")
USTC_APPS = USTC_BENIGN_APPS + USTC_MALWARE_APPS  # the `app` task: one class per capture name
USTC_MALWARE = ("Benign", "Malware")  # the `malware` task; also the dataset's two folder names
USTC_CAPTURE_SUFFIXES = (".pcap", ".pcapng")
USTC_ARCHIVE_SUFFIXES = (".7z",)
_USTC_BY_STEM = {name.lower(): i for i, name in enumerate(USTC_APPS)}
# A numbered part of a class's capture: 'Weibo-1', 'weibo_2', 'Weibo 3', 'Weibo4', 'Nsis-ay-1'.
_USTC_PART = re.compile(r"(.+?)[-_ ]?\d+")


@dataclasses.dataclass(frozen=True)
class UstcLabels:
    """Integer labels of one USTC-TFC2016 capture: its class and benign (0) / malware (1)."""

    app: int
    malware: int


def ustc_stem(path: str) -> str:
    """Lower-cased file name without directory and capture / archive suffix:
    'Benign/Weibo-1.pcap' -> 'weibo-1', 'Malware/Nsis-ay.7z' -> 'nsis-ay'."""
    name = os.path.basename(path).lower()
    for suffix in USTC_CAPTURE_SUFFIXES + USTC_ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def ustc_malware(app: int) -> int:
    """malware class index (0 Benign, 1 Malware) of an app class index."""
    return int(USTC_APPS[app] in USTC_MALWARE_APPS)


def ustc_labels(path: str) -> UstcLabels | None:
    """Labels of a USTC-TFC2016 capture or archive from its file name, or None for an unknown stem.

    The stem must be a class name (case-insensitive, never a substring), optionally followed by
    a part number: 'Weibo-2.pcap' is Weibo, 'Nsis-ay.pcap' is Nsis-ay, 'Weibo2x.pcap' is unknown.
    """
    stem = ustc_stem(path)
    app = _USTC_BY_STEM.get(stem)
    if app is None:
        match = _USTC_PART.fullmatch(stem)
        app = _USTC_BY_STEM.get(match.group(1)) if match else None
    return None if app is None else UstcLabels(app=app, malware=ustc_malware(app))


# ----------------------------------------------------------------------- the tasks
# Task names are the model's output names, the tf.data label keys, the loss keys and
# the report rows, everywhere.
TASKS = {
    "iscx": {"app": ISCX_APPS, "traffic": ISCX_TRAFFIC, "aux": ISCX_AUX},
    "cicids2017": {"attack": CICIDS_ATTACKS, "mal": CICIDS_MAL},
    "ustc_tfc2016": {"app": USTC_APPS, "malware": USTC_MALWARE},
}
