#!/usr/bin/env python3
"""Checks, without Auditdesk, that an event is in Auditdesk's signed log.

    python3 check-proof.py EVENT_LINE PROOF_JSON [VERIFIER_KEY]

EVENT_LINE   a file holding the event's NDJSON line, exactly as
             `auditdesk export --format ndjson` writes it (its leaf).
PROOF_JSON   a file holding GET /api/v1/audit-logs/{id}/proof.
VERIFIER_KEY the output of `auditdesk key public` (name+keyid+base64): with it
             the checkpoint's Ed25519 signature is checked too, which needs
             the `cryptography` package (pip install cryptography).

Python's standard library does the rest: the RFC 6962 leaf hash
SHA-256(0x00 || line), the audit path up to the tree head (RFC 9162,
2.1.3.2), and the tree size and head against the checkpoint
(c2sp.org/tlog-checkpoint). Exit 0 when everything holds, 1 when not.
"""
import base64
import hashlib
import json
import sys


def sha256(data):
    return hashlib.sha256(data).digest()


def fail(why):
    print(f"NOT PROVEN: {why}")
    sys.exit(1)


def root_from_path(leaf, index, size, path):
    """RFC 9162, 2.1.3.2: the tree head that `path` leads to from `leaf`."""
    if index >= size:
        fail("the leaf index is past the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            fail("the audit path is too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        fail("the audit path is too short")
    return r


def check_signature(text, signatures, key):
    name, key_id, key_b64 = key.strip().split("+", 2)
    key_bytes = base64.b64decode(key_b64)
    if key_bytes[0] != 1 or len(key_bytes) != 33:
        fail("not an Ed25519 verifier key")
    if sha256(name.encode() + b"\n" + key_bytes)[:4].hex() != key_id:
        fail("the verifier key's id does not match the key")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = Ed25519PublicKey.from_public_bytes(key_bytes[1:])
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == "\u2014" and parts[1] == name:
            blob = base64.b64decode(parts[2])
            if blob[:4].hex() == key_id:
                public.verify(blob[4:], text.encode())  # raises if invalid
                return
    fail(f"the checkpoint has no signature by {name}+{key_id}")


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        sys.exit(2)
    line = open(sys.argv[1], "rb").read()
    if line.endswith(b"\n"):
        line = line[:-1]
    proof = json.load(open(sys.argv[2]))
    leaf = sha256(b"\x00" + line)
    if leaf.hex() != proof["leaf_hash"]:
        fail("the event's leaf hash is not the one the proof is for")
    path = [bytes.fromhex(p) for p in proof["audit_path"]]
    root = root_from_path(leaf, proof["leaf_index"], proof["tree_size"], path)
    note = proof["checkpoint"]
    split = note.rfind("\n\n")
    if split < 0:
        fail("the checkpoint is not a signed note")
    text, signatures = note[: split + 1], note[split + 2 :]
    lines = text.split("\n")
    origin, size, head = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if size != proof["tree_size"]:
        fail(f"the checkpoint signs {size} leaves, the proof is for {proof['tree_size']}")
    if head != root:
        fail("the audit path does not lead to the checkpoint's tree head")
    signed = "signature not checked (no verifier key given)"
    if len(sys.argv) == 4:
        check_signature(text, signatures, open(sys.argv[3]).read())
        signed = "signature checked"
    print(
        f"ok: leaf {proof['leaf_index']} is in {origin}'s log of {size} events, "
        f"tree head {lines[2]}; {signed}"
    )


if __name__ == "__main__":
    main()
