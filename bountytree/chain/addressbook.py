"""Names for addresses, owned by the product: a local address book per chain, and `dev:N` for a
local chain's development accounts.

The book is a JSON file under the home folder (`addressbook.json`: chain id -> address ->
{"name", "role"}), written by whoever knows a name: a user, or the scripted demo for its cast.
The app and `task show` read it; nothing else is trusted from it. It only ever labels an address
that came from the chain; a name never selects an account to send from (that takes `--account`
or the wallet).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bountytree.chain.local import CHAIN_IDS
from bountytree.errors import UserError
from bountytree.files import atomic_write_json

FILE = "addressbook.json"
DEV_ACCOUNTS = 10  # development accounts named dev:N on a local chain
# What a name may hold: it is rendered in the app and the terminal.
NAME = re.compile(r"^[A-Za-z0-9 _.\-]{1,40}$")


@dataclass(frozen=True)
class Entry:
    address: str
    name: str
    role: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} — {self.role}" if self.role else self.name


def _check(text: str, what: str) -> str:
    if text and not NAME.match(text):
        raise UserError(f"{what} {text!r}: use 1 to 40 letters, digits, spaces, '_', '.' or '-'")
    return text


class AddressBook:
    def __init__(self, home: Path, chain_id: int):
        self.path = Path(home) / FILE
        self.chain_id = chain_id

    def _all(self) -> dict[str, dict[str, dict[str, str]]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def entries(self) -> list[Entry]:
        """The book's entries for this chain, then (on a local chain) the development accounts
        it does not name, as dev:N."""
        from bountytree.chain.client import ganache_account

        book = self._all().get(str(self.chain_id), {})
        out = []
        for address, entry in book.items() if isinstance(book, dict) else []:
            if isinstance(entry, dict) and NAME.match(str(entry.get("name", ""))):
                role = str(entry.get("role", ""))
                out.append(Entry(address, str(entry["name"]), role if NAME.match(role) else ""))
        if self.chain_id in CHAIN_IDS.values():
            known = {e.address for e in out}
            out += [
                Entry(a, f"dev:{i}")
                for i in range(DEV_ACCOUNTS)
                if (a := ganache_account(i).address) not in known
            ]
        return out

    def names(self) -> dict[str, str]:
        """address -> name, for labelling addresses read from the chain."""
        return {e.address: e.name for e in self.entries()}

    def save(self, address: str, name: str, role: str = "") -> None:
        data = self._all()
        book = data.setdefault(str(self.chain_id), {})
        book[address] = {"name": _check(name, "name"), "role": _check(role, "role")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, data)


def dev_names(count: int = DEV_ACCOUNTS) -> dict[str, str]:
    """address -> "dev:N" for a local chain's development accounts, the name `--account` takes."""
    from bountytree.chain.client import ganache_account

    return {ganache_account(i).address: f"dev:{i}" for i in range(count)}
