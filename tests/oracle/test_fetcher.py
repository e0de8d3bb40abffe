"""The oracle's Fetcher on a real IPFS daemon: of the store's three kinds of failure, only a
file missing past its node's fetch timeout is held against the author. Corrupted bytes make the
node wait; a daemon that is down, or killed mid-transfer, fails the round with nobody blamed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import store_damage as damage
import urllib3
from ipfs_daemon import own_daemon

from bountytree.reasons import Reason, Rejected
from bountytree.storage.cid import cid_from_digest, digest_from_cid
from bountytree.storage.kubo import KuboStore
from bountytree.storage.store import StoreUnavailable, add_bytes
from bountytree.storage.unixfs import CHUNK_SIZE
from oracle.checks import Fetcher, NotYet

TIMEOUT = 60.0  # the node's fetch timeout, in chain seconds


def fetcher(store, age: float) -> Fetcher:
    """A fetcher of a node's own files (the oracle's for the node it checks)."""
    return Fetcher(store, lambda: age, TIMEOUT, own=True)


def test_missing_waits_inside_the_timeout_and_is_rejected_past_it(ipfs_daemon):
    store = KuboStore(ipfs_daemon.url, timeout=1.0)
    absent = cid_from_digest(os.urandom(32))
    with pytest.raises(NotYet, match="not in the store yet") as young:
        fetcher(store, TIMEOUT - 1).get(absent, 1000, "weights")
    assert young.value.own  # the author's file, not come yet: no validator's doing
    # an older node's file (a parent's, an architecture's spec) that this store cannot give is
    # no wait of the node's own: another store, the file withheld, would have it hold nothing
    with pytest.raises(NotYet, match="not in the store yet") as older:
        Fetcher(store, lambda: 0.0, float("inf")).get(absent, 1000, "spec")
    assert not older.value.own
    with pytest.raises(Rejected) as rejected:
        fetcher(store, TIMEOUT + 1).get(absent, 1000, "weights")
    assert rejected.value.reason == Reason.MISSING


def _add_chunked(url: str, data: bytes, chunk: int) -> str:
    """The daemon's own add with another chunker: the same bytes under another CID."""
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answer = urllib3.request(
        "POST",
        f"{url}/api/v0/add?cid-version=0&chunker=size-{chunk}&raw-leaves=false&pin=true",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    return json.loads(answer.data.splitlines()[-1])["Hash"]


def test_a_file_laid_out_other_than_the_store_adds_it_is_the_authors(ipfs_daemon):
    """The validator takes a file its store lacks from the oracle's model party only when the
    bytes give the chain's CID as the store adds them; a file laid out otherwise (another
    chunker, the same depth) could be served to the oracle's store alone and checked by nobody
    else, so the oracle rejects it as the author's making (the store's reader refuses the
    layout; the Fetcher checks the CID of what it read as well)."""
    store = KuboStore(ipfs_daemon.url, timeout=1.0)
    data = os.urandom(CHUNK_SIZE + 1000)  # two chunks under one root; three of 100 kB likewise
    limit = 2 * CHUNK_SIZE
    canonical = add_bytes(store, data)
    other = _add_chunked(ipfs_daemon.url, data, 100_000)
    assert other != canonical
    with pytest.raises(Rejected) as rejected:
        fetcher(store, 0).get(other, limit, "weights")
    assert rejected.value.reason == Reason.CORRUPT and "as IPFS adds it" in str(rejected.value)
    assert fetcher(store, 0).get(canonical, limit, "weights") == data


def test_corrupted_bytes_from_the_daemon_wait_at_any_age(ipfs_daemon):
    store = KuboStore(ipfs_daemon.url, timeout=1.0)
    cid = add_bytes(store, os.urandom(1000))
    damage.corrupt(ipfs_daemon, digest_from_cid(cid))
    with pytest.raises(NotYet, match=f"{cid} is corrupted.*nobody's fault") as young:
        fetcher(store, TIMEOUT - 1).get(cid, 10_000, "weights")
    assert not young.value.overdue
    assert not young.value.own  # a store's damage: it keeps the word on the validator
    # Past its timeout it is still nobody's fault, but no longer holds up an early finalize.
    with pytest.raises(NotYet, match=f"{cid} is corrupted.*nobody's fault") as old:
        fetcher(store, 10 * TIMEOUT).get(cid, 10_000, "weights")
    assert old.value.overdue


def test_the_exact_score_stays_in_the_oracles_own_log():
    from oracle.service import public_line

    line = "task 3 node 7: 91.25%, recorded 91.00% (a new best)"
    assert public_line(line) == "task 3 node 7: recorded 91.00% (a new best)"
    assert public_line("task 3: 2 scored") == "task 3: 2 scored"


def test_too_large_is_the_authors(ipfs_daemon):
    store = KuboStore(ipfs_daemon.url)
    cid = add_bytes(store, os.urandom(2000))
    with pytest.raises(Rejected) as rejected:
        fetcher(store, 0).get(cid, 1000, "weights")
    assert rejected.value.reason == Reason.TOO_LARGE


class _KillsMidTransfer:
    """The real daemon's store; the daemon is killed once the first piece of a file is out."""

    def __init__(self, store: KuboStore, proc):
        self.store, self.proc = store, proc

    def cat(self, cid: str, limit: int | None = None) -> Iterator[bytes]:
        for i, piece in enumerate(self.store.cat(cid, limit)):
            if i == 0:
                self.proc.kill()
            yield piece


def test_daemon_down_or_killed_mid_transfer_blames_nobody(tmp_path):
    data = os.urandom(64 * CHUNK_SIZE)
    with own_daemon(tmp_path) as daemon:
        store = KuboStore(daemon.url, timeout=5.0)
        cid = add_bytes(store, data)
        assert fetcher(store, 0).get(cid, len(data), "weights") == data
        with pytest.raises(StoreUnavailable, match="cannot reach the IPFS node"):
            fetcher(_KillsMidTransfer(store, daemon.proc), 10 * TIMEOUT).get(
                cid, len(data), "weights"
            )
        daemon.proc.wait()
        for age in (0, 10 * TIMEOUT):  # down: neither waiting nor rejected, the round fails
            with pytest.raises(StoreUnavailable):
                fetcher(store, age).get(cid, len(data), "weights")
