"""A dealer that comes to a session and then stops answering: it deals the streams' keys, takes
the first request and says nothing more (a deviating party of the e2e tests). Run as
`python -m tests.e2e.silent_dealer PEER TIMEOUT KEY_FILE PAIRS`, the arguments the dealer's
own loop gives its sessions (PAIRS: the custodians' public keys, `zero:one` in hex); it prints "went
silent" once it has a request it will not answer, and ends well after the custodians' timeout."""

from __future__ import annotations

import sys
import time

from bountytree.mpc import dealer as dealing


def _silent(message: object) -> None:
    print("went silent", flush=True)
    time.sleep(float(sys.argv[2]) + 20)
    sys.exit(0)


if __name__ == "__main__":
    dealing.parse_request = _silent
    from custodian.session import dealer

    sys.exit(dealer(sys.argv[1], float(sys.argv[2]), *sys.argv[3:5]))
