"""A party 1 that deviates from the protocol, run by the tests as a process of its own:

    python tests/oracle/hostile_party.py --address HOST:PORT --job JOB.json --key KEY --out OUT.json

JOB.json holds the header to send (anything: a stranger's junk, a forged or a genuine signed
ticket, the genuine ones issued for the link key in the key file KEY) and, per node, weights it
holds (never used: the validator shares each node's weights itself, from the store) and an
optional tamper: a list of [row position, class, value] added to party 1's own share of that
model's one-hot argmax before it is multiplied with the labels. OUT.json receives the counts it
was given, or why the validator refused it. It uses the product's own protocol code for
everything else, so it stays in step with party 0 until the point where it cheats.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bountytree.models.spec import parse_spec
from bountytree.mpc.crypten_import import crypten, torch
from bountytree.private.sealing import read_private_key
from oracle import mpc


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--job", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    job = json.loads(Path(args.job).read_text())
    spec = parse_spec(job["spec"])
    models, tampers = [], []
    for node in job["nodes"]:
        models.append((node["id"], spec))
        tampers.append(node.get("tamper") or [])

    calls = iter(tampers)
    original = crypten.mpc.MPCTensor.argmax

    def cheating_argmax(self, *a, **kw):
        result = original(self, *a, **kw)
        if kw.get("one_hot") and crypten.communicator.get().get_rank() == mpc.MODEL_PARTY:
            delta = torch.zeros(result.size())
            for row, cls, value in next(calls):
                delta[row, cls] = value
            result.share = result.share + result.encoder.encode(delta)
        return result

    crypten.mpc.MPCTensor.argmax = cheating_argmax
    identity = mpc.Identity(read_private_key(Path(args.key)), {mpc.DATA_PARTY: None})
    try:
        mpc.join(args.address, mpc.MODEL_PARTY, identity, ticket=job["header"])
    except mpc.SessionRefused as exc:
        Path(args.out).write_text(json.dumps({"refused": str(exc)}))
        return
    try:
        scores, _ = mpc.model_party(models, {})
        out = {"counts": {str(s.node_id): s.correct for s in scores}}
    except mpc.SessionRefused as exc:
        out = {"refused": str(exc)}
    finally:
        mpc.leave()
    Path(args.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
