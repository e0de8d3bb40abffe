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
from dataclasses import dataclass
from pathlib import Path

from bountytree.files import atomic_write_json
from bountytree.text import NAME, check_name

FILE = "addressbook.json"
DEV_ACCOUNTS = 10  # development accounts named dev:N on a local chain


@dataclass(frozen=True)
class Entry:
    address: str
    name: str
    role: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} — {self.role}" if self.role else self.name


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
        from bountytree.chain.client import LOCAL_CHAIN_IDS

        book = self._all().get(str(self.chain_id), {})
        out = []
        for address, entry in book.items() if isinstance(book, dict) else []:
            if isinstance(entry, dict) and NAME.match(str(entry.get("name", ""))):
                role = str(entry.get("role", ""))
                out.append(Entry(address, str(entry["name"]), role if NAME.match(role) else ""))
        if self.chain_id in LOCAL_CHAIN_IDS:
            known = {e.address for e in out}
            out += [Entry(a, dev) for a, dev in dev_names().items() if a not in known]
        return out

    def names(self) -> dict[str, str]:
        """address -> name, for labelling addresses read from the chain."""
        return {e.address: e.name for e in self.entries()}

    def save(self, address: str, name: str, role: str = "") -> None:
        data = self._all()
        book = data.setdefault(str(self.chain_id), {})
        book[address] = {
            "name": check_name(name, "name"),
            "role": role and check_name(role, "role"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, data)


def dev_names(count: int = DEV_ACCOUNTS) -> dict[str, str]:
    """address -> "dev:N" for a local chain's development accounts, the name `--account` takes."""
    from bountytree.chain.client import ganache_account

    return {ganache_account(i).address: f"dev:{i}" for i in range(count)}
