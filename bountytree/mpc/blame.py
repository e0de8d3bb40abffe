"""Whether the dealer failed a private session that ended on a link: the custodians' last words.

The dealer answers party 0 alone, once both custodians have sent the same request; so when it
goes silent, party 0 waits on it and party 1 on party 0, and when it cuts a link, which
custodian notices first depends on who talks to it next. Neither custodian can tell alone: a
dealer that joined each session and then stopped answering used to count as come, and so held
its nodes pending and was paid; a rule on one custodian's view alone let the dealer escape by
failing the other way (cutting links rather than going silent, a last word of its own, stalling
at the keys), or blamed it for a custodian that asked late (attacker review of the first
version).

So each custodian whose session ended on a link sends the other, as its last word on their link
(links.Link.end), what it knows (`Word`), and reads the other's; both then apply the same rule
(`dealer_at_fault`) to the same two words. The dealer is at fault when it owed something and
neither custodian was late: party 0's last request unanswered though party 1 had sent it too,
in step (each asked it within half the shorter step timeout of the other, both measured from
the last message the two exchanged: a moment both share, whatever their clocks and whenever
each fails), or a link to the dealer cut while party 0 was not idle (it asked, or was answered,
within that half timeout). An honest dealer gives up only on a custodian later than its own
timeout, which is never shorter than party 0's (links.PartyOne). Ages measured when each
custodian failed let a dealer that cut one link and went silent on the other look like a late
custodian (second attacker review). What a custodian says of itself is believed: a deviating custodian can have the
dealer blamed, as it can by keeping it out, and that costs the dealer its fee third only
(docs/private-models.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from .dealer import RECALLED, Requests
from .links import HANDSHAKE_S, Link, LinkError, OverBudget, PeerEnded, budget_left

PREFIX = "last word "  # a custodian's last word on the link: this, then the Word as JSON


@dataclass(frozen=True)
class Word:
    """A custodian's account of its session with the dealer, as it ended."""

    asked: int  # requests it asked the dealer (0: the streams' keys, asked for by joining)
    lags: tuple[float, ...]  # for request `asked`, `asked` - 1, …: its lag (dealer.Requests)
    answered: bool  # whether the answer to request `asked` came (party 0; either: its key)
    idle: float  # party 0: seconds from the answer before to request `asked` (or to now)
    cut: bool  # whether its own link to the dealer failed
    timeout: float  # its step timeout, seconds
    # whether its session ran over its budget (links.OverBudget); then the session's totals
    # (dealer.Requests): party 0's wait on the dealer, this party's lags, seconds since both
    # custodians linked, party 1's sends to the dealer blocked, and party 0's pairing of party
    # 1's lags with its own: how much later party 1 asked, and party 1's lags paired
    over: bool = False
    waited: float = 0.0
    lagged: float = 0.0
    elapsed: float = 0.0
    blocked: float = 0.0
    excused: float = 0.0
    paired: float = 0.0
    unanswered: float = 0.0  # party 0: its wait on the unanswered request so far (in `waited`)

    def lag(self, number: int) -> float | None:
        """Request `number`'s lag, if it sent it and recalls it."""
        back = self.asked - number
        return self.lags[back] if 0 <= back < len(self.lags) else None

    def text(self) -> str:
        return PREFIX + json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> Word | None:
        """A word as the other custodian sent it; None for anything else."""
        if not text.startswith(PREFIX):
            return None
        try:
            raw = json.loads(text[len(PREFIX) :])
            word = cls(
                int(raw["asked"]),
                tuple(float(a) for a in raw["lags"][:RECALLED]),
                raw["answered"] is True,
                float(raw["idle"]),
                raw["cut"] is True,
                float(raw["timeout"]),
                raw.get("over") is True,  # absent from an earlier release's words
                float(raw.get("waited", 0.0)),
                float(raw.get("lagged", 0.0)),
                float(raw.get("elapsed", 0.0)),
                float(raw.get("blocked", 0.0)),
                float(raw.get("excused", 0.0)),
                float(raw.get("paired", 0.0)),
                float(raw.get("unanswered", 0.0)),
            )
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None
        totals: tuple[float, ...] = (word.waited, word.lagged, word.elapsed, word.blocked)
        totals += (word.excused, word.paired, word.unanswered)
        numbers = (word.timeout, word.idle, *totals, *word.lags)
        if word.asked < 0 or not all(0 <= n < 1e9 for n in numbers):
            return None
        return word


def mine(cut: bool, timeout: float, over: bool = False) -> Word:
    asked, lags = Requests.asked(), Requests.lags
    answered = Requests.answered >= asked
    now = time.monotonic()
    idle = (now if answered else Requests.sent_at) - Requests.answered_at
    return Word(
        asked,
        tuple(round(lags[n], 3) for n in range(asked, -1, -1) if n in lags),
        answered,
        round(max(0.0, idle), 3),
        cut,
        timeout,
        over,
        round(Requests.waiting(now), 3),
        round(Requests.lagged, 3),
        round(now - Requests.began, 3),
        round(Requests.blocked, 3),
        round(Requests.excused, 3),
        round(Requests.paired, 3),
        round(Requests.unanswered(now), 3),
    )


def dealer_at_fault(zero: Word, one: Word) -> bool:
    """The rule both custodians apply to party 0's and party 1's words."""
    if zero.over or one.over:
        # A session over its budget: the dealer made it so when more than half of party 0's
        # time went on waiting for answers (or party 1 on sending it requests) that party 1
        # being later than party 0 does not account for. A dealer answering each request just
        # inside the step timeout used to keep every session alive until its service killed it
        # at the budget, which said nothing: never blamed, it never let a node be scored
        # either. An honest dealer's part is its own dealing, never half of a session;
        # custodians that compute slowly lag, and so blame nobody. Party 1's lags are paired
        # with party 0's on the same request (dealer.Requests: its notes), and only how much
        # later it asked is excused; lags party 0 never paired (notes it had not read when the
        # session ended) are excused whole. Excusing every lag
        # of party 1's, though party 0 computes as long beside it, let a dealer slow a session
        # up to fourfold unnamed; now it is up to twofold, so a session whose honest time is
        # under half the budget cannot be stalled past it unnamed. Nothing else is judged here:
        # a session cut at its budget leaves requests unanswered.
        unpaired = max(0.0, one.lagged - zero.paired)
        # a request party 1 had not asked yet when the session ended: party 0's wait on it is
        # party 1's (the attacker review of the pairing)
        waiting_on_one = zero.unanswered if one.asked < zero.asked else 0.0
        dealers = zero.waited + one.blocked - zero.excused - unpaired - waiting_on_one
        return zero.elapsed > 0 and dealers > zero.elapsed / 2
    in_step = min(zero.timeout, one.timeout) / 2
    if zero.idle >= in_step:  # party 0 asked nothing that long: the dealer may have given up
        return False
    if not zero.answered:  # party 0 waits on (or could not send) request `asked`
        a, b = zero.lag(zero.asked), one.lag(zero.asked)  # None: party 1 has not asked it
        return a is not None and b is not None and abs(a - b) < in_step
    if not (zero.cut or one.cut):  # the dealer owed party 0 nothing, and cut no link
        return False
    # a link cut, party 0 not idle, and party 1 at most the next request on
    return one.asked in (zero.asked, zero.asked + 1)


@dataclass(frozen=True)
class Ending:
    """How a session that ended on a link ended, as both custodians read their two last words:
    whether the dealer failed it (`dealer_at_fault`), and whether this custodian's session ran
    over its budget with the dealer not to blame (its own, or the other's once this one's is
    within a step of its end: a word of the other's saying it ran over, sent a second into the
    session, would count a session that never did: attacker review). A session over its budget that the
    dealer did not make slow is the node's own cost (or a custodian's): the custodian's service
    counts it against the node, which used to be retried every round for the whole budget. Said
    only from both words, as the dealer's fault is: a custodian that fell back on its own view
    alone (the other's word never came) could count where the other did not, and the two would
    part ways over the node (attacker review)."""

    dealer_at_fault: bool = False
    over_budget: bool = False


def exchange(
    links: dict[int, Link], rank: int, exc: LinkError, dealer: int, timeout: float
) -> Ending:
    """This custodian's last word to the other and the other's to it (waiting for it past what
    the other sent before, as long as the other may still wait on the dealer and then some:
    the step timeout and HANDSHAKE_S), and the rule applied to both. Never raises: a session
    that ended is not ended again by its post-mortem."""
    other = 1 - rank
    try:
        to_dealer = links.get(dealer)
        cut = exc.rank == dealer or (to_dealer is not None and to_dealer.failed)
        me = mine(cut, timeout, isinstance(exc, OverBudget))
        if other not in links:
            return Ending()
        links[other].end(me.text())
        if isinstance(exc, PeerEnded) and exc.rank == other:
            said: str | None = exc.reason
        else:  # over its budget, the other may be one request and one send from reading it
            within = (2 if me.over else 1) * (timeout + HANDSHAKE_S)
            said = links[other].last_word(within)
        theirs = Word.parse(said) if said is not None else None
        if theirs is None:
            return Ending()
        if dealer_at_fault(*((me, theirs) if rank == 0 else (theirs, me))):
            return Ending(dealer_at_fault=True)
        # the other's word that it ran over is believed only within a step of this one's own
        # budget: the two budgets end seconds apart, and whichever ends first ends the other's
        # session (counting only one's own had each count every other session)
        left = budget_left()
        near = left is not None and left < timeout + HANDSHAKE_S
        return Ending(over_budget=me.over or (theirs.over and near))
    except Exception:
        return Ending()
