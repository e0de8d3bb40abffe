"""Everything put on a task (an architecture, a dataset, trained weights) is committed before a
store holds its bytes, and revealed only after: on the session's real chain and store, the CID
each upload stores is checked against what the chain holds at that moment. A store that
announces new content (a public IPFS node does) would otherwise show a watcher the CID before
the commitment, and the watcher, committing first, could reveal first: the dataset would be
theirs (one dataset per content per task), the architecture or weights the original the real
author's would be rejected as a copy of."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import save

from bountytree.config import ROOT
from bountytree.errors import UserError
from bountytree.models import weights
from bountytree.models.datasets import load_file
from bountytree.models.spec import load_spec
from bountytree.storage.store import cid_of
from tests.conftest import cli_ok, created_task_id, market_for, new_task

MLP = ROOT / "examples" / "mlp.json"


class _Watched:
    """Wraps a market's store: for every file added, whether this account's commitment and
    reveal for the task were on-chain at that moment, and whether the store had it before."""

    def __init__(self, market, task_id: int):
        self.market, self.task_id, self.seen = market, task_id, {}
        self._add = market.store.add
        market.store.add = self.add

    def _mine(self, event: str) -> int:
        me = self.market.chain.address
        return len(
            [
                e
                for e in self.market.logs(event, taskId=self.task_id)
                if me in (e["args"].get("author"), e["args"].get("publisher"))
            ]
        )

    def add(self, stream) -> str:
        data = stream.read()
        cid = cid_of(data)
        self.seen[cid] = {
            "had": self.market.store.has(cid),
            "commitments": self._mine("SubmissionCommitted"),
            "reveals": sum(
                self._mine(e) for e in ("ArchitectureProposed", "NodeSubmitted", "DatasetPublished")
            ),
        }
        return self._add(io.BytesIO(data))


def test_a_file_reaches_the_store_after_its_commitment_and_before_its_reveal(
    settings, deployed, files, tmp_path
):
    task_id = new_task(settings, files["validation"], "hidden until committed")
    market = market_for(settings, 5)
    watched = _Watched(market, task_id)

    # Files no test of the session has stored yet: a spec of its own name, a dataset of its own
    # rows, weights of their own (they stand for trained ones).
    spec = load_spec(MLP.read_bytes().replace(b"digits MLP 64-64-10", b"hidden until committed"))
    proposed = market.propose(task_id, spec)
    mine = tmp_path / "public.csv"
    mine.write_bytes(b"".join(files["public"].read_bytes().splitlines(keepends=True)[:-7]))
    published = market.publish_dataset(task_id, mine)
    state = weights.load(weights.initial_weights(spec), spec)
    state["2.bias"] += torch.rand(state["2.bias"].shape, generator=torch.Generator().manual_seed(5))
    trained = save(state)
    submitted = market.submit(
        task_id, proposed.node_id, cid_of(trained), published.dataset_id, content=trained
    )

    for cid, n in (
        (proposed.spec_cid, 0),
        (published.cid, 1),
        (cid_of(trained), 2),
    ):
        assert cid in watched.seen, cid
        seen = watched.seen[cid]
        # uploaded once its own commitment was mined (n earlier ones, then this one) and before
        # its own reveal (after the n earlier reveals)
        assert seen == {"had": False, "commitments": n + 1, "reveals": n}, (cid, seen)
        assert market.store.has(cid) and cid in market.store.pins()
    nodes = market.nodes(task_id)
    assert nodes[submitted.node_id].dataset_id == published.dataset_id


def test_a_dataset_is_one_per_content_and_counted_in_its_task(settings, deployed, files):
    """The same file twice in one task is refused before anything is sent; in another task it
    is that task's dataset 1. The stake comes back at the reveal, the fee stays in the pool."""
    first = created_task_id(
        cli_ok(
            settings,
            *("task", "create", "--validation", str(files["validation"]), "--name", "datasets"),
            *("--bounty", "1", "--target", "0.5", "--deadline", "2h", "--stake", "0.01"),
            *("--scoring-fee", "0.001"),
        )
    )
    second = new_task(settings, files["validation"], "datasets two")
    publisher = market_for(settings, 6)
    before = publisher.pending()
    out = publisher.publish_dataset(first, files["public"])
    assert out.dataset_id == 1
    assert publisher.pending() - before == publisher.task(first).stake
    assert publisher.task(first).pool == publisher.task(first).bounty + 10**15
    nonce = publisher.chain.w3.eth.get_transaction_count(publisher.chain.address)
    with pytest.raises(UserError, match=r"already dataset 1 of task \d+; train with --dataset 1"):
        market_for(settings, 7).publish_dataset(first, files["public"])
    assert publisher.chain.w3.eth.get_transaction_count(publisher.chain.address) == nonce
    assert publisher.publish_dataset(second, files["public"]).dataset_id == 1
    rows = load_file(files["public"], "label")
    assert len(publisher.dataset(second, 1, "label")) == len(rows)


def test_a_commitment_a_client_left_is_revealed_later(settings, deployed, files, tmp_path):
    """A client stopped between the halves (after the upload, then before it): `bountytree
    reveal` finishes the first from the saved record, and says the second cannot be revealed
    (its file never reached the store) and leaves it for `reclaim`. Without it the first would
    lose its fee at reclaim: a commitment never revealed was left, since finalize waits for it."""
    task_id = new_task(settings, files["validation"], "revealed later")
    market = market_for(settings, 8)
    spec = load_spec(MLP.read_bytes().replace(b"digits MLP 64-64-10", b"revealed later"))
    arch = market.propose(task_id, spec).node_id
    state = weights.load(weights.initial_weights(spec), spec)

    def stopped(trained: bytes) -> None:
        with pytest.raises(RuntimeError, match="stopped"):
            market.submit(task_id, arch, cid_of(trained), content=trained)

    def stop(*_args, **_kwargs):
        raise RuntimeError("stopped")

    state["2.bias"] += 1.0
    uploaded = save(state)
    market.chain.wait_for_block_after = stop  # after the upload, before the reveal
    stopped(uploaded)
    del market.chain.wait_for_block_after
    state["2.bias"] += 1.0
    never = save(state)
    market.store.add = stop  # before the upload
    stopped(never)
    del market.store.add
    assert market.store.has(cid_of(uploaded)) and not market.store.has(cid_of(never))

    out = cli_ok(settings, "reveal", "--task", str(task_id), "--account", "dev:8")
    assert f"its file {cid_of(never)} is not in the store; not revealed" in out, out
    revealed = [n for n in market.nodes(task_id).values() if n.parent_id == arch]
    assert [n.weights_cid(spec) for n in revealed] == [cid_of(uploaded)], out
    assert f"revealed as node {revealed[0].id}" in out
    again = cli_ok(settings, "reveal", "--task", str(task_id), "--account", "dev:8")
    assert "revealed as" not in again and cid_of(never) in again  # the first is done
