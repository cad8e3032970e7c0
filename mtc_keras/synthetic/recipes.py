"""What each application's capture holds: the app -> recipe table.

A recipe builds one round of the flows of a capture of an (app, traffic kind): each a DNS name
looked up first (or none), the session that runs (a callable of its packet budget and start
time) and its share of the round's packets (None everywhere: equal shares). A capture runs
as many rounds as its number of sessions asks (``app_traffic``). VPN captures use the same
recipes as the non-VPN ones of the same app: the tunnel's inner packets are the application's
own (``ip.Capture`` gives them the tunnel's address, MSS and TTLs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from mtc_keras import labels
from mtc_keras.synthetic.chat import Oscar
from mtc_keras.synthetic.ip import Capture
from mtc_keras.synthetic.p2p import PeerWire, utp_dht
from mtc_keras.synthetic.ssh import Ssh
from mtc_keras.synthetic.streaming import Spotify, quic
from mtc_keras.synthetic.tls import CHACHA, GCM, Tls, TlsSession
from mtc_keras.synthetic.tor import TorLink
from mtc_keras.synthetic.voip import SkypeTcp, sip_rtp_call, skype_udp, webrtc_call

APPS = labels.TASKS["iscx"]["app"]
TRAFFIC = labels.TASKS["iscx"]["traffic"]
FLOW_SPACING_US = 700_000  # between the starts of a capture's flows
MIN_SESSION_FRAMES = 10  # a session's least share of the budget (its opening may take more)


class Flow(NamedTuple):
    dns_name: str  # looked up before the flow starts; "" for none
    run: Callable[[int, int], object]  # (packet budget, start time in µs)
    share: float | None = None  # of the capture's packets; None: an equal share


Recipe = Callable[[Capture], list[Flow]]

GOOGLE_CERT = ("*.google.com", "Google Internet Authority G2", "Google Inc")
FACEBOOK_CERT = ("*.facebook.com", "DigiCert SHA2 High Assurance Server CA", "Facebook, Inc.")


def _tls(cap, port, service, name, cert, client, aead, pattern, record_max=16384, plain=(), gap=3_000):
    """A TLS session's run: `client`'s ClientHello (ALPN for Chrome), `pattern` after the handshake."""
    return lambda b, t: TlsSession(cap, port, service, Tls(cap, client, name, cert, aead, alpn=client == "chrome"),
                                   pattern, record_max, list(plain), gap).run(b, t)


def _oscar(icq: bool) -> Recipe:
    def recipe(cap: Capture) -> list[Flow]:
        host = "login.icq.com" if icq else "login.oscar.aol.com"
        return [Flow(host, lambda b, t: Oscar(cap, icq).run(b, t)) for _ in range(3)]
    return recipe


def _email(cap: Capture) -> list[Flow]:
    """Thunderbird: SMTP with STARTTLS (RFC 3207), IMAP and POP3 over implicit TLS (RFC 8314)."""
    cert = ("smtp.gmail.com", "Google Internet Authority G2", "Google Inc")
    client = ".".join(map(str, cap.client)).encode()
    smtp = [(False, b"220 smtp.gmail.com ESMTP q2sm23781443qkd.13 - gsmtp\r\n"),
            (True, b"EHLO [" + client + b"]\r\n"),
            (False, b"250-smtp.gmail.com at your service, [" + client
             + b"]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
             b"250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"),
            (True, b"STARTTLS\r\n"), (False, b"220 2.0.0 Ready to start TLS\r\n")]
    return [Flow("smtp.gmail.com", _tls(cap, 587, "mail", "smtp.gmail.com", cert, "nss", GCM, "bulk_up", plain=smtp)),
            Flow("imap.gmail.com", _tls(cap, 993, "mail", "imap.gmail.com", ("imap.gmail.com",) + cert[1:], "nss",
                                        GCM, "email")),
            Flow("pop.gmail.com", _tls(cap, 995, "mail", "pop.gmail.com", ("pop.gmail.com",) + cert[1:], "nss",
                                       GCM, "email"))]


def _ftps(cap: Capture) -> list[Flow]:
    """FileZilla: FTP control with AUTH TLS (RFC 4217), TLS data connections on passive ports."""
    cert = ("ftp.iscx.ca", "ftp.iscx.ca", "ISCX")  # FileZilla Server's self-signed certificate
    control = [(False, b"220-FileZilla Server 0.9.53 beta\r\n220 Welcome\r\n"), (True, b"AUTH TLS\r\n"),
               (False, b"234 Using authentication type TLS\r\n")]
    pattern = "bulk_up" if "up" in cap.name.lower() else "bulk_down"
    flows = [Flow("ftp.iscx.ca", _tls(cap, 21, "ftp", "", cert, "gnutls", GCM, "chat", plain=control, gap=40_000))]
    for _ in range(2):  # data connections on passive ports: resumed TLS sessions
        port = int(cap.rng.integers(50000, 51000))
        flows.append(Flow("", lambda b, t, port=port: TlsSession(
            cap, port, "ftp", Tls(cap, "gnutls", "", cert, GCM, resumed=True), pattern).run(b, t)))
    return flows


def _gmail_chat(cap: Capture) -> list[Flow]:
    """XMPP over TLS on 5228 (Chrome)."""
    cert = ("mtalk.google.com",) + GOOGLE_CERT[1:]
    return [Flow("mtalk.google.com", _tls(cap, 5228, "google", "mtalk.google.com", cert, "chrome", CHACHA, "chat",
                                          4096, gap=40_000)) for _ in range(3)]


def _web_call(google: bool) -> Recipe:
    """A Hangouts or Facebook call in the browser: its HTTPS signalling, then two WebRTC calls."""
    def recipe(cap: Capture) -> list[Flow]:
        name = "hangouts.google.com" if google else "edge-chat.facebook.com"
        signalling = _tls(cap, 443, "google" if google else "facebook", name, GOOGLE_CERT if google else FACEBOOK_CERT,
                          "chrome", CHACHA if google else GCM, "chat", gap=40_000)
        return [Flow(name, signalling, 0.2)] + [Flow("", lambda b, t: webrtc_call(cap, b, t, google), 0.4)
                                                for _ in range(2)]
    return recipe


def _web_chat(google: bool) -> Recipe:
    """Hangouts or Facebook chat in the browser: HTTPS to three of the service's hosts."""
    def recipe(cap: Capture) -> list[Flow]:
        names = (["hangouts.google.com", "clients4.google.com", "0.client-channel.google.com"] if google
                 else ["edge-chat.facebook.com", "www.facebook.com", "2-edge-chat.facebook.com"])
        return [Flow(n, _tls(cap, 443, "google" if google else "facebook", n, GOOGLE_CERT if google else FACEBOOK_CERT,
                             "chrome", CHACHA if google else GCM, "chat", gap=40_000)) for n in names]
    return recipe


_VIDEO_SERVERS = {  # app: (server name, certificate, service, Google's ChaCha20)
    "Netflix": ("ipv4-c001-yyz001-ix.1.oca.nflxvideo.net",
                ("*.1.oca.nflxvideo.net", "DigiCert SHA2 Secure Server CA", "Netflix, Inc."), "netflix", False),
    "Vimeo": ("skyfire.vimeocdn.com", ("*.vimeocdn.com", "GlobalSign CloudSSL CA", "Vimeo, Inc."), "akamai", False),
    "Youtube": ("r4---sn-ab5l6n7s.googlevideo.com", ("*.googlevideo.com",) + GOOGLE_CERT[1:], "google", True),
}


def _video(app: str) -> Recipe:
    """Two HTTPS downloads from the video CDN; YouTube also over gQUIC, as Chrome fetched most of it."""
    def recipe(cap: Capture) -> list[Flow]:
        name, cert, service, google = _VIDEO_SERVERS[app]
        quic_too = app == "Youtube"
        flows = [Flow(name, _tls(cap, 443, service, name, cert, "chrome", CHACHA if google else GCM, "bulk_down"),
                      0.25 if quic_too else None) for _ in range(2)]
        if quic_too:
            flows.append(Flow(name, lambda b, t: quic(cap, b, t, name), 0.5))
        return flows
    return recipe


def _ssh(sftp: bool) -> Recipe:
    def recipe(cap: Capture) -> list[Flow]:
        up = "up" in cap.name.lower()
        return [Flow("", lambda b, t: Ssh(cap, sftp, up).run(b, t)) for _ in range(3)]
    return recipe


def _skype_chat(cap: Capture) -> list[Flow]:
    cert = ("*.gateway.messenger.live.com", "Microsoft IT SSL SHA2", "Microsoft Corporation")
    name = "client-s.gateway.messenger.live.com"
    flows = [Flow(name, _tls(cap, 443, "microsoft", name, cert, "schannel", GCM, "chat", gap=40_000)) for _ in range(2)]
    return flows + [Flow("", lambda b, t: skype_udp(cap, b, t, False))]


def _skype_files(cap: Capture) -> list[Flow]:
    return ([Flow("", lambda b, t: SkypeTcp(cap, bool(cap.rng.random() < 0.5)).run(b, t), 0.45) for _ in range(2)]
            + [Flow("", lambda b, t: skype_udp(cap, b, t, False), 0.1)])


def _skype_call(cap: Capture) -> list[Flow]:
    return ([Flow("", lambda b, t: skype_udp(cap, b, t, True), 0.45) for _ in range(2)]
            + [Flow("", lambda b, t: skype_udp(cap, b, t, False), 0.1)])


def _spotify(cap: Capture) -> list[Flow]:
    return [Flow("ap.spotify.com", lambda b, t: Spotify(cap).run(b, t)) for _ in range(3)]


def _torrent(cap: Capture) -> list[Flow]:
    info_hash = cap.rng.bytes(20)
    return ([Flow("", lambda b, t: PeerWire(cap, info_hash).run(b, t)) for _ in range(2)]
            + [Flow("router.utorrent.com", lambda b, t: utp_dht(cap, b, t, info_hash))])


def _tor(cap: Capture) -> list[Flow]:
    return [Flow("", lambda b, t: TorLink(cap).run(b, t)) for _ in range(3)]


def _voipbuster(cap: Capture) -> list[Flow]:
    return [Flow("sip.voipbuster.com", lambda b, t: sip_rtp_call(cap, b, t)) for _ in range(2)]


# (app, traffic kind without "VPN: "; "" for Tor, which has none) -> recipe
RECIPES: dict[tuple[str, str], Recipe] = {
    ("AIM Chat", "Chat"): _oscar(icq=False),
    ("ICQ", "Chat"): _oscar(icq=True),
    ("Email", "Email"): _email,
    ("FTPS", "File Transfer"): _ftps,
    ("Gmail", "Chat"): _gmail_chat,
    ("Facebook", "Chat"): _web_chat(google=False),
    ("Hangouts", "Chat"): _web_chat(google=True),
    ("Facebook", "VoIP"): _web_call(google=False),
    ("Hangouts", "VoIP"): _web_call(google=True),
    ("Netflix", "Streaming"): _video("Netflix"),
    ("Vimeo", "Streaming"): _video("Vimeo"),
    ("Youtube", "Streaming"): _video("Youtube"),
    ("SCP", "File Transfer"): _ssh(sftp=False),
    ("SFTP", "File Transfer"): _ssh(sftp=True),
    ("Skype", "Chat"): _skype_chat,
    ("Skype", "File Transfer"): _skype_files,
    ("Skype", "VoIP"): _skype_call,
    ("Spotify", "Streaming"): _spotify,
    ("Torrent", "Torrent"): _torrent,
    ("Tor", ""): _tor,
    ("Voipbuster", "VoIP"): _voipbuster,
}


def recipe_key(stem_labels: labels.IscxLabels) -> tuple[str, str]:
    """(app, traffic kind) of a capture's labels, VPN or not."""
    kind = "" if stem_labels.traffic < 0 else TRAFFIC[stem_labels.traffic].removeprefix("VPN: ")
    return APPS[stem_labels.app], kind


def app_traffic(cap: Capture, stem_labels: labels.IscxLabels, budget: int, flows: int = 1) -> None:
    """The application's own traffic: `flows` sessions sharing `budget` packets, started
    FLOW_SPACING_US apart, each after its DNS look-up.

    The sessions are the recipe's, round after round (new connections, each from its
    protocol's first packet), the budget split by the recipe's shares. At least one round,
    and at most one session per MIN_SESSION_FRAMES of the budget: a small capture is one round.
    """
    key = recipe_key(stem_labels)
    if key not in RECIPES:
        raise ValueError(f"no traffic for {key}")
    sessions = RECIPES[key](cap)
    wanted = max(len(sessions), min(flows, budget // MIN_SESSION_FRAMES))
    while len(sessions) < wanted:
        sessions += RECIPES[key](cap)
    sessions = sessions[:wanted]
    shares = [f.share for f in sessions]
    if None in shares:
        if any(s is not None for s in shares):
            raise ValueError(f"{key}: give every flow a share, or none")
        shares = [1 / len(shares)] * len(shares)
    total = sum(shares)  # 1.0 for one round
    for k, (flow, share) in enumerate(zip(sessions, shares)):
        start = k * FLOW_SPACING_US
        if flow.dns_name:
            cap.dns_lookup(start, flow.dns_name)
        flow.run(max(MIN_SESSION_FRAMES, int(budget * share / total) - (2 if flow.dns_name else 0)), start + 20_000)
