"""bountytree: the shared core every role imports, a package per part, lowest first:

- the foundation: `errors`, `config`, `files`, `units` (text a person types), `reasons` (the
  contract's reason codes) and `processes` (local processes and their ports);
- `chain` and `storage`, side by side and independent;
- `models`: layer types, specs, weights, training, datasets, bounds, inference;
- `market`: the contract's actions, task descriptions, the Ladder, validation files, text views;
- `delivery`: the winning model's export, model card and server;
- `commands` and `cli`: the command line.

Nothing imports a part above its own (`make lint` checks the order).

Nothing here imports brownie: contracts are found through `deployments/<chainId>.json`.
"""

__version__ = "0.1.0"
