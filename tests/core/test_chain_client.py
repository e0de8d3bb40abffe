"""The chain client on the session's real Ganache: refused calls become one decoded line and
send nothing; the deterministic accounts are Ganache's."""

import pytest
from web3 import Web3

from bountytree.chain import Chain, describe_revert, ganache_account
from bountytree.errors import UserError


def test_deterministic_accounts_match_ganache(settings):
    w3 = Web3(Web3.HTTPProvider(settings.rpc))
    assert [ganache_account(i).address for i in range(3)] == w3.eth.accounts[:3]


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
        chain.send(chain.tree.functions.proposeArchitecture(999, b"\x01" * 32), value=5)
    assert chain.w3.eth.get_transaction_count(chain.address) == nonce


def test_unknown_error_data_is_still_one_line():
    assert describe_revert([], "0xdeadbeef") == "the contract reverted (unknown error 0xdeadbeef)"
    assert describe_revert([], b"") == "the contract reverted without a reason"


def test_missing_deployment_is_one_line(settings, tmp_path):
    with pytest.raises(UserError, match="nothing deployed on chain 1337"):
        Chain(settings.with_overrides(deployments=tmp_path))


def test_public_development_keys_are_refused_off_local_chains():
    from bountytree.chain import load_account

    sepolia = 11155111
    for spec in (None, "", "3"):
        with pytest.raises(UserError, match="deterministic keys are public"):
            load_account(spec, sepolia)
    assert load_account("dev:3", sepolia).address == ganache_account(3).address  # asked for by name
    assert load_account("3", 1337).address == ganache_account(3).address
    assert load_account(None, 31337).address == ganache_account(0).address


def test_reason_codes_are_the_contracts():
    """Every Reason is listed, with its code and label, where the contract documents rejectNodes."""
    from bountytree.config import ROOT
    from bountytree.reasons import Reason

    source = (ROOT / "contracts" / "BountyTree.sol").read_text()
    doc = " ".join(
        line.strip().lstrip("/").strip()
        for line in source.splitlines()
        if line.strip().startswith("///")
    )
    for reason in Reason:
        assert f"{reason.value} {reason.label}" in doc, reason


def test_validation_commitment_is_salted(tmp_path):
    import hashlib

    from bountytree.validation import check_commitment, commitment

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
    import subprocess

    from bountytree.config import ROOT

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = "../" + "shared"  # spelled in two parts so that this file does not match itself
    for name in tracked:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".sol", ".yaml", ".toml", ".json"} or name == "Makefile":
            assert outside not in path.read_text(errors="replace"), name
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme):
        assert (ROOT / link).exists(), link
