"""optbench: a benchmark harness for optimizers that train MTP/ETN interatomic potentials.

The pipeline, one subpackage per stage (docs/architecture.md): `io` (data files and the
in-memory data set) -> `engine` (the embedded C++ engine, libmlipc.so behind the C ABI of
engine/include/mlipc.h, loaded with ctypes) and `mlip` (MLIP's own codes) -> `objective`
(loss and gradient of a parameter vector) -> `optim` (the optimizers) -> `train` (one run)
-> `experiments` (sweeps, runs, the results store) -> `report` (tables and figures) ->
`cli` (the `optbench` command). `metrics` and `status` are shared by all of them.
"""

__version__ = "0.1.0"
