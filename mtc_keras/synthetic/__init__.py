"""Synthetic ISCX VPN-nonVPN-shaped captures: the embedded demo data and the builder's dummy data.

    python -m mtc_keras.synthetic DIR [--packets_per_file N] [--flows_per_capture F] [--seed S] [--zip]

writes a manual folder laid out like the official download (NonVPN-PCAPs-01..03/,
VPN-PCAPs-01..02/, or the five zips with --zip) holding captures with real ISCX file names,
four per app (Gmail 3, Skype 6, Torrent 2: the real stems allow no other split), covering all
17 apps and all 12 traffic classes. A capture's frames are shared by F sessions (rounds of its
app's recipe), so that a per-flow figure rests on many flows: the defaults give about 1,600
flows, most as short as their protocol's opening allows (4 to 17 kept packets); F=1 gives the
2 or 3 long flows a capture held before issue 31. Some are pcapng, one of them named .pcap, as
in the real download (vpn_hangouts_audio2.pcap).

What is inside is synthetic, but every packet carries what the real application puts on the
wire, and nothing else. Non-VPN captures are Ethernet + IPv4 with valid checksums and trailer
padding on short frames; TCP flows with handshakes, pure ACKs and FIN teardown (dropped by the
preprocessing), a Windows client (TTL 128, MSS 1460) and each service's servers at their own
distance and TCP window; DNS look-ups and an ARP request (dropped too). On top, per application
(one module each; ``recipes.RECIPES`` says which app runs what):

- ``tls``: TLS 1.2 (RFC 5246): ClientHello of the client software (Chrome, Thunderbird/NSS,
  Skype/SChannel, FileZilla/GnuTLS, Tor/OpenSSL) with SNI, the server's flight (ServerHello,
  Certificate with the service's names, ServerKeyExchange), then AEAD records: AES-GCM with
  the 8-byte explicit nonce that OpenSSL-style stacks fill with the record sequence number
  (RFC 5288), or ChaCha20-Poly1305 without one (RFC 7905) for Google's services; over it,
  Gmail chat's XMPP on 5228, Email's SMTP with STARTTLS (RFC 3207) and IMAP and POP3 over
  implicit TLS (RFC 8314), FTPS's control with AUTH TLS (RFC 4217) and TLS data connections on
  passive ports, the web chats, Netflix, Vimeo and YouTube's HTTPS;
- ``chat``: AIM and ICQ: OSCAR on 5190, FLAP frames and SNAC headers (ICBM messages, typing,
  presence, keep-alives); AIM screen names and HTML text, ICQ UINs and UCS-2 text;
- ``voip``: Facebook and Hangouts calls: WebRTC, STUN binding requests and responses
  (RFC 5389) with ICE attributes, then SRTP and SRTCP (RFC 3711); Voipbuster: SIP (RFC 3261)
  with SDP, plain RTP carrying G.711 u-law or A-law speech, RTCP sender reports (RFC 3550);
  Skype: its own UDP framing (2-byte frame id, function byte, obfuscated body) and obfuscated
  TCP streams;
- ``streaming``: YouTube's gQUIC (Q035 public header: flags, 8-byte connection id, version in
  the client's first packets, packet number; the CHLO in clear); Spotify's access-point
  protocol on 4070 (length-prefixed hello, then Shannon-encrypted packets);
- ``p2p``: BitTorrent: the handshake, peer-wire messages (BEP 3), uTP (BEP 29) and DHT queries
  and answers (BEP 5, bencoded); ``tor``: 514-byte cells, one per 543-byte TLS record;
- ``ssh``: SCP and SFTP: SSH (RFC 4253) banners, KEXINIT, ECDH, NEWKEYS, then encrypted
  packets: OpenSSH's scp with chacha20-poly1305 and window adjusts, a PuTTY-based SFTP client
  with aes-ctr + hmac-sha2-256 and its 32 KiB read/write requests.

VPN captures are what the real ones are: the tunnel's inner packets, in the clear, with the
same application framing as the non-VPN captures of the same app (the same recipe and session
code), and no outer tunnel framing at all. They are raw IP (pcap link type 101, no Ethernet
header), as 29 of the 31 real VPN captures are; the two others are Ethernet VoIP captures, here
``ETHERNET_VPN_CAPTURES`` (vpn_hangouts_audio2, vpn_facebook_audio2). Only what the tunnel
changes differs (``ip``): the client sits at a tunnel address, 10.8.0.x or 10.8.8.x; the TCP
MSS is the tunnel's, 1320, 1350 or 1460, chosen per capture; the client's packets carry TTL 64,
the servers' 63 (three flows in four) or else 59, 54, 49 or 47, the TTLs the real VPN files
show; DNS goes to the tunnel's gateway (x.x.x.1); STUN servers see the VPN's exit address; no
ARP or LAN multicast comes through a tunnel. These tell VPN from non-VPN per packet, as in
the real data: shortcuts to measure, not traffic to learn.

Encrypted bytes are uniform random bytes, as real ciphertext is: there is no per-class byte
pattern. No two vectors are identical, except one background SSDP packet (the same bytes in
many Ethernet captures, as in the real files) that the flow split must keep out of two splits.

Bytes depend only on the seed and the sizes: numpy's Generator with a fixed seed, no clock.
Files are written by :mod:`mtc_keras.capture_writer`. Nothing in the core package imports this one.
"""

from mtc_keras.synthetic.captures import (ARCHIVES, DEFAULT_FLOWS_PER_CAPTURE, DEFAULT_PACKETS_PER_FILE,
                                          DEFAULT_SEED, DEMO_CAPTURES, ETHERNET_VPN_CAPTURES, NONVPN_ARCHIVES,
                                          PCAPNG_NAMED_PCAP, VPN_ARCHIVES, capture_bytes, capture_frames,
                                          linktype_of, write_demo_captures)
from mtc_keras.synthetic.recipes import RECIPES

__all__ = [
    "ARCHIVES", "DEFAULT_FLOWS_PER_CAPTURE", "DEFAULT_PACKETS_PER_FILE", "DEFAULT_SEED", "DEMO_CAPTURES",
    "ETHERNET_VPN_CAPTURES", "NONVPN_ARCHIVES", "PCAPNG_NAMED_PCAP", "RECIPES", "VPN_ARCHIVES", "capture_bytes",
    "capture_frames", "linktype_of", "write_demo_captures",
]
