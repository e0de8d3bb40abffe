"""The chain: the JSON-RPC client that signs, sends and follows transactions (`client`), the local
development chains and their block clock (`local`), and transactions prepared here for a
browser wallet to sign (`unsigned`). Below the market; imports nothing above it."""
