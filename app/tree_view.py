"""The model tree as a Graphviz graph: nodes coloured by accuracy, the path to the best node
drawn bold, rejected nodes crossed out. Rendered in the browser by st.graphviz_chart."""

from __future__ import annotations

from bountytree.market.actions import NodeView
from bountytree.market.ladder import carried


def _colour(acc_bps: int) -> str:
    """Red (0 %) through yellow to green (100 %)."""
    x = max(0.0, min(1.0, acc_bps / 10_000))
    red, green = (255, int(510 * x)) if x < 0.5 else (int(510 * (1 - x)), 255)
    return f"#{red:02x}{green:02x}60"


def best_path(nodes: dict[int, NodeView], best: int) -> set[int]:
    path = set()
    while best in nodes:
        path.add(best)
        best = nodes[best].parent_id
    return path


def tree_dot(
    nodes: dict[int, NodeView], best: int, names: dict[str, str], title: str = "task"
) -> str:
    on_path = best_path(nodes, best)
    lines = [
        "digraph tree {",
        'rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica"];',
        f'task [label="{title}", shape=oval, fillcolor="#dde6f5"];',
    ]
    for n in nodes.values():
        who = names.get(n.author, n.author[:8])
        if n.status == "scored":
            above = nodes.get(n.parent_id)
            own = not carried(n.accuracy_bps, above.accuracy_bps if above else None)
            fill = _colour(n.accuracy_bps)
            score = f"{n.accuracy_bps / 100:.2f}%" + ("" if own else " (carried)")
        elif n.status == "rejected":
            fill, score = "#bbbbbb", f"✗ rejected ({n.reason})"
        else:
            fill, score = "#ffffff", n.status
        pen = ', penwidth=3, color="#1a4fd6"' if n.id in on_path else ""
        kind = "arch" if n.kind == "architecture" else "trained"
        lines.append(
            f'n{n.id} [label="#{n.id} {kind}\\n{who}\\n{score}", fillcolor="{fill}"{pen}];'
        )
        parent = f"n{n.parent_id}" if n.parent_id else "task"
        edge = ' [penwidth=3, color="#1a4fd6"]' if n.id in on_path else ""
        lines.append(f"{parent} -> n{n.id}{edge};")
    lines.append("}")
    return "\n".join(lines)
