"""The engine: time and peak memory of one full loss + gradient on the Ag-Pd set."""

from __future__ import annotations

from . import common


class LossGrad:
    """Seconds for one full loss_grad (loss and gradient over all 240 training
    configurations of the generated Ag-Pd set, 8640 atoms; energy and force terms) of a
    potential with its default parameters, one engine thread. Lower is better."""

    params = [list(common.MODELS)]
    param_names = ["model"]
    setup_cache = staticmethod(common.agpd_sets)
    timeout = 120

    def setup(self, sets, model):
        train, _ = sets
        self.obj = common.objective(model, train)
        self.x = self.obj.initial_params(0)

    def time_loss_grad(self, sets, model):
        """One loss_grad over the whole training set (seconds)."""
        self.obj.loss_grad(self.x)


class LossGradMemory:
    """Peak memory (MiB) a level-16 loss_grad on the 240 configurations needs from
    scratch: the engine's data set (neighbour lists), the potential and the first call,
    one engine thread. Lower is better. (The call itself streams over configurations and
    adds next to nothing once the data set exists; the data set is what grows.)

    A track_ benchmark rather than asv's peakmem_: peakmem_ reports the whole process's
    maximum RSS, which is dominated by Python, numpy/scipy/ase and the pickled Ag-Pd set,
    so a change in the engine's memory would drown in it; tracemalloc would not see the
    engine at all (it allocates in C++). Here the kernel's high-water mark is reset just
    before (Linux: /proc/self/clear_refs) and the peak above the resident size of that
    moment is reported."""

    setup_cache = staticmethod(common.agpd_sets)
    timeout = 120
    unit = "MiB"

    def setup(self, sets):
        try:
            _reset_peak()
        except OSError as err:
            raise NotImplementedError(f"cannot reset the peak RSS here (Linux only): {err}") from err

    def track_loss_grad_peak_mib(self, sets):
        """Peak RSS above the resident size before the objective was built (MiB)."""
        train, _ = sets
        _reset_peak()
        before = _status_kib("VmRSS")
        obj = common.objective("mtp16", train)
        obj.loss_grad(obj.initial_params(0))
        return (_status_kib("VmHWM") - before) / 1024.0


def _reset_peak() -> None:
    """Set this process's high-water mark (VmHWM) to its current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _status_kib(field: str) -> int:
    """A kB field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise NotImplementedError(f"no {field} in /proc/self/status")
