"""The memory plan as data for the explorer's chart: each value's and each workspace's lifetime
in its buffer over the timeline (forward steps 0..S-1, then their backward in reverse), and the
bytes live at each time step.

    memory_data(plan) -> {"timeline", "buffers", "bars", "values", "work", "peak", ...} or None
"""
from __future__ import annotations

from dagnet.viz.memory import live_bytes

TRANSIENT = ":transient"


def memory_data(plan) -> dict | None:
    """Bars (one per value and per workspace), live bytes per time step, peaks; bytes are per
    example. None for a plan without a memory plan."""
    mem = plan.graph.meta.get("memory")
    if not mem:
        return None
    bars = []
    for step in plan.steps:
        node = plan.graph.node(step.name)
        start, end = node.meta["live"]
        bars.append({"kind": "value", "step": step.index, "name": step.name, "buffer": step.buffer,
                     "start": start, "end": end, "inplace": bool(step.inplace),
                     "bytes": int(mem["buffers"].get(step.buffer, 0)) if step.buffer >= 0 else 0})
    index = {s.name: s for s in plan.steps}
    for name, (start, end, size) in mem["workspaces"].items():
        owner = index.get(name.removesuffix(TRANSIENT))
        planned = owner is not None and not name.endswith(TRANSIENT) and owner.workspace_buffer >= 0
        bars.append({"kind": "workspace", "step": owner.index if owner else None, "name": name,
                     "buffer": owner.workspace_buffer if planned else None, "start": int(start),
                     "end": int(end), "bytes": int(size), "inplace": False})
    values, work = live_bytes(plan)
    return {"timeline": int(mem["timeline"]), "steps": len(plan.steps),
            "buffers": {str(b): int(n) for b, n in sorted(mem["buffers"].items())},
            "bars": bars, "values": [int(v) for v in values], "work": [int(w) for w in work],
            "peak": int(mem["total"]["peak"]), "peak_step": int(mem["total"]["peak_step"]),
            "values_peak": int(mem["activations"]["peak"]), "no_reuse": int(mem["total"]["no_reuse"]),
            "fixed_bytes": int(mem["fixed_bytes"])}
