"""optbench: a benchmark harness for optimizers that train MTP/ETN interatomic potentials.

The potentials are evaluated by an embedded C++ engine (libmlipc.so, C ABI in
engine/include/mlipc.h) that ships inside this package and is loaded with ctypes
(see optbench.adapters).
"""

__version__ = "0.1.0"
