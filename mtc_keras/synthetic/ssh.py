"""SSH (RFC 4253): banners, KEXINIT, ECDH, NEWKEYS in clear, then encrypted packets (OpenSSH's
scp, a PuTTY-based SFTP client)."""

from __future__ import annotations

import struct

from mtc_keras.synthetic.ip import Session, room


class Ssh(Session):
    """SCP (OpenSSH: chacha20-poly1305@openssh.com, packet length encrypted too) or SFTP
    (a PuTTY-based client: aes256-ctr + hmac-sha2-256) over SSH (RFC 4253)."""

    def __init__(self, cap, sftp: bool, upload: bool):
        super().__init__(cap, 22, "ssh")
        self.sftp, self.upload = sftp, upload

    def _plain_packet(self, payload: bytes) -> bytes:  # RFC 4253 §6, before NEWKEYS
        pad = 8 - (len(payload) + 5) % 8
        pad += 8 if pad < 4 else 0
        return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + self.rng.bytes(pad)

    def sealed(self, payload_len: int) -> bytes:
        """An encrypted packet: all random on the wire, only its length is the protocol's."""
        if self.sftp:  # aes-ctr: length field encrypted, 16-byte blocks, 32-byte HMAC
            body = 5 + payload_len
            body += 16 - body % 16 + (16 if 16 - body % 16 < 4 else 0)
            return self.cap.random(body + 32)
        body = 1 + payload_len  # chacha20-poly1305: 4-byte encrypted length, 8-byte blocks, 16-byte tag
        body += 8 - body % 8 + (8 if 8 - body % 8 < 4 else 0)
        return self.cap.random(4 + body + 16)

    def opening(self, flow):
        client = b"SSH-2.0-PuTTY_Release_0.66\r\n" if self.sftp else b"SSH-2.0-OpenSSH_7.2p2 Ubuntu-4ubuntu2.1\r\n"
        flow.send(False, b"SSH-2.0-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2.6\r\n")
        flow.send(True, client)

        def name_list(text: str) -> bytes:
            return struct.pack("!I", len(text)) + text.encode()
        if self.sftp:
            kex = ("ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha256,diffie-hellman-group14-sha1",
                   "ssh-rsa,ssh-dss", "aes256-ctr,aes256-cbc,aes192-ctr,aes128-ctr,blowfish-ctr,3des-ctr",
                   "hmac-sha2-256,hmac-sha1,hmac-sha1-96,hmac-md5", "none,zlib")
        else:
            kex = ("curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha1,ext-info-c",
                   "ecdsa-sha2-nistp256-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512,ssh-rsa",
                   "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com",
                   "umac-64-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-256,hmac-sha1",
                   "none,zlib@openssh.com,zlib")
        lists = [kex[0], kex[1], kex[2], kex[2], kex[3], kex[3], kex[4], kex[4], "", ""]
        kexinit = b"\x14" + self.rng.bytes(16) + b"".join(name_list(x) for x in lists) + b"\0\0\0\0\0"
        flow.send(True, self._plain_packet(kexinit))
        server_lists = ["curve25519-sha256@libssh.org,ecdh-sha2-nistp256,diffie-hellman-group14-sha1",
                        "ssh-rsa,ecdsa-sha2-nistp256,ssh-ed25519",
                        "aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com", "",
                        "hmac-sha2-256,hmac-sha1,umac-64@openssh.com", "", "none,zlib@openssh.com", "", "", ""]
        server_lists[3], server_lists[5], server_lists[7] = server_lists[2], server_lists[4], server_lists[6]
        flow.send(False, self._plain_packet(b"\x14" + self.rng.bytes(16)
                                            + b"".join(name_list(x) for x in server_lists) + b"\0\0\0\0\0"))
        point = 65 if self.sftp else 32
        flow.send(True, self._plain_packet(b"\x1e" + struct.pack("!I", point) + self.rng.bytes(point)))
        host_key = name_list("ssh-rsa") + struct.pack("!I", 3) + b"\x01\x00\x01" + struct.pack("!I", 257) + self.rng.bytes(257)
        reply = (b"\x1f" + struct.pack("!I", len(host_key)) + host_key + struct.pack("!I", point) + self.rng.bytes(point)
                 + struct.pack("!I", 271) + name_list("ssh-rsa") + struct.pack("!I", 256) + self.rng.bytes(256))
        flow.send(False, self._plain_packet(reply) + self._plain_packet(b"\x15"))
        flow.send(True, self._plain_packet(b"\x15"))
        # service request, user auth, channel open, subsystem / exec: short encrypted packets
        for payload_len in (17, 60, 340, 24, 40):
            flow.send(True, self.sealed(payload_len + int(self.rng.integers(0, 8))))
            flow.send(False, self.sealed(int(self.rng.integers(8, 40))))

    def message(self, flow, left):
        space = room(self.cap, left)
        if self.sftp:
            # SSH_FXP_READ / SSH_FXP_WRITE of 32 KiB, answered by SSH_FXP_DATA / SSH_FXP_STATUS
            n = min(space, 32768 + 13)
            if self.upload:
                flow.send(True, self.sealed(9 + 4 + 25 + n))
                flow.send(False, self.sealed(9 + 28))
            else:
                flow.send(True, self.sealed(9 + 29))
                flow.send(False, self.sealed(9 + 13 + n))
        else:
            # scp: channel data in 16 KiB packets, the receiver's window adjusts now and then
            flow.send(self.upload, self.sealed(9 + min(space, 16384)))
            if self.rng.random() < 0.25:
                flow.send(not self.upload, self.sealed(9))
