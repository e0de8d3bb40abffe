"""Two-party secure evaluation with CrypTen over the parties' authenticated, encrypted links.

Party 0 is the sponsor's validator: it secret-shares the validation rows and their one-hot
labels, and each model's weights, which are public in a public task: it reads them itself from
the store by the CIDs the chain records, so the model evaluated is the node's whatever party 1
holds (a party 1 that shared weights of its own choosing would turn each node into a counting
question about the rows). Party 1 is the oracle: it holds the other half of every value and
receives each count (party 0's own plaintext count, below). Each model
runs on the shared rows, its one-hot predictions are multiplied with the shared labels, and only
the sum (the number of correct rows) is revealed. Nothing else leaves either party.

Party 0 also generates the multiplication triples (CrypTen's trusted-first-party provider),
from ChaCha20 streams (bountytree/mpc/randomness.py): the secret of this computation is the
validation set, and it is party 0's own.

Party 1 opens its link to party 0 with the oracle's signed ticket (task, node ids, the key its
link proves). Party 0 admits it against the chain (`admission.py`), reading each node's spec
itself, before anything else is said: a stranger at party 0's port, or anyone with a copied
ticket, is told why it was refused and dropped, and party 0 goes on waiting for the oracle
(`Admission`). Once admitted, party 0 names the files it could not read itself (its store
lacks them), and party 1 gives each from the oracle's store; party 0 takes one only if its
bytes are the CID the chain records (`admission.Gate.complete`), so a file withheld from the
validator's store alone cannot stall a node. Then party 0 answers with the number of rows,
features and classes (JSON in a uint8 tensor; nothing is unpickled), which party 1 checks
against the task. All nodes of one session share one encryption of the rows.

Against a party 1 that deviates from the protocol (it holds shares of every intermediate value
and can add what it likes to its own; two-party CrypTen has no MACs), party 0:
- counts each node itself, in plaintext, from the same public weights, and tells party 1 that
  count, whatever the shared count (revealed to party 0 alone) says. A party 1 that adds
  constants to its shares of a layer's output chooses, in effect, the biases of the model
  counted, and so a counting question about the rows; before, its answer reached it (found by
  the second attacker review of the sessions). Now it stays with party 0, which logs a shared
  count that strays from its own (`_evaluate`) and tells party 1 nothing of it: not an answer,
  not a refusal. A node crafted so that fixed point flips many near-tie rows strays the same
  way; it is logged, and scored as plaintext counts it, not stalled;
- shares the rows in a fresh secret order each session, so whatever a tampered value carries
  about "row i" is about a row party 1 cannot name.
Rows are counted as `bountytree/mpc/counting.py` says (the custodians of a private task count
the same way).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bountytree.models.counting import count_correct
from bountytree.models.spec import ModelSpec
from bountytree.mpc import session
from bountytree.mpc.counting import chunk_rows, shared_hits
from bountytree.mpc.crypten_import import crypten, torch
from bountytree.mpc.models import build_crypten, crypten_state
from bountytree.mpc.session import (
    Identity,
    LinkRefused,
    PartyMissing,
    SessionRefused,
    send_bytes,
    send_json,
)

from .admission import MAX_NODES_PER_SESSION, TEST, Admitted, Refused

__all__ = [
    "Admission",
    "Identity",
    "LinkRefused",
    "PartyMissing",
    "SessionRefused",
    "data_party",
    "join",
    "leave",
    "model_party",
    "torch",
]

MODEL_PARTY, DATA_PARTY = 1, 0
# The most rows party 1 accepts a validator announcing: party 1 holds shares of every row, about
# 600 bytes a row for 64 features. A task's description states its count, which the validator
# must announce exactly; one that states none (posted by another client) is held to far fewer,
# since then the validator alone chooses it (10 million rows held about 6 GB of the oracle's
# memory: the attacker review of the servers).
MAX_ROWS = 10_000_000
MAX_UNSTATED_ROWS = 1_000_000
# Files party 0 may ask of party 1 in one round: each node's spec and weights, and the best's;
# and rounds in a session (a node's weights are known to be wanted once its spec came).
MAX_WANTED = 2 * (MAX_NODES_PER_SESSION + 1)
MAX_FILE_ROUNDS = 2


def fixed_point_rows(rows: int) -> int:
    """Rows by which an honest shared count may differ from plaintext (fixed point flips rows
    near a tie): one, or 0.5 % above 200 rows. Beyond it, party 0 logs the count as strayed."""
    return max(1, rows * 5 // 1000) if rows > 200 else 1


def join(
    address: str,
    rank: int,
    identity: Identity,
    *,
    timeout_s: float = 120,
    rendezvous_s: float | None = None,
    ticket: dict | None = None,
    admission: Admission | None = None,
) -> None:
    """Joins the two-party session at `address` (host:port; party 0 listens there): party 1
    opens with its `ticket`, party 0 lets it in only past `admission`."""
    session.join(
        address,
        rank,
        identity,
        timeout_s=timeout_s,
        rendezvous_s=rendezvous_s,
        opening=json.dumps(ticket).encode() if ticket is not None else None,
        admit=admission,
        screen=admission.screen if admission is not None else None,
    )


class Admission:
    """Party 0's check of a linked party's opening message, before it is let in: a signed
    ticket for the key its link proved (`admit`, the validator's Gate.admit), for a part this
    validator holds, naming nodes whose specs fit the rows. Refused connections are dropped and
    party 0 goes on waiting; `admitted` is what the one let in was admitted for."""

    def __init__(
        self,
        admit: Callable[[dict, bytes], Admitted],
        features: int,
        classes: int,
        has_test: bool,
        log: Callable[[str], None] = lambda line: None,
        screen: Callable[[dict, bytes], None] | None = None,
    ):
        self.admit, self.features, self.classes, self.has_test = admit, features, classes, has_test
        self.log = log  # hears why each connection turned away was
        self._screen = screen  # the validator's Gate.screen: before a place in the queue
        self.admitted: Admitted | None = None

    def _header(self, opening: bytes) -> dict:
        try:
            header = json.loads(opening)
            if not isinstance(header, dict):
                raise ValueError
        except (ValueError, RecursionError):
            self.log("refused a connection: no valid signed ticket (not JSON)")
            raise SessionRefused("no valid signed ticket (not JSON)") from None
        return header

    def screen(self, link_key: bytes, opening: bytes) -> None:
        """The cheap part of the check, run as the opening arrives and before the connection
        waits for its turn: an opening that cannot be the oracle's takes no place in the queue."""
        header = self._header(opening)
        if self._screen is None:
            return
        try:
            self._screen(header, link_key)
        except Refused as exc:
            self.log(f"refused a connection: {str(exc)[:300]}")
            raise SessionRefused(str(exc)) from None

    def __call__(self, link_key: bytes, opening: bytes) -> None:
        header = self._header(opening)
        try:
            admitted = self.fit(self.admit(header, link_key))
        except Refused as exc:
            self.log(f"refused a connection: {str(exc)[:300]}")
            raise SessionRefused(str(exc)) from None
        self.admitted = admitted

    def fit(self, admitted: Admitted) -> Admitted:
        """Refuses (Refused) a part this validator does not hold, or a model whose spec does not
        fit its rows; run again on what the files the model party gave complete."""
        if admitted.part == TEST and not self.has_test:
            raise Refused("this validator holds no test part")
        for model in admitted.models:
            if model.spec.num_features != self.features or model.spec.num_classes != self.classes:
                raise Refused(f"node {model.node_id}: spec does not fit the validation rows")
        return admitted


def leave() -> None:
    session.leave()


@dataclass
class NodeScore:
    node_id: int
    correct: int
    rows: int
    seconds: float


def _shared_rows(
    X: np.ndarray | None, y: np.ndarray | None, rows: int, features: int, classes: int, chunk: int
):
    """Secret-shares the rows and one-hot labels from party 0, in chunks of `chunk` rows."""
    chunks = []
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        if X is not None and y is not None:
            x = torch.from_numpy(X[start : start + n])
            onehot = torch.nn.functional.one_hot(
                torch.from_numpy(y[start : start + n]), classes
            ).float()
        else:
            x, onehot = torch.zeros(n, features), torch.zeros(n, classes)
        chunks.append(
            (crypten.cryptensor(x, src=DATA_PARTY), crypten.cryptensor(onehot, src=DATA_PARTY))
        )
    return chunks


def _reveal_count(total, plain: int | None) -> tuple[int, float | None]:
    """Reveals a shared count to party 0 alone, and tells party 1 party 0's own plaintext count
    `plain` of the same public weights, whatever the shared count says: (the count told, the
    shared count on party 0, None on party 1). A party 1 that adds to its shares makes the
    shared count a counting question of its choosing about the rows; its answer stays with
    party 0, which logs how far it strayed (`_evaluate`), and party 1 learns nothing from it,
    not even that it was noticed."""
    comm = crypten.comm.get()
    revealed = total.get_plain_text(dst=DATA_PARTY)  # None on party 1: it receives nothing
    answer = torch.zeros(1, dtype=torch.int64)
    shared = None
    if comm.get_rank() == DATA_PARTY:
        assert plain is not None
        answer[0], shared = plain, float(revealed.item())
    comm.broadcast(answer, DATA_PARTY)
    return int(answer[0]), shared


def _secret_order(rows: int) -> np.ndarray:
    """A fresh secret order of the rows for one session (party 0 only)."""
    return np.random.default_rng(secrets.randbits(128)).permutation(rows)


def _evaluate(
    models: Sequence[tuple[int, ModelSpec, dict | None]],
    chunks,
    rows: int,
    progress: Callable[[str], None] = lambda line: None,
    plain_rows: tuple[np.ndarray, np.ndarray] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> list[NodeScore]:
    """Each model on the shared rows; party 0 (with the weights and `plain_rows`) counts each
    in plaintext too, tells party 1 that count, and `log`s a shared count that strays from it
    by more than fixed point flips near ties (`fixed_point_rows`): the model party
    deviated, or the node's rows sit at near-ties on purpose."""
    scores = []
    for node_id, spec, state in models:
        started = time.perf_counter()
        model = build_crypten(spec)
        plain = None
        if state is not None and plain_rows is not None:
            plain = count_correct(state, spec, *plain_rows).correct
        if state is not None:
            weights = crypten_state(spec, state)
            if set(weights) != {name for name, _ in model.named_parameters()}:
                raise SessionRefused(f"node {node_id}: weights do not match the model's parameters")
            model.load_state_dict(
                weights, strict=False
            )  # strict wants torch's metadata; names checked above
        model.encrypt(src=DATA_PARTY)  # the weights party 0 read itself
        model.eval()
        correct, shared = _reveal_count(shared_hits(model, spec, chunks), plain)
        if shared is not None and abs(shared - correct) > fixed_point_rows(rows):
            log(
                f"node {node_id}: the shared count {shared:.0f} strays from this validator's own "
                f"count {correct} by more than {fixed_point_rows(rows)} rows (the model party "
                "deviated, or the node's rows sit at near-ties); the model party was told "
                f"{correct}"
            )
        scores.append(NodeScore(node_id, correct, rows, time.perf_counter() - started))
        progress(
            f"node {node_id} evaluated ({len(scores)} of {len(models)}, {scores[-1].seconds:.1f} s)"
        )
    return scores


def model_party(
    models: list[tuple[int, ModelSpec]],
    expect: dict,
    progress: Callable[[str], None] = lambda line: None,
    files: Callable[[str, int], bytes] = lambda cid, limit: b"",
) -> tuple[list[NodeScore], dict]:
    """Party 1 (after `join` with its ticket): gives party 0 the files it asks for that it
    could not read itself (`files(cid, most bytes)`: b"" for none), checks party 0's answer
    against what the task says (`expect`: rows, features, classes, rows 0 when unknown; and
    the best node the ticket named), takes part in each evaluation, returns the scores and
    what it was told (rows, the validator's count of the task's best node). `progress` hears a
    line as each node is evaluated (no count: the exact count is this party's alone)."""
    answer = _give_files(files)
    if not answer.get("ok"):
        raise SessionRefused(answer.get("error", "refused"))
    announced: dict[str, Any] = {k: answer.get(k) for k in ("rows", "features", "classes")}
    wrong = [
        k
        for k, v in announced.items()
        if not isinstance(v, int) or v < 1 or (expect.get(k) and v != expect[k])
    ]
    most = MAX_ROWS if expect.get("rows") else MAX_UNSTATED_ROWS
    if wrong or announced["rows"] > most:
        raise SessionRefused(f"the validator announced {announced}, the task says {expect}")
    best = _best_count(answer.get("best"), announced["rows"], int(expect.get("best", 0)))
    started = time.perf_counter()
    chunks = _shared_rows(
        None,
        None,
        announced["rows"],
        announced["features"],
        announced["classes"],
        chunk_rows([spec for _, spec in models]),
    )
    shared_s = time.perf_counter() - started
    progress(f"validation rows shared ({shared_s:.1f} s)")
    mine = [(node_id, spec, None) for node_id, spec in models]
    return _evaluate(mine, chunks, announced["rows"], progress), {
        "share_rows_s": shared_s,
        "rows": announced["rows"],
        "best": best,
    }


def _give_files(files: Callable[[str, int], bytes]) -> dict:
    """Party 1's side of the files party 0 asks for, round by round until it asks for none:
    each as `files` gives it (b"": none; asked again, the same answer), in the order asked,
    within the size asked. Returns party 0's answer (its rows, or its refusal)."""
    given: dict[str, bytes] = {}
    for round_no in range(MAX_FILE_ROUNDS + 1):
        said = send_json(None, DATA_PARTY)
        if "want" not in said:
            return said  # a refusal instead of the next round
        want = said["want"]
        if want == []:
            return send_json(None, DATA_PARTY)
        if (
            round_no == MAX_FILE_ROUNDS
            or not isinstance(want, list)
            or len(want) > MAX_WANTED
            or not all(
                isinstance(w, list)
                and len(w) == 2
                and isinstance(w[0], str)
                and len(w[0]) <= 64
                and type(w[1]) is int
                and 0 < w[1] <= 1 << 32
                for w in want
            )
        ):
            raise SessionRefused(f"the validator asked for files as {str(want)[:100]}")
        for cid, limit in want:
            if cid not in given:
                given[cid] = files(cid, limit)
            data = given[cid]
            send_bytes(data if len(data) <= limit else b"", MODEL_PARTY, limit)
    raise AssertionError("unreachable: the last round returns or refuses")


def _best_count(best: Any, rows: int, expected: int) -> dict | None:
    """The validator's count of the task's best node, which must be the node the ticket named
    (`expected`; 0: none released yet, and no count): {"node", "correct"}, the count in
    [0, rows] or None (its weights could not be read)."""
    if not expected:
        if best is not None:
            raise SessionRefused("the validator counted a best node the ticket did not name")
        return None
    count = best.get("correct") if isinstance(best, dict) else None
    if (
        not isinstance(best, dict)
        or set(best) != {"node", "correct"}
        or best["node"] != expected
        or isinstance(best["node"], bool)
        or not (count is None or (type(count) is int and 0 <= count <= rows))
    ):
        raise SessionRefused(
            f"the validator's count of the best node {expected} is wrong: {str(best)[:100]}"
        )
    return {"node": expected, "correct": count}


def data_party(
    X: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    admitted: Admitted,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    log: Callable[[str], None] = lambda line: None,
    complete: Callable[[Admitted, dict[str, bytes]], Admitted] | None = None,
) -> list[NodeScore]:
    """Party 0 (after `join`, which admitted party 1's ticket): asks party 1 for the files it
    could not read itself and has them checked and read (`complete`: the validator's
    Gate.complete), shares the rows of the part it admitted (validation, or the `test` rows) in
    a fresh secret order, takes part in every evaluation."""
    for round_no in range(MAX_FILE_ROUNDS + 1):
        if not admitted.wanted:
            send_json({"want": []}, DATA_PARTY)
            break
        try:
            if complete is None or round_no == MAX_FILE_ROUNDS:
                raise Refused(f"files still missing: {', '.join(w.cid for w in admitted.wanted)}")
            send_json({"want": [[w.cid, w.max_bytes] for w in admitted.wanted]}, DATA_PARTY)
            given = {w.cid: send_bytes(None, MODEL_PARTY, w.max_bytes) for w in admitted.wanted}
            admitted = complete(admitted, given)
        except SessionRefused:
            raise  # the link itself failed: nothing more can be said
        except Exception as exc:  # the files refused, or the chain or store failing meanwhile
            why = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            send_json({"ok": False, "error": why}, DATA_PARTY)
            raise SessionRefused(why) from None
    if admitted.part == TEST:
        if test is None:
            raise SessionRefused("this validator holds no test part")
        X, y = test
    models: list[tuple[int, ModelSpec, dict | None]] = [
        (m.node_id, m.spec, m.weights) for m in admitted.models
    ]
    best = None
    if admitted.best is not None:  # its count, or None when its weights could not be read
        m = admitted.best.model
        count = None if m is None else count_correct(m.weights, m.spec, X, y)
        best = {"node": admitted.best.node_id, "correct": None if count is None else count.correct}
    send_json(
        {
            "ok": True,
            "rows": len(y),
            "features": int(X.shape[1]),
            "classes": num_classes,
            "best": best,
        },
        DATA_PARTY,
    )
    order = _secret_order(len(y))
    chunks = _shared_rows(
        X[order],
        y[order],
        len(y),
        X.shape[1],
        num_classes,
        chunk_rows([spec for _, spec, _ in models]),
    )
    return _evaluate(models, chunks, len(y), plain_rows=(X, y), log=log)
