"""Fixtures for the contract tests: brownie starts its own Ganache (brownie-config.yaml).

Each test runs in isolation (brownie's snapshot/revert), so tests may spend, sleep the clock
and finalize freely.
"""

import os

import brownie
import pytest
from brownie import BountyTree, Reputation, accounts, chain, web3

STAKE = 10**16  # 0.01 ETH
BOUNTY = 10**18  # 1 ETH
SPEC = b"\x11" * 32
VALIDATION = b"\x22" * 32
DAY = 24 * 3600


def reverts(error_name: str):
    """Expect a revert with the custom error `error_name` (brownie renders it `Name: args`)."""
    return brownie.reverts(revert_pattern=rf"{error_name}(:.*)?")


def cid(n: int) -> bytes:
    """A distinct non-zero bytes32 standing for a CID."""
    return n.to_bytes(32, "big")


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    pass


ROLES = ["admin", "oracle", "sponsor", "architect", "alice", "bob", "publisher", "outsider"]


def _role_fixture(index: int):
    return pytest.fixture(scope="module", name=ROLES[index])(lambda: accounts[index])


# one fixture per role: admin is accounts[0], oracle accounts[1], …
for _i, _role in enumerate(ROLES):
    globals()[f"_{_role}_fixture"] = _role_fixture(_i)


@pytest.fixture(scope="module")
def reputation(admin):
    return Reputation.deploy({"from": admin})


@pytest.fixture(scope="module")
def tree(reputation, admin, oracle):
    contract = BountyTree.deploy(reputation, admin, oracle, {"from": admin})
    reputation.bindWriter(contract, {"from": admin})
    return contract


class Market:
    """The calls every test repeats, with the defaults of a typical task."""

    def __init__(self, tree, oracle):
        self.tree = tree
        self.oracle = oracle

    def create_task(self, sponsor, *, bounty=BOUNTY, target=9000, deadline_in=DAY,
                    shares=(5000, 3000, 2000), stake=STAKE, spec=SPEC, validation=VALIDATION):
        tx = self.tree.createTask(spec, validation, target, chain.time() + deadline_in, *shares,
                                  stake, {"from": sponsor, "value": bounty})
        return tx.return_value

    def propose(self, task_id, author, spec=None, value=STAKE):
        spec = spec or cid(1000 + len(chain))
        return self.tree.proposeArchitecture(task_id, spec, {"from": author, "value": value}).return_value

    def publish(self, task_id, author, data=cid(77)):
        return self.tree.publishDataset(task_id, data, {"from": author}).return_value

    @staticmethod
    def commitment(author, task_id, parent_id, weights, ops, dataset_id, salt):
        encoded = brownie.convert.to_bytes(
            web3.codec.encode(
                ["address", "uint256", "uint256", "bytes32", "uint64", "uint256", "bytes32"],
                [str(author), task_id, parent_id, weights, ops, dataset_id, salt],
            ),
            "bytes",
        )
        return web3.keccak(encoded)

    def commit(self, task_id, author, parent_id, weights, ops=1000, dataset_id=0, salt=None, value=STAKE):
        salt = salt or os.urandom(32)
        c = self.commitment(author, task_id, parent_id, weights, ops, dataset_id, salt)
        tx = self.tree.commitSubmission(task_id, c, {"from": author, "value": value})
        return c, salt, tx

    def submit(self, task_id, author, parent_id, weights=None, ops=1000, dataset_id=0, value=STAKE):
        """Commit, let a block pass, reveal: the trained node's id."""
        weights = weights or cid(5000 + len(chain))
        _, salt, _ = self.commit(task_id, author, parent_id, weights, ops, dataset_id, value=value)
        tx = self.tree.revealSubmission(task_id, parent_id, weights, ops, dataset_id, salt, {"from": author})
        return tx.return_value

    def score(self, task_id, scores: dict, ops: dict | None = None):
        ids = sorted(scores)
        ops = ops or {}
        return self.tree.recordScores(task_id, ids, [scores[i] for i in ids], [ops.get(i, 0) for i in ids],
                                      {"from": self.oracle})


@pytest.fixture(scope="module")
def market(tree, oracle):
    return Market(tree, oracle)
