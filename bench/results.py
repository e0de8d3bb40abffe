"""Gathers every benchmark's table into bench/results.md (run by `make bench` after them all)."""

from __future__ import annotations

import datetime
import platform

from bountytree.config import ROOT

PARTS = [
    ("Gas (make bench-gas)", "gas.md"),
    ("Storage (make bench-storage)", "storage.md"),
    ("Trainer (make bench-trainer)", "trainer.md"),
    ("Oracle (make bench-oracle)", "oracle.md"),
    ("End to end (make bench-e2e)", "e2e.md"),
    ("Scale (make bench-scale)", "scale.md"),
    ("Lineage and replay (make bench-lineage)", "lineage.md"),
    ("Serving (make bench-serve)", "serve.md"),
    ("Serving beside MLServer (make bench-serve)", "mlserver.md"),
    ("Command-line start-up (make bench-cli)", "cli.md"),
    ("Private models (make bench-private)", "private.md"),
    ("Local chain (make bench-chain)", "chain.md"),
    ("HTTP servers under hostile clients (make bench-http-servers)", "http_servers.md"),
]


def main() -> None:
    out = [
        "# bountytree benchmark results",
        "",
        f"Written {datetime.datetime.now().isoformat(timespec='minutes')} on {platform.machine()}, "
        f"Python {platform.python_version()}. Each section is the file its benchmark wrote; figures are "
        "ratios to a baseline measured in the same run where there is one.",
        "",
    ]
    for title, name in PARTS:
        path = ROOT / "bench" / name
        body = path.read_text().split("\n", 1)[1] if path.exists() else "\n(not run)\n"
        out += [f"## {title}", body.replace("\n## ", "\n### ").strip(), ""]
    (ROOT / "bench" / "results.md").write_text("\n".join(out))
    print("wrote bench/results.md")


if __name__ == "__main__":
    main()
