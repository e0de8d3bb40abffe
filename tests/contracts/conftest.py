"""Fixtures for the contract tests: brownie starts its own Ganache (brownie-config.yaml).

Each test runs in isolation (brownie's snapshot/revert), so tests may spend, sleep the clock
and finalize freely.
"""

import os

import brownie
import pytest
from brownie import BountyTree, Payouts, Reputation, accounts, chain, web3
from brownie.network.transaction import TransactionReceipt

STAKE = 10**16  # 0.01 ETH
BOUNTY = 10**18  # 1 ETH
SPEC = b"\x11" * 32
VALIDATION = b"\x22" * 32
DAY = 24 * 3600
LEVY_BPS = 100  # the contract's REPUTATION_LEVY_BPS (asserted in test_withdraw_and_reputation)


def net(wei: int) -> int:
    """What a path credit of `wei` to an account other than the sponsor is, net of its levy."""
    return wei - wei * LEVY_BPS // 10_000


def reverts(error_name: str):
    """Expect a revert with the custom error `error_name` (brownie renders it `Name: args`)."""
    return brownie.reverts(revert_pattern=rf"{error_name}(:.*)?")


def events(tx, name: str) -> list:
    """The `name` events a transaction emitted, [] for none (brownie's EventDict has no `get`)."""
    return list(tx.events[name]) if name in tx.events else []


def cid(n: int) -> bytes:
    """A distinct non-zero bytes32 standing for a CID."""
    return n.to_bytes(32, "big")


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    # brownie's clock set from the chain's own offset (both Ganache and anvil answer a zero
    # evm_increaseTime with it): after a revert anvil winds its clock back to the snapshot, which
    # brownie does not follow, and brownie's anvil backend returns 0 from chain.sleep(0).
    offset = web3.provider.make_request("evm_increaseTime", [0])["result"]
    chain._time_offset = int(offset, 0) if isinstance(offset, str) else int(offset)


ROLES = [
    "admin",
    "oracle",
    "sponsor",
    "architect",
    "alice",
    "bob",
    "publisher",
    "outsider",
    "mallory",
    "sybil",
]


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
    # BountyTree calls the Payouts library; brownie links the last one deployed
    Payouts.deploy({"from": admin})
    contract = BountyTree.deploy(reputation, admin, oracle, {"from": admin})
    reputation.bindWriter(contract, {"from": admin})
    return contract


class Market:
    """The calls every test repeats, with the defaults of a typical task."""

    def __init__(self, tree, oracle):
        self.tree = tree
        self.oracle = oracle

    def create_task(
        self,
        sponsor,
        *,
        bounty=BOUNTY,
        target=9000,
        deadline_in=DAY,
        deadline=None,
        shares=(5000, 3000, 2000),
        stake=STAKE,
        spec=SPEC,
        validation=VALIDATION,
        fee=0,
        cap=0,
        bond=0,
        private=False,
    ):
        """createTask; msg.value is the bounty plus the audit bond."""
        deadline = deadline or chain.time() + deadline_in
        tx = self.tree.createTask(
            spec,
            validation,
            target,
            deadline,
            *shares,
            stake,
            fee,
            cap,
            bond,
            private,
            {"from": sponsor, "value": bounty + bond},
        )
        return tx.return_value

    def propose(self, task_id, author, spec=None, value=STAKE):
        """An architecture: a node with parent 0, committed and revealed like any other."""
        return self.submit(task_id, author, 0, spec or cid(1000 + len(chain)), value=value)

    @staticmethod
    def dataset_commitment(author, task_id, data, salt):
        """keccak256(abi.encode(author, taskId, dataCid, salt))."""
        encoded = web3.codec.encode(
            ["address", "uint256", "bytes32", "bytes32"], [str(author), task_id, data, salt]
        )
        return web3.keccak(brownie.convert.to_bytes(encoded, "bytes"))

    def publish(self, task_id, author, data=None, value=None):
        """Commit (at the task's price unless `value` says otherwise), let a block pass, reveal
        the dataset: its id in the task."""
        data = data or cid(7000 + len(chain))
        if value is None:
            t = self.tree.getTask(task_id).dict()
            value = t["submissionStake"] + t["scoringFee"]
        salt = os.urandom(32)
        c = self.dataset_commitment(author, task_id, data, salt)
        self.tree.commitSubmission(task_id, c, {"from": author, "value": value})
        return self.tree.revealDataset(task_id, data, salt, {"from": author}).return_value

    @staticmethod
    def commitment(author, task_id, parent_id, weights, dataset_id, salt):
        """keccak256(abi.encode(author, taskId, parentId, weightsCid, datasetId, salt))."""
        encoded = brownie.convert.to_bytes(
            web3.codec.encode(
                ["address", "uint256", "uint256", "bytes32", "uint256", "bytes32"],
                [str(author), task_id, parent_id, weights, dataset_id, salt],
            ),
            "bytes",
        )
        return web3.keccak(encoded)

    def commit(self, task_id, author, parent_id, weights, dataset_id=0, salt=None, value=STAKE):
        salt = salt or os.urandom(32)
        c = self.commitment(author, task_id, parent_id, weights, dataset_id, salt)
        tx = self.tree.commitSubmission(task_id, c, {"from": author, "value": value})
        return c, salt, tx

    def submit(self, task_id, author, parent_id, weights=None, dataset_id=0, value=STAKE):
        """Commit, let a block pass, reveal: the trained node's id."""
        weights = weights or cid(5000 + len(chain))
        _, salt, _ = self.commit(task_id, author, parent_id, weights, dataset_id, value=value)
        tx = self.tree.revealSubmission(
            task_id, parent_id, weights, dataset_id, salt, {"from": author}
        )
        return tx.return_value

    def score(self, task_id, scores: dict, ops: dict | None = None, datasets: dict | None = None):
        """recordScores with one Score tuple (nodeId, accuracyBps, verifiedOps, datasetId) per node,
        in id order; a node's dataset defaults to the one it declared."""
        ids = sorted(scores)
        ops = ops or {}
        datasets = datasets or {}
        declared = [n[4] for n in self.tree.getNodes(ids)]  # Node.datasetId
        records = [
            (i, scores[i], ops.get(i, 0), datasets.get(i, d))
            for i, d in zip(ids, declared, strict=False)
        ]
        return self.tree.recordScores(task_id, records, {"from": self.oracle})


def automine(on: bool) -> None:
    """Mining on each transaction, on or off: `evm_setAutomine` on anvil and Hardhat,
    `miner_start`/`miner_stop` on Ganache (each lacks the other's)."""
    reply = web3.provider.make_request("evm_setAutomine", [on])
    if "error" in reply:
        reply = web3.provider.make_request("miner_start" if on else "miner_stop", [])
    assert "error" not in reply, reply


def past_reveals(tree, task_id) -> None:
    """Moves the chain's clock past the task's reveal window (REVEAL_WINDOW after its deadline,
    which reaching the target brought forward): finalize no longer waits for open commitments."""
    close = tree.getTask(task_id).dict()["deadline"] + tree.REVEAL_WINDOW()
    chain.sleep(max(0, close - chain.time()) + 1)
    chain.mine()


def mined_at(timestamp, contract_method, *args, sender, value=0):
    """Sends one call in a block mined at exactly `timestamp` (brownie's own calls land a second or
    two later than asked); returns its receipt, reverted or not (`revert_msg` names the error)."""
    tx = {
        "from": sender.address,
        "to": contract_method._address,
        "gas": 1_000_000,
        "gasPrice": 10**9,
        "value": value,
        "data": contract_method.encode_input(*args),
    }
    automine(False)
    try:
        tx_hash = web3.eth.send_transaction(tx)
        web3.provider.make_request("evm_mine", [timestamp])
    finally:
        automine(True)
    web3.eth.wait_for_transaction_receipt(tx_hash)
    receipt = TransactionReceipt(tx_hash)
    assert receipt.timestamp == timestamp
    return receipt


@pytest.fixture(scope="module")
def market(tree, oracle):
    return Market(tree, oracle)
