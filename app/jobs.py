"""A page action as a job: the Market call runs in a worker thread, and whenever it needs a
transaction signed by the browser wallet it pauses until the page hands back the hash.

Streamlit answers a browser only between runs of a page, and a wallet answers only in the
browser, so an action that sends one transaction or several (a commit, then its reveal) cannot
run inside one page run. The worker keeps the action's own flow (the Market's code, unchanged);
each page run feeds it the wallet's latest answer and waits until it needs another signature or
ends. With a development key the job simply runs to its end within one page run.

Nothing here imports Streamlit; `ui.act` drives a job from a page.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from web3 import Web3
from web3.exceptions import ProviderConnectionError

from bountytree.chain.unsigned import UnsignedTx
from bountytree.errors import UserError

WALLET_TIMEOUT_S = 900.0  # how long a transaction may wait in the wallet for its user
_local = threading.local()


@dataclass(frozen=True)
class WalletRequest:
    """One prepared transaction waiting for the wallet; the id makes sure an answer is matched to
    its request and a request is never sent twice."""

    id: str
    tx: UnsignedTx


@dataclass(frozen=True)
class WalletAnswer:
    """What the wallet component reported for a request: a hash, or why nothing was sent."""

    id: str
    tx_hash: str | None = None
    error: str | None = None
    code: Any = None

    @classmethod
    def parse(cls, value: Any) -> WalletAnswer | None:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            return None
        tx_hash = value.get("hash")
        error = value.get("error")
        return cls(
            value["id"],
            tx_hash if isinstance(tx_hash, str) else None,
            str(error) if error is not None else None,
            value.get("code"),
        )


class Job:
    """One action running in a worker thread, paused at each wallet signature."""

    def __init__(self, action: Callable[[], Any], what: str):
        self.what = what
        self.status = what  # what the page shows while it waits
        self.progress: Any = None  # the latest `report`ed value, for the page to draw
        self.result: Any = None
        self.error: str | None = None  # a one-line message: a user mistake or a dead service
        self.crash: BaseException | None = None  # a bug: re-raised in the page
        self.done = False
        self.request: WalletRequest | None = None
        self._answer: WalletAnswer | None = None
        self._cond = threading.Condition()
        self._action = action
        self._thread = threading.Thread(target=self._run, name=f"job: {what}", daemon=True)

    def start(self) -> Job:
        self._thread.start()
        return self

    def _run(self) -> None:
        _local.job = self
        try:
            self.result = self._action()
        except UserError as exc:
            self.error = str(exc)
        except (requests.ConnectionError, ProviderConnectionError) as exc:
            self.error = (
                f"lost the connection to the chain ({type(exc).__name__}): the action stopped; "
                "try again once the chain is back"
            )
        except BaseException as exc:
            self.crash = exc
        finally:
            with self._cond:
                self.done = True
                self.request = None
                self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """Blocks until the job ends or waits for the wallet (True), or `timeout` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self.done or self.request is not None, timeout)

    def answer(self, answer: WalletAnswer) -> bool:
        """Hands the wallet's answer to the worker; False if it answers no current request."""
        with self._cond:
            if self.request is None or answer.id != self.request.id:
                return False
            self._answer, self.request = answer, None
            self._cond.notify_all()
            return True

    def ask_wallet(self, tx: UnsignedTx) -> str:
        """In the worker: publishes `tx` for the page to hand to the wallet and waits for its
        hash."""
        request = WalletRequest(uuid.uuid4().hex, tx)
        with self._cond:
            self.request, self._answer = request, None
            self.status = "waiting for your wallet"
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._answer is not None, WALLET_TIMEOUT_S):
                self.request = None
                raise UserError(
                    f"the wallet did not answer within {WALLET_TIMEOUT_S / 60:.0f} minutes"
                )
            answer = self._answer
        assert answer is not None
        if answer.tx_hash is None:
            raise UserError(f"not sent: {answer.error or 'the wallet gave no reason'}")
        self.status = f"sent {answer.tx_hash}, waiting for the receipt"
        return answer.tx_hash


class BrowserSigner:
    """The `Signer` of a browser wallet: it only ever sees an address and returns hashes."""

    def __init__(self, address: str):
        self._address = Web3.to_checksum_address(address)

    @property
    def address(self) -> str:
        return self._address

    def submit(self, w3: Web3, tx: UnsignedTx) -> str:
        job = getattr(_local, "job", None)
        if job is None:
            raise UserError("a wallet transaction can only be sent from a page action")
        assert isinstance(job, Job)
        return job.ask_wallet(tx)


def report(value: Any) -> None:
    """From inside an action: progress for the page to draw (e.g. a training curve)."""
    job = getattr(_local, "job", None)
    if isinstance(job, Job):
        job.progress = value
