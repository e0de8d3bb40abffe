"""A private task's custodian and its dealer, each a long-running process of its own
(`python -m custodian serve …`, `python -m custodian dealer …`).

A custodian holds one share of every node of the private tasks it accepted, sealed to its own
key at rest (`holdings`); each round it makes the holdings of new architectures (public
weights, shared as value and zero), trains children with the other custodian in a
three-party session with the dealer, commits to every share on-chain, scores nodes on the
sponsor's shared validation rows with the Ladder inside and attests the record, and hands the
winner over once the task is finalized (`service`). Each session runs in a fresh process
(`session`). docs/private-models.md has the design and the threat model.
"""
