"""The one exception type a user may cause: commands print its message on one line, no traceback."""


class UserError(Exception):
    """A mistake in what the user asked for (bad input, unknown id, chain refused the call).

    Raised before anything irreversible happens wherever that is possible: inputs are checked,
    and transactions are simulated, before one is signed.
    """
