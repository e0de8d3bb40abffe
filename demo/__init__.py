"""The scripted market that `make demo` plays: named actors, sample data cut from scikit-learn's
digits, and a script that drives every role through the same functions as the command line.

It sits above the roles (it runs the trainer), so the shared core never imports it;
`bountytree up --demo` starts it as a process (`python -m demo`).
"""
