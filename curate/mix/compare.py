"""Side-by-side summary of mixtures, and the three recipes of the demo (verified, 50% incorrect, NoCoT).

`demo_recipes(where, size)` gives recipes that differ only in their quality knob, so the summary table
from `compare(manifests)` shows exactly what each knob did: same questions, different responses.
The demo command (cli.py, `# ---- demo`) builds them with `curate.mix.mix_recipe` and prints the table.
"""
from __future__ import annotations

from curate.mix.recipe import Recipe, validate_recipe


def demo_recipes(where: str, size: int, seed: int = 0) -> list[Recipe]:
    """verified / incorrect-50 / nocot over the traces matching `where` (e.g. "source = 'countdown'")."""
    base = {"seed": seed, "size": size, "allow_smaller": True, "sources": [{"name": "demo", "where": where}],
            "selection": {"require_incorrect": True}, "filters": {"no_truncation": True, "think_closed": True}}
    knobs = {"verified": {}, "incorrect-50": {"incorrect_fraction": 0.5}, "nocot": {"strip_thinking": True}}
    return [validate_recipe({**base, "name": name, "quality": q}, origin=f"demo recipe {name}") for name, q in knobs.items()]


def compare(manifests: list[dict]) -> list[dict]:
    """One row per mixture: size, share of verified-incorrect rows, share without thinking, response length."""
    rows = []
    for m in manifests:
        n = m["rows"] or 1
        by = lambda key, value: sum(c["rows"] for c in m["composition"] if value in c[key].split("+"))  # noqa: E731
        chars = m["tokens"]["response_chars"]
        rows.append({
            "mixture": m["name"],
            "rows": m["rows"],
            "incorrect": f"{by('status', 'incorrect') / n:.0%}",
            "thinking removed": f"{by('transform', 'strip_thinking') / n:.0%}",
            "mean response chars": chars.get("mean"),
            "contamination hits": sum(sum(v.values()) for v in m["decontamination"]["hits"].values()),
            "recipe hash": m["recipe_hash"][:12],
        })
    return rows
