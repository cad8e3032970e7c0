"""Tor links (tor-spec §2-3): TLS to a relay, then 514-byte cells, one per TLS record."""

from __future__ import annotations

from mtc_keras.synthetic.ip import Session
from mtc_keras.synthetic.tls import Tls


class TorLink(Session):
    """A Tor link (tor-spec §2-3): TLS to a relay's ORPort with a random-looking name, then
    514-byte cells, one per TLS record: 5 + 8 (nonce) + 514 + 16 (tag) = 543 bytes."""

    def __init__(self, cap):
        port = 9001 if cap.rng.random() < 0.6 else 443
        super().__init__(cap, port, "tor")
        rand_name = "".join(cap.rng.choice(list("abcdefghijklmnopqrstuvwxyz234567"), int(cap.rng.integers(8, 20))))
        issuer = "".join(cap.rng.choice(list("abcdefghijklmnopqrstuvwxyz234567"), 14))
        self.tls = Tls(cap, "openssl", f"www.{rand_name}.com", (f"www.{rand_name}.net", f"www.{issuer}.com", ""),
                        b"\xc0\x30")  # ECDHE-RSA-AES256-GCM-SHA384

    def opening(self, flow):
        self.tls.handshake(flow)

    def message(self, flow, left):
        from_client = bool(self.rng.random() < 0.35)
        cells = 1 if from_client else int(self.rng.integers(1, 12))
        flow.send(from_client, b"".join(self.tls.sealed(from_client, 23, 514) for _ in range(cells)))
