"""Label tables: the USTC-TFC2016 classes and file-stem rule."""

import pytest

from mtc_keras import labels


def test_ustc_tasks_have_twenty_apps_and_two_groups():
    tasks = labels.TASKS["ustc_tfc2016"]
    assert list(tasks) == ["app", "malware"]
    assert len(tasks["app"]) == 20 and len(set(tasks["app"])) == 20
    assert tasks["malware"] == ("Benign", "Malware")
    assert set(labels.USTC_BENIGN_APPS) | set(labels.USTC_MALWARE_APPS) == set(tasks["app"])
    assert [labels.ustc_malware(i) for i in range(20)] == [0] * 10 + [1] * 10


@pytest.mark.parametrize("path, app", [
    ("Benign/Weibo.pcap", "Weibo"),
    ("weibo.PCAP", "Weibo"),
    ("Benign/Weibo-1.pcap", "Weibo"),
    ("Weibo_2.pcapng", "Weibo"),
    ("WorldOfWarcraft.pcap", "WorldOfWarcraft"),
    ("Malware/Nsis-ay.pcap", "Nsis-ay"),
    ("nsis-ay-3.pcap", "Nsis-ay"),
    ("Malware/Cridex.7z", "Cridex"),
    ("SMB-10.pcap", "SMB"),
    ("FTP.pcap", "FTP"),
])
def test_ustc_stems_name_a_class_whatever_the_case_and_part_number(path, app):
    lab = labels.ustc_labels(path)
    assert lab is not None and labels.USTC_APPS[lab.app] == app
    assert lab.malware == int(app in labels.USTC_MALWARE_APPS)


# --------------------------------------------------------------------------- ISCX
def _names(lab):
    return (labels.ISCX_APPS[lab.app],
            None if lab.traffic == labels.MISSING else labels.ISCX_TRAFFIC[lab.traffic],
            None if lab.aux == labels.MISSING else labels.ISCX_AUX[lab.aux], lab.vpn)


def test_iscx_tasks_are_the_papers_label_spaces():
    tasks = labels.TASKS["iscx"]
    assert list(tasks) == ["app", "traffic", "aux"]
    assert [len(names) for names in tasks.values()] == [17, 12, 6]
    assert tasks["traffic"][6:] == tuple(f"VPN: {t}" for t in tasks["traffic"][:6])
    assert tasks["aux"] == tuple(f"All_{t}" for t in tasks["traffic"][:6])


@pytest.mark.parametrize("path, expected", [
    ("AIMchat1.pcapng", ("AIM Chat", "Chat", "All_Chat", False)),
    ("NonVPN-PCAPs-01/aim_chat_3a.pcap", ("AIM Chat", "Chat", "All_Chat", False)),
    ("vpn_aim_chat1a.pcap", ("AIM Chat", "VPN: Chat", "All_Chat", True)),
    ("skype_file8.pcap", ("Skype", "File Transfer", "All_File Transfer", False)),  # 1..8 expanded
    ("netflix4.pcap", ("Netflix", "Streaming", "All_Streaming", False)),
    ("Torrent01.pcap", ("Torrent", "Torrent", "All_Torrent", False)),
    ("vpn_bittorrent.pcap", ("Torrent", "VPN: Torrent", "All_Torrent", True)),
    ("torFacebook.pcap", ("Tor", None, None, False)),  # Tor captures have no traffic label
    ("torVimeo3.pcap", ("Tor", None, None, False)),
    ("vpn_voipbuster1b.pcap", ("Voipbuster", "VPN: VoIP", "All_VoIP", True)),
])
def test_iscx_stems_give_the_labels_of_the_table(path, expected):
    lab = labels.iscx_labels(path)
    assert lab is not None and _names(lab) == expected


def test_tor_and_torrent_are_exact_stems_never_substrings():
    # `tor` prefixes `torrent`, and `vpn_bittorrent` contains `torrent`: neither decides.
    assert labels.ISCX_APPS[labels.iscx_labels("torrent01.pcap").app] == "Torrent"
    assert labels.ISCX_APPS[labels.iscx_labels("vpn_bittorrent.pcap").app] == "Torrent"
    assert labels.ISCX_APPS[labels.iscx_labels("tortwitter.pcap").app] == "Tor"
    for stem in labels.ISCX_FILE_LABELS:
        app = labels.ISCX_APPS[labels.ISCX_FILE_LABELS[stem].app]
        assert (app == "Tor") == (stem.startswith("tor") and not stem.startswith("torrent")), stem
        assert labels.ISCX_FILE_LABELS[stem].vpn == stem.startswith("vpn_"), stem


# ---------------------------------------------------------------- both stem rules
@pytest.mark.parametrize("lookup, path", [(labels.ustc_labels, path) for path in (
    "Nsis.pcap",  # the class is Nsis-ay, never a prefix
    "ay.pcap",
    "Weibo2x.pcap",  # a part number is digits only
    "Weibo-.pcap",
    "MySQL-backup.pcap",
    "Gmail Chat.pcap",
    "Zeuss.pcap",
    "Facetime.pcap.txt",
    "",
)] + [(labels.iscx_labels, path) for path in (
    "tor.pcap", "torrent.pcap", "torrent02.pcap", "bittorrent.pcap", "vpn_torrent.pcap",
    "skype_file9.pcap", "aimchat1.pcap.gz", "aimchat1.txt", "my_aimchat1.pcap", "aimchat.pcap", "",
)])
def test_unknown_stems_are_none(lookup, path):
    assert lookup(path) is None


@pytest.mark.parametrize("stem, path, expected", [
    (labels.ustc_stem, "Malware/Nsis-ay.7z", "nsis-ay"),
    (labels.ustc_stem, "a/b/Weibo-1.pcapng", "weibo-1"),
    (labels.ustc_stem, "README.txt", "readme.txt"),
    (labels.iscx_stem, "NonVPN/AIMchat1.pcapng", "aimchat1"),
    (labels.iscx_stem, "VPN_Netflix_A.PCAP", "vpn_netflix_a"),
    (labels.iscx_stem, "notes.txt", "notes.txt"),
])
def test_stems_lowercase_and_strip_folders_and_capture_suffixes_only(stem, path, expected):
    assert stem(path) == expected


def test_every_iscx_app_has_a_capture_and_every_stem_is_listed_once():
    apps = {lab.app for lab in labels.ISCX_FILE_LABELS.values()}
    assert apps == set(range(len(labels.ISCX_APPS)))
    assert len(labels.ISCX_FILE_LABELS) == 150


# ---------------------------------------------------------------------- CICIDS2017
@pytest.mark.parametrize("raw, attack", [
    ("BENIGN", "Benign"), ("DDoS", "DoS/DDoS"), ("DoS Hulk", "DoS/DDoS"), ("PortScan", "PortScan"),
    ("FTP-Patator", "Brute force"), ("Bot", "Botnet ARES"),
])
def test_cicids_raw_labels_group_as_table_2(raw, attack):
    assert labels.CICIDS_ATTACKS[labels.cicids_attack(raw)] == attack
    assert labels.CICIDS_MAL[labels.cicids_mal(labels.cicids_attack(raw))] == (
        "Benign" if attack == "Benign" else "Malicious")


def test_cicids_infiltration_is_dropped():
    assert labels.cicids_attack("Infiltration") is None
