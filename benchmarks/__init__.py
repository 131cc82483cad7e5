"""optbench's airspeed velocity (asv) suite: speed and quality tracked across commits.

asv.conf.json sits at the repository root; the Makefile's targets run it (`make bench`,
`make bench-compare A=... B=...`, `make dashboard`, `make bench-smoke`).

    bench_engine.py      time_* of one full loss_grad per model; track_* of its peak memory
    bench_optimizers.py  time_* of one optimizer step (update) or one short driver run
    bench_quality.py     track_* of errors reached at a fixed budget, configurations to a target
    bench_properties.py  time_* of MD steps through the engine's ASE calculator (with and without
                         the neighbour skin) and of eos + elastic constants of one crystal
    common.py            the shared data, models and engine set-up (no benchmarks)

The other modules here are standalone scripts (engine_speed.py, optimizer_overhead.py,
study_table.py, motep_reference.py, vendor_dashboard.py, check_dashboard.py,
finetune_overhead.py, curvature_costs.py): asv
imports them while it discovers benchmarks, so they keep their work under main()
(bench_quality.py reuses study_table.py's data set definitions and training run).
"""

import os

# One BLAS/OpenMP thread before numpy loads: the engine runs on one thread too
# (common.engine()), so timings do not depend on the machine's core count and the
# training runs of bench_quality.Quality are reproducible bit for bit (EmtTarget runs
# the engine on two threads, as study_table.py does).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
