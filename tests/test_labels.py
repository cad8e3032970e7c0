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


@pytest.mark.parametrize("path", [
    "Nsis.pcap",  # the class is Nsis-ay, never a prefix
    "ay.pcap",
    "Weibo2x.pcap",  # a part number is digits only
    "Weibo-.pcap",
    "MySQL-backup.pcap",
    "Gmail Chat.pcap",
    "Zeuss.pcap",
    "Facetime.pcap.txt",
    "",
])
def test_unknown_ustc_stems_are_none(path):
    assert labels.ustc_labels(path) is None


def test_ustc_stem_strips_folders_and_suffixes_only():
    assert labels.ustc_stem("Malware/Nsis-ay.7z") == "nsis-ay"
    assert labels.ustc_stem("a/b/Weibo-1.pcapng") == "weibo-1"
    assert labels.ustc_stem("README.txt") == "readme.txt"
