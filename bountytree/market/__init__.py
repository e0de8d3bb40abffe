"""The market: the actions of every role on the contract (`actions`) and what they return
(`records`), task descriptions (`taskinfo`), the Ladder (`ladder`), validation files and their
commitments (`validation`), and text views of a task (`render`). Uses the chain, the store and
the models; below delivery and the commands."""
