"""What a custodian keeps on disk (custodian/holdings.py), on a real folder with real sealing:
the running best a node is compared with, and a trained share kept in two steps."""

from __future__ import annotations

import numpy as np
import pytest

from bountytree.errors import UserError
from bountytree.private.sealing import new_private_key
from bountytree.private.shares import Share
from custodian.holdings import Holdings


def _scored(holdings: Holdings, node_id: int, best: int) -> None:
    """Custodian 0's scoring of node `node_id` in task 1, kept and promoted."""
    holdings.keep_best_tentatively(1, node_id, 0, np.array([best]), recorded=best // 100 * 100)
    assert holdings.promote_best(1, node_id, 0) == best // 100 * 100


def test_a_node_whose_record_never_landed_raises_no_bar(tmp_path):
    """The custodian scored nodes 5 and 7 and kept its share of the best after each; node 7's
    two attestations differed, so the chain records only node 5 as scored. Node 9 is compared
    with the best after node 5, not after node 7 (it used to be: a stalled node raised the bar
    for every node after it)."""
    holdings = Holdings(tmp_path, new_private_key())
    _scored(holdings, 5, 5000)
    _scored(holdings, 7, 9000)
    assert holdings.best_source(9, scored={5}) == 5
    assert int(holdings.best_before(1, 9, 0, 5)) == 5000
    assert holdings.best_source(9, scored={5, 7}) == 7
    assert int(holdings.best_before(1, 9, 0, 7)) == 9000
    assert holdings.best_source(6, scored={5, 7}) == 5
    assert holdings.best_source(5, scored={5, 7}) == 0  # nothing before it
    assert int(holdings.best_before(1, 5, 0, 0)) == 0
    # a best the chain says was kept, missing here (a restored disk): said, never replaced by
    # an earlier one (the other custodian would add its share of another best)
    with pytest.raises(UserError, match="no kept best after node 8"):
        holdings.best_before(1, 9, 0, 8)


def test_a_node_given_up_on_stays_given_up_after_a_restart(tmp_path):
    """A node whose record fell out of range is never scored again: kept on disk, not in the
    process's memory (a restarted custodian scored it again, out of step with the other)."""
    key = new_private_key()
    Holdings(tmp_path, key).give_up(1, 12)
    assert Holdings(tmp_path, key).given_up(1) == {12}
    assert Holdings(tmp_path, key).given_up(2) == set()


def test_a_tentative_share_is_the_nodes_only_once_promoted(tmp_path):
    holdings = Holdings(tmp_path, new_private_key())
    share = Share(1, {"w": np.arange(4, dtype=np.int64)})
    holdings.keep_tentatively(1, 3, share)
    assert holdings.share(1, 3) is None  # not the node's yet
    held = holdings.promote(1, 3)
    assert held is not None and np.array_equal(held.share.tensors["w"], share.tensors["w"])
    again = holdings.share(1, 3)
    assert again is not None and again.salt == held.salt  # the node's holding now
    assert holdings.promote(1, 4) is None  # nothing kept for node 4


def test_a_scorings_best_is_kept_only_once_promoted_and_its_record_with_it(tmp_path):
    """A scoring session keeps its share of the best tentatively; a custodian stopped before it
    promoted it (and attested) finds it after a restart and attests the record it went with,
    without scoring the node again (custodian/service.py `_follow`)."""
    key = new_private_key()
    holdings = Holdings(tmp_path, key)
    holdings.keep_best_tentatively(1, 4, 1, np.array([7123]), recorded=7100)
    with pytest.raises(UserError, match="no kept best after node 4"):
        holdings.best_before(1, 5, 1, 4)  # not the best yet
    restarted = Holdings(tmp_path, key)
    assert restarted.promote_best(1, 4, 1) == 7100
    assert int(restarted.best_before(1, 5, 1, 4)) == 7123
    assert restarted.promote_best(1, 4, 1) == 7100  # promoted once; asked again, the same
    assert restarted.scored(1, 4, 1) == 7100  # ended well: never scored again
    assert restarted.promote_best(1, 6, 1) is None  # no scoring of node 6 kept
    assert restarted.scored(1, 6, 1) is None


def test_scoring_runs_and_attestations_are_counted_on_disk(tmp_path):
    """What bounds the comparisons a deviating custodian gets (runs that revealed a record
    without ending well) and the attestations the chain may drop, whatever restarts."""
    key = new_private_key()
    for _ in range(2):
        Holdings(tmp_path, key).note_scoring_run(1, 8)
    assert Holdings(tmp_path, key).scoring_runs(1, 8) == 2
    assert Holdings(tmp_path, key).scoring_runs(1, 9) == 0
    for _ in range(3):
        Holdings(tmp_path, key).note_attestation_sent(1, 8)
    assert Holdings(tmp_path, key).attestations_sent(1, 8) == 3


def test_a_word_on_the_validation_share_and_the_nodes_it_holds_survive_a_restart(tmp_path):
    """A custodian's word that it cannot read its validation share is kept per task on disk
    before it is sent, then the newest node when the share was read again: a custodian
    restarted keeps the word on the nodes up to it, and only forgetting (those nodes done)
    clears it."""
    key = new_private_key()
    Holdings(tmp_path, key).say_validation_word(1)
    assert Holdings(tmp_path, key).validation_word(1) == 0  # said, not read since
    Holdings(tmp_path, key).note_validation_read(1, 12)
    restarted = Holdings(tmp_path, key)
    assert restarted.validation_word(1) == 12
    assert restarted.validation_word(2) is None  # per task
    restarted.forget_validation_word(1)
    restarted.forget_validation_word(1)  # forgetting twice is harmless
    assert Holdings(tmp_path, key).validation_word(1) is None


@pytest.mark.parametrize("damaged", [b"", b"twelve\n", b"-3\n"])
def test_a_damaged_record_of_the_word_is_a_word_not_read_since(tmp_path, damaged):
    """A record of the word that is not a node id (a disk fault, a hand edit) neither stops the
    custodian's rounds nor releases the word: it reads as said and not read since, and the
    next round reads the share again."""
    holdings = Holdings(tmp_path, new_private_key())
    holdings.say_validation_word(1)
    (tmp_path / "task-1" / "validation-word").write_bytes(damaged)
    assert holdings.validation_word(1) == 0
