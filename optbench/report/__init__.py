"""A sweep's report from its results store: report.md and a self-contained report.html
(figures embedded as PNG data URIs, inline CSS, no external URL) plus the PNGs.

    from optbench.report import write_report
    out = write_report("results/sweep.sqlite", baseline="bfgs")
    out["html"], out["tables"]["vs_baseline"]

Per (model, data) group it gives what the study gave (mean / median / std / min / max over
seeds, outliers, ratios to the BFGS baseline, loss histories, quality vs train time) and
what it lacked: bootstrap confidence intervals, paired tests over shared seeds, equal-budget
and time-to-target views, and flags for results identical across seeds, runs that stopped
on a line-search failure (never counted as converged) and runs that failed. Units: the
store holds eV/atom, eV/Å and seconds; tables and figures show meV/atom and meV/Å.

The modules, in the order the data flows through them:

- ``stats``: the statistics on plain numbers (summaries over seeds, robust z outliers,
  bootstrap intervals, paired Wilcoxon tests, best-within-budget and time-to-target on a
  run's evaluations).
- ``groups``: the finished runs of a store as one frame, their histories, and the
  (model, data) groups with their baseline (optbench.experiments.baseline's rule) and
  colours; the quantities and units shared by tables and figures.
- ``tables``: one DataFrame per group and question (summary, outliers, overview, against
  the baseline, equal budget, time to target, flags) and their default budgets and target.
- ``references``: optbench's means beside reference results (the ``[[references]]`` of an
  experiment file) per variant, with their ratios and core-seconds.
- ``figures``: one PNG per group and view (loss histories, quality vs cost, ensembles,
  sweeps, equal budget).
- ``render``: the document model (headings, paragraphs, lists, tables, figures), the cell
  formatting, and its rendering to Markdown and to one HTML page built from the package
  data in ``static/`` (page template, CSS, script).
- ``write``: ``write_report``, which puts it together: the list of what is missing or
  suspect, then one section per group.
"""

from optbench.report.write import write_report

__all__ = ["write_report"]
