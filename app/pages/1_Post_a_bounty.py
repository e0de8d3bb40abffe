"""Post a bounty: the validation file stays on this machine; only its hash goes on-chain. With
private models, the task is made private in the same action: its custodians and dealer named,
the sponsor's key read from its file on this machine (only the public key is sent)."""

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from app import ui
from bountytree.errors import UserError
from bountytree.market.actions import Market
from bountytree.market.custody import Custody, CustodyTerms, custody_terms
from bountytree.models import datasets
from bountytree.units import parse_eth

POSTED = "posted_terms"  # the last bounty this session posted (a Posted)


@dataclass(frozen=True)
class Posted:
    """The last bounty this session posted: a second click on the same terms posts nothing."""

    terms: tuple
    task_id: int
    said: str  # what the page said of it
    not_private: str | None  # why a task meant to be private is not (yet), if it is not


market = ui.page("Post a bounty")
if market is not None:
    path = ui.chosen_file("Validation file (CSV with a label column, or .npz)", "validation_path")
    label_column = st.text_input("Label column", value="label", key="label_column")
    rows = None
    if path is not None:
        try:
            rows = datasets.load_file(path, label_column)
            st.success(
                f"{len(rows)} rows, {rows.num_features} features, classes {rows.classes} — "
                "kept on this machine, registered with the local validator, never uploaded."
            )
        except UserError as exc:
            ui.fail(exc)
    name = st.text_input("Name", key="name")
    description = st.text_area("Description", key="description")
    c1, c2, c3 = st.columns(3)
    bounty = c1.number_input("Bounty (ETH)", min_value=0.0, value=5.0, step=0.5, key="bounty")
    target = c2.slider("Target accuracy", 0.05, 1.0, 0.9, 0.01, key="target")
    hours = c3.number_input("Deadline (hours from now)", min_value=0.01, value=2.0, key="hours")
    st.markdown("**Payout split** (always 100 %)")
    s1, s2, s3 = st.columns(3)
    data_share = s1.slider("Data %", 0, 100, 60, key="data_share")
    compute_share = s2.slider(
        "Compute %", 0, 100 - data_share, min(20, 100 - data_share), key="compute_share"
    )
    expertise_share = 100 - data_share - compute_share
    s3.metric("Expertise %", expertise_share)
    k1, k2 = st.columns(2)
    stake = k1.number_input(
        "Stake per submission (ETH)", min_value=0.0, value=0.01, step=0.01, key="stake"
    )
    fee = k2.number_input(
        "Scoring fee per submission (ETH, into the pool when scored; burned if never)",
        min_value=0.0,
        value=0.0,
        step=0.001,
        format="%.4f",
        key="scoring_fee",
    )
    m1, m2, m3 = st.columns(3)
    margin = m1.number_input(
        "Margin (points a new best must add; the Ladder)",
        min_value=0.01,
        max_value=100.0,
        value=1.0,
        step=0.5,
        key="margin",
    )
    cap = m2.number_input(
        "Submissions per account (0: no cap)", min_value=0, max_value=65535, value=0, key="cap"
    )
    bond = m3.number_input(
        "Audit bond (ETH, back when you publish the file)",
        min_value=0.0,
        value=0.0,
        step=0.5,
        key="audit_bond",
    )
    private = st.checkbox(
        "Private models: no trained model is ever public; two custodians hold each as secret "
        "shares, and the winner is handed over to you once paid",
        key="private_models",
    )
    custody: CustodyTerms | None = None
    if private:
        p1, p2, p3 = st.columns(3)
        first = p1.text_input("Custodian A (address)", key="custodian_a")
        second = p2.text_input("Custodian B (address)", key="custodian_b")
        dealer = p3.text_input("Dealer (address)", key="dealer")
        key_path = st.text_input(
            "Your key file's path on this machine (`bountytree custody keygen`; only its public "
            "key is sent, the winner is sealed to it)",
            key="custody_key_file",
        )
        q1, q2, q3 = st.columns(3)
        custody_stake = q1.number_input(
            "Custody stake each (ETH)", min_value=0.0, value=0.1, step=0.05, key="custody_stake"
        )
        custody_fee = q2.number_input(
            "Custody fee (ETH, paid now, in thirds)",
            min_value=0.0,
            value=0.3,
            step=0.05,
            key="custody_fee",
        )
        window_h = q3.number_input(
            "Hand-over time (hours)", min_value=1.0, max_value=720.0, value=48.0, key="window_h"
        )
        if first and second and dealer and key_path:
            try:
                custody = custody_terms(
                    (first, second),
                    dealer,
                    Path(key_path).expanduser(),
                    stake=parse_eth(custody_stake, "custody stake"),
                    fee=parse_eth(custody_fee, "custody fee"),
                    window_s=int(window_h * 3600),
                )
            except UserError as exc:
                ui.fail(exc)
    # What was just posted, so that a second click does not escrow a second bounty.
    terms = (
        *(str(path), name, description, bounty, target, hours),
        *(data_share, compute_share, stake, fee, margin, cap, bond, custody),
    )
    posted: Posted | None = st.session_state.get(POSTED)
    if posted is not None and posted.terms != terms:
        posted = None  # other terms: this bounty is not posted yet
    why_not = None
    if rows is None or not name:
        why_not = "posting needs a validation file and a name"
    elif private and custody is None:
        why_not = "private models need two custodians, a dealer and your key file"
    elif posted is not None:
        why_not = (
            f"task {posted.task_id} was posted with exactly these terms: change "
            "something (or reload the page) to post another bounty"
        )
    clicked = ui.button("Post bounty", key="post", primary=True, why_not=why_not)

    def post(m: Market):
        """The task, then (private models) its custody, checked before anything is sent.
        Returns the task and, if it was posted but not made private, why: the page records it
        as posted either way (this runs in a job of its own, apart from the page's state), so
        the same terms never post a second bounty."""
        if custody is not None:
            Custody(m).check(custody)
        created = m.create_task(
            ui.required(path, "a validation file"),
            name=name,
            description=description,
            bounty=parse_eth(bounty, "bounty"),
            target_bps=round(target * 10_000),
            deadline_s=int(hours * 3600),
            shares_bps=(data_share * 100, compute_share * 100, expertise_share * 100),
            stake=parse_eth(stake, "stake"),
            label_column=label_column,
            margin_bps=round(margin * 100),
            scoring_fee=parse_eth(fee, "scoring fee"),
            max_submissions=int(cap),
            audit_bond=parse_eth(bond, "audit bond"),
            private_models=custody is not None,
        )
        if custody is None:
            return created, None
        try:
            Custody(m).register(created.task_id, custody)
        except UserError as exc:
            return created, (
                f"Task {created.task_id} was created private, its custody not registered ({exc}); "
                f"it takes nothing until then: retry with `bountytree custody register --task "
                f"{created.task_id} …`"
            )
        return created, None

    out = ui.act("post", clicked, post, what="Posting the bounty")
    if out is not None:  # drawn again at once, so the button is off from this moment on
        created, not_private = out
        ui.choose_task(created.task_id)
        made_private = custody is not None and not_private is None
        private_note = (
            " Private models: its custodians hold every trained node." if made_private else ""
        )
        st.session_state[POSTED] = Posted(
            terms,
            created.task_id,
            f"Task {created.task_id} posted. Transaction {created.sent.tx_hash}, gas "
            f"{created.sent.gas_used}.{private_note}",
            not_private,
        )
        st.rerun()
    if posted is not None:
        st.success(posted.said)
        if posted.not_private:
            ui.fail(UserError(posted.not_private))
