"""Which variant is the baseline that other variants are compared with: one rule for the
experiment file (checked when it is loaded) and for the report (per model and data set).

The baseline is asked for by a variant label or an optimizer name. Without a request the
study's choice applies: SciPy BFGS, then MLIP's native trainer (its BFGS), then the first
variant.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_BASELINES = ("bfgs", "native")


class BaselineError(ValueError):
    """A requested baseline that names no variant, or an optimizer with several."""


def choose_baseline(variants: Sequence[tuple[str, str, int]], requested: str | None = None) -> tuple[str | None, str]:
    """The baseline variant among `variants` ((variant label, optimizer name, number of
    runs), in order) and a sentence saying how it was chosen.

    `requested` names a variant, or an optimizer with exactly one variant; anything else
    is a BaselineError naming the candidates. Without a request: the first optimizer of
    DEFAULT_BASELINES that has runs (its variant with most runs, ties to the first), else
    the first variant. (None, "no runs") when there are no variants."""
    labels = list(dict.fromkeys(v for v, _, _ in variants))
    if not labels:
        return None, "no runs"
    if requested:
        if requested in labels:
            return requested, f"baseline: variant {requested!r} (requested)"
        of_opt = _variants_of(variants, requested)
        if len(of_opt) == 1:
            return of_opt[0], f"baseline: {of_opt[0]!r}, the variant of optimizer {requested!r} (requested)"
        if of_opt:
            raise BaselineError(f"optimizer {requested!r} has {len(of_opt)} variants; name one: " + "; ".join(of_opt))
        raise BaselineError(f"no variant or optimizer {requested!r}; variants: {'; '.join(labels)}")
    for name in DEFAULT_BASELINES:
        if name in labels:
            return name, f"baseline: variant {name!r}"
        of_opt = _variants_of(variants, name)
        if of_opt:
            counts: dict[str, int] = {}
            for v, opt, n in variants:
                if opt == name:
                    counts[v] = counts.get(v, 0) + n
            pick = max(of_opt, key=lambda v: counts[v])
            extra = f"; other {name} variants: {', '.join(v for v in of_opt if v != pick)}" if len(of_opt) > 1 else ""
            return pick, f"baseline: {pick!r}, a variant of optimizer {name!r}{extra}"
    return labels[0], f"no BFGS run in this group; baseline: the first variant {labels[0]!r}"


def _variants_of(variants: Sequence[tuple[str, str, int]], optimizer: str) -> list[str]:
    return list(dict.fromkeys(v for v, opt, _ in variants if opt == optimizer))
