"""`make bench-chain`: whether a transaction sent to the local Ganache is ever left unmined.

One account sends one transfer at a time, each at a random moment within 0.8 s of the last,
while the block clock trails each block with two empty ones, and one busy process loads a core
(as the test suite's CrypTen parties do). A send that has not returned after 5 s is counted
stuck (in Ganache's instamine mode a send returns once its transaction is mined) and is then
let out by hand so the run goes on. Baseline in the same run: the clock as it was, following
blocks with transactions only; then the clock that also mines what the node holds unmined
(`BlockClock`, docs/environment.md). Goal: no send stuck.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import statistics
import time

from bountytree.chain.client import ganache_account
from bountytree.chain.local import BlockClock, _rpc, start_chain
from bountytree.config import ROOT
from bountytree.processes import free_port

STUCK_S = 5.0
SPREAD_S = 0.8


def _busy() -> None:
    while True:
        pass


def _run(sends: int, watch_pool: bool) -> tuple[int, list[float]]:
    chain = start_chain("ganache", free_port())
    chain.clock.stop()
    chain.clock = BlockClock(chain.rpc, chain.proc, watch_pool=watch_pool)
    chain.clock.start()
    sender, to = ganache_account(5), ganache_account(6).address
    stuck, seconds = 0, []
    try:
        for nonce in range(sends):
            tx = {
                "to": to,
                "value": 1,
                "gas": 21_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 10**9,
                "nonce": nonce,
                "chainId": chain.chain_id,
                "type": 2,
            }
            raw = "0x" + bytes(sender.sign_transaction(tx).raw_transaction).hex()
            time.sleep(random.uniform(0, SPREAD_S))
            start = time.perf_counter()
            try:
                _rpc(chain.rpc, "eth_sendRawTransaction", [raw], timeout=STUCK_S)
                seconds.append(time.perf_counter() - start)
            except OSError:  # the send did not return: its transaction was not mined
                stuck += 1
                _rpc(chain.rpc, "evm_mine", [])
    finally:
        chain.stop()
    return stuck, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sends", type=int, default=400)
    args = parser.parse_args()
    load = multiprocessing.Process(target=_busy, daemon=True)
    load.start()
    try:
        rows = [
            ("clock follows blocks only (before)", *_run(args.sends, watch_pool=False)),
            ("clock also mines what the pool holds", *_run(args.sends, watch_pool=True)),
        ]
    finally:
        load.terminate()
    lines = [
        "# Local chain: sends left unmined",
        "",
        f"One account, {args.sends} transfers, each at a random moment within {SPREAD_S} s of the "
        f"last, one core kept busy; a send not back within {STUCK_S:.0f} s is stuck. "
        "Goal: none stuck.",
        "",
        "| block clock | stuck | p50 send (ms) | p99 send (ms) | goal |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, stuck, seconds in rows:
        p50 = statistics.median(seconds) * 1000
        p99 = statistics.quantiles(seconds, n=100)[98] * 1000
        goal = "" if "before" in name else ("met" if stuck == 0 else "not met")
        lines.append(f"| {name} | {stuck} | {p50:.1f} | {p99:.1f} | {goal} |")
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "chain.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
