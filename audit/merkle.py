"""RFC 9162 Merkle tree over the audit records: roots, inclusion and consistency proofs.

The leaf for record ``seq`` is its 32-byte record hash (SHA-256 of the canonical JSON
body the chain stores), so the leaf hash is ``SHA-256(0x00 || record_hash)``. The record
hash already commits to every byte of the record, and hashing 33 bytes instead of the
whole body again keeps the append hot path cheap. Leaf index = ``seq - 1``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "MerkleTree",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_from_leaves",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 9162 root of the empty tree: the hash of the empty string."""


class ProofError(ValueError):
    """A proof does not verify, or its sizes and indexes are out of range."""


def leaf_hash(record_hash: bytes) -> bytes:
    """RFC 9162 leaf hash of one record: SHA-256(0x00 || record hash)."""
    return hashlib.sha256(b"\x00" + record_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactRange:
    """The O(log n) stack of perfect-subtree hashes that gives the root after each append.

    Appending costs one leaf-sized merge on average; ``root`` folds at most log2(n)
    hashes, so the store can keep the current root without re-reading its leaves.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        """An empty range (tree size 0)."""
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, hash), sizes decreasing
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at index ``size``."""
        stack = self._stack
        size, digest = 1, leaf
        while stack and stack[-1][0] == size:
            left = stack.pop()[1]
            digest = node_hash(left, digest)
            size *= 2
        stack.append((size, digest))
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add several leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """RFC 9162 root of the ``size`` leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = node_hash(left, digest)
        return digest

    def to_bytes(self) -> bytes:
        """The subtree hashes, largest first; with ``size`` they are the whole state."""
        return b"".join(digest for _, digest in self._stack)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Inverse of ``to_bytes``: the subtree sizes are the binary digits of ``size``."""
        sizes = [1 << bit for bit in reversed(range(size.bit_length())) if size >> bit & 1]
        if size < 0 or len(data) != 32 * len(sizes):
            raise ValueError(f"{len(data)} bytes are not a compact range of size {size}")
        out = cls()
        out._stack = [(n, data[32 * i:32 * i + 32]) for i, n in enumerate(sizes)]
        out.size = size
        return out

    def copy(self) -> CompactRange:
        """An independent copy, so a failed append can roll back."""
        out = CompactRange()
        out._stack = list(self._stack)
        out.size = self.size
        return out


def root_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """RFC 9162 root of the given leaf hashes."""
    compact = CompactRange()
    compact.extend(leaves)
    return compact.root()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """All perfect subtrees over a list of leaf hashes, for proofs against any size <= n.

    Level k holds the hashes of the complete subtrees of 2**k leaves; any RFC 9162 range
    hash is then O(log n) lookups, so many proofs over one tree stay cheap.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        """Build the levels once: n - 1 node hashes, each level packed in one bytes object
        (32 bytes a node), so a million leaves take ~64 MB rather than millions of objects."""
        if any(len(leaf) != 32 for leaf in leaves):
            raise ValueError("leaf hashes must be 32 bytes")
        self._size = len(leaves)
        self._levels: list[bytes] = [b"".join(leaves)]
        n = self._size
        sha256 = hashlib.sha256
        while n >= 2:
            below = self._levels[-1]
            self._levels.append(b"".join(
                sha256(b"\x01" + below[i:i + 64]).digest() for i in range(0, n // 2 * 64, 64)))
            n //= 2

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def _hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for 0 <= lo < hi <= size, as the RFC 9162 recursion defines it."""
        n = hi - lo
        level = n.bit_length() - 1
        if n == 1 << level and lo % n == 0:
            at = (lo >> level) * 32
            return self._levels[level][at:at + 32]
        k = _split(n)
        return node_hash(self._hash(lo, lo + k), self._hash(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """RFC 9162 root of the first ``size`` leaves (all by default)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is out of range 0..{self.size}")
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 section 2.1.3.1 PATH(index, D[0:size])."""
        if not 0 <= index < size <= self.size:
            raise ProofError(f"leaf index {index} is not in a tree of size {size}")
        path: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._hash(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._hash(lo, lo + k))
                lo = lo + k
        path.reverse()  # the recursion appends from the root down; proofs go leaf up
        return path

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 section 2.1.4.1 PROOF(m, D[0:n])."""
        if not 0 < old_size <= new_size <= self.size:
            raise ProofError(f"no consistency proof from size {old_size} to {new_size}")
        proof: list[bytes] = []
        lo, hi, m, complete = 0, new_size, old_size, True  # m counts old leaves from lo
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._hash(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._hash(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:  # SUBPROOF(m, D[m], false) = [MTH(D[m])]
            proof.append(self._hash(lo, hi))
        proof.reverse()
        return proof


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2: raise ProofError unless ``proof`` puts ``leaf`` in ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError(f"inclusion proof of leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2: raise ProofError unless the old tree is a prefix of the new."""
    if not 0 < old_size <= new_size:
        raise ProofError(f"no consistency between sizes {old_size} and {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old_size}")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than expected")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than expected")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the root of size {new_size}")
