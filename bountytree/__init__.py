"""bountytree: the shared core every part imports (chain client, storage, specs, data, config).

Nothing here imports brownie: contracts are found through `deployments/<chainId>.json`.
"""

__version__ = "0.1.0"
