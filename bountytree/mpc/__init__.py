"""Secure computation with CrypTen: the only part of the core that imports it.

`crypten_import` makes CrypTen importable on torch 2.13; `models` builds a spec as a CrypTen
model; `session` joins a computation (two parties, with or without a dealer); `dealer` is the
third party that deals correlated randomness without ever unpickling a message; `private`
scores and trains models whose weights exist only as two secret shares. Above `models` and
`private`; the oracle and the custodians run these, nothing below imports them.
"""
