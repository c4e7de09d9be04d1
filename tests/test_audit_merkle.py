"""RFC 9162 Merkle tree: known vectors, a naive reference, proofs over many sizes."""

from __future__ import annotations

import hashlib
import random

import pytest

from lictor.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    ProofError,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

# The RFC 6962 test vectors used by Certificate Transparency implementations
# (transparency-dev/merkle, Trillian): raw leaf data and the roots of sizes 1..8.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def raw_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 section 2.1.1, recursively."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from RFC 9162 section 2.1.3.1."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_root(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_root(leaves[:k])]


def naive_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) straight from RFC 9162 section 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [naive_root(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, leaves[:k], b), naive_root(leaves[k:])]
    return [*naive_subproof(m - k, leaves[k:], False), naive_root(leaves[:k])]


def leaves_of(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [hashlib.sha256(rng.randbytes(16)).digest() for _ in range(n)]


def test_known_ct_roots() -> None:
    leaves = [raw_leaf(d) for d in CT_LEAVES]
    tree = MerkleTree(leaves)
    compact = CompactRange()
    for size, want in enumerate(CT_ROOTS, start=1):
        compact.append(leaves[size - 1])
        assert compact.root().hex() == want
        assert tree.root(size).hex() == want
        assert naive_root(leaves[:size]).hex() == want
    assert tree.root(0) == CompactRange().root() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_known_ct_inclusion_and_consistency_proofs() -> None:
    """Vectors from transparency-dev/merkle's proof tests (RFC 6962 data above)."""
    tree = MerkleTree([raw_leaf(d) for d in CT_LEAVES])
    assert [h.hex() for h in tree.inclusion_proof(0, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [h.hex() for h in tree.consistency_proof(1, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [h.hex() for h in tree.consistency_proof(6, 8)] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]


def test_compact_range_matches_reference_for_every_size() -> None:
    leaves = leaves_of(300)
    compact = CompactRange()
    for n in range(301):
        assert compact.size == n
        assert compact.root() == naive_root(leaves[:n]) == root_from_leaves(leaves[:n]), n
        if n < 300:
            compact.append(leaves[n])


def test_compact_range_round_trips_through_bytes() -> None:
    compact = CompactRange()
    for n, leaf in enumerate(leaves_of(130), start=1):
        compact.append(leaf)
        again = CompactRange.from_bytes(n, compact.to_bytes())
        assert (again.size, again.root()) == (n, compact.root())
        assert len(compact.to_bytes()) == 32 * bin(n).count("1")
    with pytest.raises(ValueError):
        CompactRange.from_bytes(131, compact.to_bytes())


def test_proofs_match_reference_and_verify_for_all_small_sizes() -> None:
    leaves = leaves_of(70, seed=11)
    tree = MerkleTree(leaves)
    for n in range(1, 71):
        root = naive_root(leaves[:n])
        assert tree.root(n) == root
        for i in range(n):
            path = tree.inclusion_proof(i, n)
            assert path == naive_path(i, leaves[:n]), (i, n)
            verify_inclusion(i, n, leaves[i], path, root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == naive_subproof(m, leaves[:n], True), (m, n)
            verify_consistency(m, n, naive_root(leaves[:m]), root, proof)


def test_random_large_sizes_verify() -> None:
    rng = random.Random(2026)
    leaves = leaves_of(5000, seed=3)
    tree = MerkleTree(leaves)
    compact = CompactRange()
    compact.extend(leaves)
    assert compact.root() == tree.root()
    for _ in range(300):
        n = rng.randint(1, 5000)
        m = rng.randint(1, n)
        i = rng.randrange(n)
        root = tree.root(n)
        verify_inclusion(i, n, leaves[i], tree.inclusion_proof(i, n), root)
        verify_consistency(m, n, tree.root(m), root, tree.consistency_proof(m, n))


def flipped(proof: list[bytes], at: int) -> list[bytes]:
    out = list(proof)
    out[at] = bytes([out[at][0] ^ 1]) + out[at][1:]
    return out


def test_bad_inclusion_proofs_fail() -> None:
    rng = random.Random(5)
    leaves = leaves_of(200, seed=5)
    tree = MerkleTree(leaves)
    for _ in range(100):
        n = rng.randint(2, 200)
        i = rng.randrange(n)
        root, path = tree.root(n), tree.inclusion_proof(i, n)
        for at in range(len(path)):
            with pytest.raises(ProofError):
                verify_inclusion(i, n, leaves[i], flipped(path, at), root)
        other = (i + 1) % n
        with pytest.raises(ProofError):
            verify_inclusion(other, n, leaves[i], path, root)  # wrong position
        with pytest.raises(ProofError):
            verify_inclusion(i, n, leaves[i], [*path, path[0]], root)  # too long
        with pytest.raises(ProofError):
            verify_inclusion(i, n, leaves[i], path[:-1], root)  # too short
        with pytest.raises(ProofError):
            verify_inclusion(i, n, leaves[(i + 1) % n], path, root)  # another leaf
    with pytest.raises(ProofError):
        verify_inclusion(5, 5, leaves[0], [], tree.root(5))


def test_bad_consistency_proofs_fail() -> None:
    rng = random.Random(9)
    leaves = leaves_of(200, seed=9)
    tree = MerkleTree(leaves)
    for _ in range(100):
        n = rng.randint(2, 200)
        m = rng.randint(1, n - 1)
        old, new, proof = tree.root(m), tree.root(n), tree.consistency_proof(m, n)
        for at in range(len(proof)):
            with pytest.raises(ProofError):
                verify_consistency(m, n, old, new, flipped(proof, at))
        with pytest.raises(ProofError):
            verify_consistency(m, n, tree.root(m - 1) if m > 1 else new, new, proof)
        with pytest.raises(ProofError):
            verify_consistency(m, n, old, tree.root(n - 1) if n - 1 > m else old, proof)
        with pytest.raises(ProofError):
            verify_consistency(m, n, old, new, [])
    with pytest.raises(ProofError):
        verify_consistency(3, 3, tree.root(3), tree.root(4), [])
    verify_consistency(3, 3, tree.root(3), tree.root(3), [])
    with pytest.raises(ProofError):
        tree.consistency_proof(0, 3)
    with pytest.raises(ProofError):
        tree.root(201)
