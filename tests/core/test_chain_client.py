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
    with pytest.raises(UserError, match=rf"refused by the contract: NothingToWithdraw\(account={chain.address}\)"):
        chain.send(chain.tree.functions.withdraw())
    with pytest.raises(UserError, match=r"WrongStake\(expected=0, sent=5\)|UnknownTask\(taskId=999\)"):
        chain.send(chain.tree.functions.proposeArchitecture(999, b"\x01" * 32), value=5)
    assert chain.w3.eth.get_transaction_count(chain.address) == nonce


def test_unknown_error_data_is_still_one_line():
    assert describe_revert([], "0xdeadbeef") == "the contract reverted (unknown error 0xdeadbeef)"
    assert describe_revert([], b"") == "the contract reverted without a reason"


def test_missing_deployment_is_one_line(settings, tmp_path):
    with pytest.raises(UserError, match="nothing deployed on chain 1337"):
        Chain(settings.with_overrides(deployments=tmp_path))
