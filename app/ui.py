"""What every page of the app shares: the sidebar (who am I, which chain and store), the Market
for the chosen account, `act` (every action that sends a transaction), and small view helpers.
Pages call bountytree's functions (Market, Trainer, Oracle) exactly as the command line does;
nothing here talks to the contract itself.

Nobody's key reaches this server. On a local development chain (chain id 1337 or 31337) the
sidebar offers its public development accounts by name; on any chain the user may connect the
wallet in their browser, which signs what the app prepared.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import streamlit as st

from app import jobs, wallet
from bountytree.chain.addressbook import DEV_ACCOUNTS, AddressBook, dev_names
from bountytree.chain.client import LOCAL_CHAIN_IDS, connect, load_account
from bountytree.chain.unsigned import KeySigner, Signer, SignerChain, UnsignedTx
from bountytree.config import Settings
from bountytree.errors import UserError
from bountytree.files import atomic_write
from bountytree.market.actions import Market
from bountytree.market.render import eth, pct, short
from bountytree.storage.connect import open_store
from bountytree.text import markdown

T = TypeVar("T")
WALLET = "wallet"  # the "Who am I" choice of the browser wallet
_DRAWN = "_bountytree_sidebar"  # the Frame the entry's sidebar drew in this run, for the page
_FRAME = "_bountytree_frame"  # the Frame of this run, once the page has taken it
_ALONE = object()  # no sidebar drawn by the entry: the page runs alone


@dataclass(frozen=True)
class Frame:
    """This run's connection: the chain, the Market (None if the chain or contracts are
    missing, already explained on the page) and the signer (None: browsing, nobody to sign)."""

    settings: Settings
    chain_id: int
    market: Market | None
    signer: Signer | None


class _Nobody:
    """The signer while no wallet is connected: the pages can read, `act` refuses to send."""

    address = "0x0000000000000000000000000000000000000000"

    def submit(self, w3: Any, tx: UnsignedTx) -> str:
        raise UserError("connect a wallet (sidebar) first")


def settings() -> Settings:
    return Settings()


def book(chain_id: int | None = None) -> AddressBook:
    """The product's address book for this chain (names the demo or the user saved)."""
    s = settings()
    return AddressBook(s.home, chain_id if chain_id is not None else frame().chain_id)


def _who(chain_id: int) -> Any:
    """The "Who am I" choice: development accounts (named from the address book) on a local
    chain, the wallet always. The choice is kept in the page's address (?who=), so a reload or
    another page keeps acting as the same person."""
    local = chain_id in LOCAL_CHAIN_IDS
    options: list[Any] = [*range(DEV_ACCOUNTS), WALLET] if local else [WALLET]
    if st.session_state.get("who") not in options:
        wanted = st.query_params.get("who", "")
        st.session_state["who"] = (
            int(wanted)
            if re.fullmatch(r"[0-9]{1,3}", wanted) and int(wanted) in options
            else WALLET
        )
    named = {e.address: e for e in book(chain_id).entries()}
    labels: dict[Any, str] = {}
    for address, dev in dev_names().items():
        i, entry = int(dev.removeprefix("dev:")), named.get(address)
        labels[i] = f"{entry.label} ({dev})" if entry and entry.name != dev else dev
    labels[WALLET] = "Browser wallet"
    who = st.sidebar.selectbox(
        "Who am I", options, format_func=lambda choice: labels[choice], key="who"
    )
    st.query_params["who"] = str(who)
    return who


def _signer(who: Any, chain_id: int) -> Signer | None:
    if who != WALLET:
        return KeySigner(load_account(str(who), chain_id))
    with st.sidebar:
        state = wallet.connect(chain_id)
    if state.address is None:
        st.sidebar.info("Connect your wallet to act; you can browse meanwhile.")
        return None
    if state.chain_id != chain_id:
        st.sidebar.warning(
            f"Your wallet is on chain {state.chain_id}; switch it to chain {chain_id} to act."
        )
        return None
    return jobs.BrowserSigner(state.address)


def sidebar() -> Frame | None:
    """Draws the sidebar; returns this run's Frame, or None (with a message) without a chain.
    The app's entry (main.py) calls it once per run, before the page."""
    s = settings()
    st.sidebar.markdown("### bountytree")
    try:
        chain_id = int(connect(s.rpc).eth.chain_id)
        who = _who(chain_id)
        signer = _signer(who, chain_id)
        chain = SignerChain(s, signer or _Nobody())
        market = Market(chain, open_store(s.store))
    except UserError as exc:
        st.sidebar.error(str(exc))
        st.error(f"Not connected: {exc}")
        st.session_state[_DRAWN] = None
        return None
    if signer is not None:
        st.sidebar.metric("Balance", eth(chain.w3.eth.get_balance(cast(Any, chain.address))))
        st.sidebar.caption(f"`{chain.address}`")
    st.sidebar.caption(f"chain {s.rpc} (id {chain_id})  \nstore {s.store}")
    frame = Frame(s, chain_id, market, signer)
    st.session_state[_DRAWN] = frame
    return frame


def frame() -> Frame:
    """This run's Frame (`page` takes it first)."""
    value = st.session_state.get(_FRAME)
    assert isinstance(value, Frame), "ui.page() first"
    return value


def page(title: str) -> Market | None:
    """Every page's head: the title, and the Market of the sidebar the app's entry drew in this
    run (the entry draws it so that "Who am I" and the wallet stay as they are from page to
    page), or None (explained). A page run alone (a test, a benchmark) draws the sidebar itself.
    """
    drawn = st.session_state.pop(_DRAWN, _ALONE)
    if drawn is _ALONE:
        drawn = sidebar()
        st.session_state.pop(_DRAWN, None)
    st.session_state[_FRAME] = drawn
    st.title(title)
    return drawn.market if drawn is not None else None


@dataclass(frozen=True)
class TaskPage:
    """A page about one task, once there is a market and a task to show."""

    market: Market
    task_id: int


def task_page(title: str) -> TaskPage | None:
    """A page about one task: `page`, then the task picker (the URL's ?task= preselects it);
    None when there is no market or no task (explained on the page)."""
    market = page(title)
    task_id = pick_task(market) if market is not None else None
    return TaskPage(market, task_id) if market is not None and task_id is not None else None


def act(
    key: str,
    start: bool,
    action: Callable[[Market], Any],
    *,
    what: str,
    progress: Callable[[Any], None] | None = None,
    as_user: bool = True,
) -> Any:
    """Runs `action` on the Market of the current signer (a development key or the browser
    wallet) when `start`; returns its result once it has ended, else None (an error is shown).

    The one path of every action that sends a transaction: each is prepared and simulated here,
    signed by the signer, and followed to its receipt (`bountytree.unsigned`). An action waiting
    for the wallet spans several runs of the page: this call picks it up again in each. An
    action that sends nothing as the user (`as_user=False`) needs no signer.
    """
    running: dict[str, jobs.Job] = st.session_state.setdefault("_jobs", {})
    job = running.get(key)
    answer_key = f"wallet-send-{key}"
    if start and job is None:
        current = frame()
        if current.market is None or (as_user and current.signer is None):
            fail(UserError(f"connect a wallet on chain {current.chain_id} first (sidebar)"))
            return None
        market = current.market
        job = running[key] = jobs.Job(lambda: action(market), what).start()
    if job is None:
        return None
    answer = jobs.WalletAnswer.parse(st.session_state.get(answer_key))
    if answer is not None:
        job.answer(answer)
    with st.spinner(f"{job.status}…"):
        while not job.wait(0.25):
            if progress is not None and job.progress is not None:
                progress(job.progress)
    if progress is not None and job.progress is not None:
        progress(job.progress)
    request = job.request
    if request is not None and not job.done:
        # The quote is at the chain's price now; the wallet shows the fee it will offer.
        st.info(f"{what}: confirm the transaction in your wallet. {request.tx.quote}.")
        wallet.send(request, frame().chain_id, answer_key, f"{what}: to {short(request.tx.to)}")
        return None
    del running[key]
    if job.crash is not None:
        raise job.crash
    if job.error is not None:
        fail(UserError(job.error))
        return None
    return job.result


def required(value: T | None, what: str) -> T:
    """`value`, or a one-line refusal naming what is missing (an action whose button was enabled
    before its input went away)."""
    if value is None:
        raise UserError(f"{what} is needed first")
    return value


def label(address: str) -> str:
    return book().names().get(address, address[:8] + "…")


def task_options(market: Market) -> list[int]:
    return list(reversed(market.task_ids()))


# The task the user last chose, on whichever page: not a widget's key, so it outlives a page
# change (Streamlit drops the state of a widget its page no longer draws).
CHOSEN_TASK = "chosen_task"


def pick_task(market: Market, key: str = "task") -> int | None:
    """The task picker every task page shares: it opens on the task last chosen on any page,
    else the one the address names (?task=, so a reload keeps it), else the newest; a choice is
    written back to both."""
    ids = task_options(market)
    if not ids:
        st.info("No task yet: post a bounty first.")
        return None
    asked = str(st.session_state.get(CHOSEN_TASK) or st.query_params.get("task") or "")
    wanted = int(asked) if re.fullmatch(r"[0-9]{1,9}", asked) else None  # not "²", not 10^5000
    index = ids.index(wanted) if wanted in ids else 0
    if st.session_state.get(key) not in (None, ids[index]):  # left from another page's choice
        st.session_state[key] = ids[index]

    def name(task_id: int) -> str:
        try:  # anyone can post a task whose description is unreadable: it must not hide the rest
            info = market.task(task_id).description
        except UserError as exc:
            return f"#{task_id} (description unreadable: {str(exc)[-60:]})"
        return f"#{task_id} {info.name if info else ''}"

    chosen: int | None = st.selectbox(
        "Task",
        ids,
        index=index,
        key=key,
        format_func=name,
        on_change=lambda: choose_task(st.session_state[key]),  # before the rerun reads it
    )
    choose_task(chosen)
    return chosen


def choose_task(task_id: int | None) -> None:
    """Makes `task_id` the task every page opens on (a task just posted, say)."""
    st.session_state[CHOSEN_TASK] = task_id
    st.query_params["task"] = str(task_id)


def chosen_file(label: str, key: str) -> Path | None:
    """A file uploaded here, or named by its path on this machine. An upload is written once,
    owner-only, to a path named by its content (so a page drawn again neither copies the data
    again nor sees a new file: a bounty posted from it is recognised as posted)."""
    upload = st.file_uploader(label, type=["csv", "npz"], key=f"{key}_upload")
    path_text = st.text_input("…or its path on this machine", key=key)
    if upload is None:
        return Path(path_text).expanduser() if path_text else None
    data = upload.getvalue()
    folder = settings().home / "uploads" / hashlib.sha256(data).hexdigest()[:32]
    name = Path(upload.name).name
    path = folder / (name if name not in ("", ".", "..") else "upload.csv")
    if not path.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, data)
        path.chmod(0o600)
    return path


def button(label: str, *, key: str, why_not: str | None = None, primary: bool = False) -> bool:
    """A button that, when it cannot be pressed, says why in text beside it (a tooltip on a
    disabled button is easy to miss, and absent on a touch screen)."""
    clicked = st.button(
        label, key=key, disabled=why_not is not None, type="primary" if primary else "secondary"
    )
    if why_not is not None:
        st.caption(f"{label}: {why_not}")
    return clicked


def countdown(task: Any) -> str:
    if task.finalized:
        return "—"
    left = task.seconds_left
    if left < 0:
        return "passed"
    return f"{left // 3600}h {left % 3600 // 60:02d}m"


def fail(exc: UserError) -> None:
    """A refusal on the page; its text may quote a stranger's (a column name, a node's answer),
    so it is shown as text, never as Markdown."""
    st.error(markdown(str(exc)))


__all__ = [
    "act",
    "button",
    "choose_task",
    "chosen_file",
    "countdown",
    "eth",
    "fail",
    "frame",
    "label",
    "page",
    "pct",
    "pick_task",
    "settings",
    "sidebar",
    "task_page",
]
