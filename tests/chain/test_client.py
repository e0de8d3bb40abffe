"""The chain client on the session's real local chain (Ganache, or anvil with
BOUNTYTREE_TEST_CHAIN=anvil): refused calls become one decoded line and send nothing; fees are
the chain's; nonces do not collide; confirmations and later blocks are waited for, not mined."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from eth_abi import encode
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from bountytree.chain.client import Chain, describe_revert, eth, ganache_account, revert_bytes
from bountytree.chain.local import start_chain
from bountytree.config import ROOT
from bountytree.errors import UserError
from bountytree.processes import free_port

# NothingToWithdraw(0x28a8…535E), as each node hands it over through web3 7.16 (captured from
# Ganache 7.9 and `hardhat node` 2.28: web3 gives their error objects, dicts, as the data).
ACCOUNT_7 = "0x28a8746e75304c0780E011BEd21C72cD78cd535E"
NOTHING_TO_WITHDRAW = "0xdc69dc1600000000000000000000000028a8746e75304c0780e011bed21c72cd78cd535e"
GANACHE_ESTIMATE_DATA = {
    "hash": None,
    "programCounter": 2484,
    "result": NOTHING_TO_WITHDRAW,
    "reason": None,
    "message": "revert",
}
HARDHAT_DATA = {
    "message": "Error: VM Exception while processing transaction: reverted with an unrecognized "
    f"custom error (return data: {NOTHING_TO_WITHDRAW})",
    "data": NOTHING_TO_WITHDRAW,
}


@pytest.fixture(scope="module")
def task_id(settings, deployed) -> int:
    """An open task (sponsor: account 1) that takes commitments for free (no stake, no fee, no
    cap): each is a real transaction that changes state and costs nothing but gas."""
    sponsor = Chain(settings.with_overrides(account="1"))
    deadline = sponsor.w3.eth.get_block("latest")["timestamp"] + 86400
    created = sponsor.send(
        sponsor.tree.functions.createTask(
            b"\x01" * 32, b"\x02" * 32, 9000, deadline, 5000, 3000, 2000, 0, 0, 0, 0, False
        ),
        value=10**17,
    )
    return sponsor.tree.events.TaskCreated().process_receipt(created.receipt)[0]["args"]["taskId"]


def test_deterministic_accounts_match_the_chain(settings):
    w3 = Web3(Web3.HTTPProvider(settings.rpc))
    assert [ganache_account(i).address for i in range(3)] == w3.eth.accounts[:3]
    assert ganache_account(7).address == ACCOUNT_7


def test_refused_call_is_decoded_and_nothing_is_sent(settings, deployed):
    chain = Chain(settings.with_overrides(account="7"))
    nonce = chain.w3.eth.get_transaction_count(chain.address)
    with pytest.raises(
        UserError, match=rf"refused by the contract: NothingToWithdraw\(account={chain.address}\)"
    ):
        chain.send(chain.tree.functions.withdraw())
    with pytest.raises(
        UserError, match=r"WrongStake\(expected=0, sent=5\)|UnknownTask\(taskId=999\)"
    ):
        chain.send(chain.tree.functions.commitSubmission(999, b"\x01" * 32), value=5)
    assert chain.w3.eth.get_transaction_count(chain.address) == nonce


def test_this_nodes_revert_data_decodes(settings, deployed):
    """Whatever shape this node's revert takes through web3, from a call and from an estimate."""
    chain = Chain(settings.with_overrides(account="7"))
    fn = chain.tree.functions.withdraw()
    for attempt in (fn.call, fn.estimate_gas):
        with pytest.raises((ContractCustomError, ContractLogicError)) as caught:
            attempt({"from": chain.address})
        assert describe_revert(fn.contract_abi, caught.value.data) == (
            f"NothingToWithdraw(account={ACCOUNT_7})"
        )


@pytest.mark.parametrize(
    "data",
    [
        NOTHING_TO_WITHDRAW,  # Ganache's eth_call, anvil, geth
        GANACHE_ESTIMATE_DATA,  # Ganache's eth_estimateGas
        HARDHAT_DATA,  # Hardhat
        {"data": {"data": NOTHING_TO_WITHDRAW}},  # nested once more
        {"message": "execution reverted", "originalError": {"data": NOTHING_TO_WITHDRAW}},
        "Reverted " + NOTHING_TO_WITHDRAW,
        bytes.fromhex(NOTHING_TO_WITHDRAW[2:]),
    ],
)
def test_revert_data_of_every_shape_decodes(data):
    abi = json.loads((ROOT / "build" / "contracts" / "BountyTree.json").read_text())["abi"]
    assert describe_revert(abi, data) == f"NothingToWithdraw(account={ACCOUNT_7})"


def test_solidity_errors_and_missing_data_are_one_line():
    error = "0x08c379a0" + encode(["string"], ["not allowed"]).hex()
    panic = "0x4e487b71" + encode(["uint256"], [0x11]).hex()
    assert describe_revert([], error) == 'Error("not allowed")'
    assert describe_revert([], {"message": "x", "data": panic}) == "Panic(0x11)"
    assert describe_revert([], "0xdeadbeef") == "the contract reverted (unknown error 0xdeadbeef)"
    for nothing in (b"", None, "0x", {"message": "execution reverted"}, "not hex"):
        assert describe_revert([], nothing) == "the contract reverted without a reason"
    assert revert_bytes({"data": {"data": {"data": "0x01"}}}) == b"\x01"


def test_missing_deployment_is_one_line(settings, tmp_path):
    chain_id = Web3(Web3.HTTPProvider(settings.rpc)).eth.chain_id
    with pytest.raises(UserError, match=f"nothing deployed on chain {chain_id}"):
        Chain(settings.with_overrides(deployments=tmp_path))


def test_public_development_keys_are_refused_off_local_chains():
    from bountytree.chain.client import load_account

    sepolia = 11155111
    for spec in (None, "", "3"):
        with pytest.raises(UserError, match="deterministic keys are public"):
            load_account(spec, sepolia)
    assert load_account("dev:3", sepolia).address == ganache_account(3).address  # asked for by name
    assert load_account("3", 1337).address == ganache_account(3).address
    assert load_account(None, 31337).address == ganache_account(0).address


def test_fees_are_the_chains_eip1559_prices(settings, task_id):
    chain = Chain(settings.with_overrides(account="8"))
    fees = chain.fees()
    base = chain.w3.eth.get_block("latest")["baseFeePerGas"]
    assert fees.eip1559 and fees.tip > 0 and fees.max_fee >= fees.likely > fees.tip
    assert fees.max_fee >= base
    quote = chain.quote("commitSubmission", 50_000, 0)
    assert quote.gas_limit > quote.gas and quote.max_fee >= quote.likely_fee > 0
    assert "about" in str(quote) and "at most" in str(quote)
    sent = chain.send(chain.tree.functions.commitSubmission(task_id, b"\x09" * 32))
    tx = chain.w3.eth.get_transaction(sent.tx_hash)
    assert tx["type"] == 2 and tx["maxPriorityFeePerGas"] > 0
    assert tx["maxFeePerGas"] >= sent.receipt["effectiveGasPrice"]
    assert sent.fee == sent.gas_used * sent.receipt["effectiveGasPrice"] > 0
    assert f"fee {eth(sent.fee)} ETH" in str(sent)


def test_a_fee_cap_below_the_price_sends_nothing(settings, task_id):
    chain = Chain(settings.with_overrides(account="8", max_fee_gwei=1e-6))
    nonce = chain.w3.eth.get_transaction_count(chain.address)
    with pytest.raises(UserError, match=r"above --max-fee 1e-06 gwei: nothing sent"):
        chain.send(chain.tree.functions.commitSubmission(task_id, b"\x0a" * 32))
    assert chain.w3.eth.get_transaction_count(chain.address) == nonce


def test_quick_sends_from_one_account_do_not_collide(settings, task_id):
    """Threads of one process, and two processes, send from account 9 at once: every
    transaction is mined, each with its own nonce."""
    chain = Chain(settings.with_overrides(account="9"))
    start = chain.w3.eth.get_transaction_count(chain.address)
    sent, errors = [], []

    def burst(tag: int) -> None:
        mine = Chain(settings.with_overrides(account="9"))
        try:
            for i in range(3):
                cid = bytes([tag + 1, i]) * 16
                sent.append(mine.send(mine.tree.functions.commitSubmission(task_id, cid)))
        except Exception as exc:  # collected, so the assertion below shows it
            errors.append(exc)

    script = (
        "import sys\n"
        "from bountytree.chain.client import Chain\n"
        "from bountytree.config import Settings\n"
        "chain = Chain(Settings(account='9'))\n"
        "task, tag = int(sys.argv[1]), int(sys.argv[2])\n"
        "for i in range(3):\n"
        "    chain.send(chain.tree.functions.commitSubmission(task, bytes([tag, i]) * 16))\n"
    )
    env = {**os.environ, **settings.to_env()}
    env.pop("BOUNTYTREE_ACCOUNT", None)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(task_id), str(50 + n)], env=env)
        for n in range(2)
    ]
    threads = [threading.Thread(target=burst, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert errors == []
    assert chain.w3.eth.get_transaction_count(chain.address) == start + 9 + 6
    nonces = {chain.w3.eth.get_transaction(s.tx_hash)["nonce"] for s in sent}
    assert len(nonces) == 9


def test_confirmations_are_waited_for(settings, task_id):
    chain = Chain(settings.with_overrides(account="8", confirmations=3))
    sent = chain.send(chain.tree.functions.commitSubmission(task_id, b"\x0b" * 32))
    assert chain.w3.eth.block_number >= sent.receipt["blockNumber"] + 2


def test_a_reveal_waits_for_a_later_block_without_asking_the_node_to_mine(settings, deployed):
    """The client path of a submission uses standard eth_* calls only; the local chain's block
    clock, like a public chain, supplies the later block the reveal needs."""
    sponsor = Chain(settings.with_overrides(account="1"))
    tree = sponsor.tree
    deadline = sponsor.w3.eth.get_block("latest")["timestamp"] + 3600
    created = sponsor.send(
        tree.functions.createTask(
            b"\x01" * 32, b"\x02" * 32, 9000, deadline, 5000, 3000, 2000, 0, 0, 0, 0, False
        ),
        value=10**17,
    )
    task_id = tree.events.TaskCreated().process_receipt(created.receipt)[0]["args"]["taskId"]

    owner = Chain(settings.with_overrides(account="6"))
    methods: list[str] = []
    real = owner.w3.provider.make_request

    def recorded(method, params):
        methods.append(method)
        return real(method, params)

    owner.w3.provider.make_request = recorded
    owner.w3.provider._request_func_cache = (None, None)  # web3 caches the bound method
    salt = os.urandom(32)
    args = (task_id, 0, b"\x04" * 32, 0, salt)  # an architecture: parent 0
    commitment = Web3.keccak(
        encode(
            ["address", "uint256", "uint256", "bytes32", "uint256", "bytes32"],
            [owner.address, *args],
        )
    )
    commit = owner.send(tree.functions.commitSubmission(task_id, commitment))
    started = time.monotonic()
    owner.wait_for_block_after(commit.receipt["blockNumber"])
    assert time.monotonic() - started < 30
    reveal = owner.send(tree.functions.revealSubmission(*args))
    assert reveal.receipt["blockNumber"] > commit.receipt["blockNumber"]
    assert methods and all(m.startswith(("eth_", "net_", "web3_")) for m in methods), set(methods)


def test_anvil_resumes_its_state_and_survives_a_torn_dump(tmp_path):
    """`bountytree up --chain anvil` keeps the chain in a folder: a restart resumes balances and
    events; a dump torn by a kill is dropped and the previous snapshot loads."""
    state = tmp_path / "anvil"
    chain = start_chain("anvil", free_port(), state)
    try:
        w3 = Web3(Web3.HTTPProvider(chain.rpc))
        tx = w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": w3.eth.accounts[1], "value": 12345}
        )
        block = w3.eth.wait_for_transaction_receipt(tx)["blockNumber"]
        balance = w3.eth.get_balance(w3.eth.accounts[1])
    finally:
        chain.stop()  # a clean exit dumps
    chain = start_chain("anvil", free_port(), state)
    try:
        w3 = Web3(Web3.HTTPProvider(chain.rpc))
        assert w3.eth.get_balance(w3.eth.accounts[1]) == balance
        assert w3.eth.get_transaction_receipt(tx)["blockNumber"] == block
    finally:
        chain.stop()
    (state / "state.next.json").write_text('{"block": {"number": ')  # killed mid-dump
    chain = start_chain("anvil", free_port(), state)
    try:
        w3 = Web3(Web3.HTTPProvider(chain.rpc))
        assert w3.eth.get_balance(w3.eth.accounts[1]) == balance
    finally:
        chain.stop()


def test_reason_codes_are_the_contracts():
    """Every Reason is listed, with its code and label, where the contract documents rejectNodes."""
    from bountytree.reasons import Reason

    source = (ROOT / "contracts" / "interfaces" / "IBountyTree.sol").read_text()
    doc = " ".join(
        line.strip().lstrip("/").strip()
        for line in source.splitlines()
        if line.strip().startswith("///")
    )
    for reason in Reason:
        assert f"{reason.value} {reason.label}" in doc, reason
    # the codes the contracts act on themselves, as constants of their own
    library = (ROOT / "contracts" / "libraries" / "RejectReasons.sol").read_text()
    named = {r for r in Reason if f"uint8 internal constant {r.name} = {r.value};" in library}
    spared = {Reason.PARENT_REJECTED, Reason.UNCONFIRMED, Reason.TOO_SLOW}
    assert spared <= named
    # the faults one custodian sees alone, on-chain and here alike
    assert {r for r in Reason if r.seen_alone(architecture=True)} == {Reason.MISSING}
    assert {r for r in Reason if r.seen_alone(architecture=False)} == named - spared
    rule = "reason == MISSING || (!architecture && (reason == TOO_LARGE || reason == CORRUPT))"
    assert rule in library


def test_validation_commitment_is_salted(tmp_path):
    import hashlib

    from bountytree.market.validation import check_commitment, commitment

    f = tmp_path / "v.csv"
    f.write_bytes(b"a,label\n1,0\n")
    salt = bytes(range(32))
    onchain = commitment(f, salt)
    assert (
        onchain != hashlib.sha256(f.read_bytes()).digest()
    )  # a guessed file cannot be confirmed alone
    check_commitment(f, salt, onchain)
    with pytest.raises(UserError, match="differs from the task's commitment"):
        check_commitment(f, bytes(32), onchain)
    with pytest.raises(UserError, match="no salt"):
        check_commitment(f, None, onchain)


def test_the_repository_names_only_its_own_documents():
    """A user's clone has nothing beside it: no file may send a reader outside the repository,
    and every document the README links to exists."""
    import re

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = "../" + "shared"  # spelled in two parts so that this file does not match itself
    for name in tracked:
        path = ROOT / name
        if not path.exists():  # deleted in the work tree, not yet committed
            continue
        if path.suffix in {".py", ".md", ".sol", ".yaml", ".toml", ".json"} or name == "Makefile":
            assert outside not in path.read_text(errors="replace"), name
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme):
        assert (ROOT / link).exists(), link
