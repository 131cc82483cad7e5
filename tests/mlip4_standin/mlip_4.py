"""A stand-in for MLIP-4's Python module `mlip_4`, built on the embedded engine.

It exposes exactly the surface optbench/mlip/mlip4_module.py documents and relies on
(MTP / ETN with from_json_bytes, params, to_json_bytes; LossFunction(records) with
attach_pot, calc, accumulate_grads, calc_errors), so that the adapter's own logic —
batching, parameter mapping, error handling — runs for real in tests. Its potential
"JSON" wraps the engine's .almtp text: {"kind": "mtp", "almtp": "..."}.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from optbench.engine.capi import Engine
from optbench.io import from_mlip4_records
from optbench.metrics import compute_metrics

_ENGINE = Engine()
_ENGINE.set_num_threads(1)


class _Potential:
    kind = ""

    def __init__(self, pot):
        self._pot = pot

    @classmethod
    def from_json_bytes(cls, data: bytes):
        """The potential of a stand-in JSON document."""
        doc = json.loads(data)
        if doc.get("kind") != cls.kind:
            raise ValueError(f"not a {cls.kind} potential (kind {doc.get('kind')!r})")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "p.almtp")
            path.write_text(doc["almtp"])
            return cls(_ENGINE.load_potential(path))

    def to_json_bytes(self) -> bytes:
        """The stand-in JSON document of this potential."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "p.almtp")
            self._pot.save(path)
            return json.dumps({"kind": self.kind, "almtp": path.read_text()}).encode()

    @property
    def params(self) -> np.ndarray:
        return self._pot.get_params()

    @params.setter
    def params(self, x) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self._pot.n_params,):
            raise ValueError(f"params: expected {self._pot.n_params} values, got {x.shape}")
        self._pot.set_params(x)


class MTP(_Potential):
    kind = "mtp"


class ETN(_Potential):
    kind = "etn"


class LossFunction:
    """Weighted squared errors summed over the records' configurations."""

    def __init__(self, records: list):
        self._data = from_mlip4_records(records, "LossFunction", use_file_weights=True)
        w = []
        for c in self._data.configs:
            cw = c.features["weights"]
            w_e, w_s, w_f = cw[0], cw[1], cw[7]
            if not (np.allclose(cw[1:4], w_s) and np.allclose(cw[4:7], 2 * w_s) and np.allclose(cw[7:], w_f)):
                raise ValueError("the stand-in takes one weight per term (stress off-diagonals doubled)")
            w.append((w_e, w_f, w_s))
        self._w = np.array(w)
        self._pot = self._ds = None

    def attach_pot(self, pot: _Potential) -> None:
        self._pot = pot
        self._ds = _ENGINE.dataset(self._data, pot._pot.cutoff)

    def calc(self) -> float:
        loss, _ = _ENGINE.loss_grad(self._pot._pot, self._ds, self._w, grad=False)
        return loss

    def accumulate_grads(self, g: np.ndarray) -> None:
        _, grad = _ENGINE.loss_grad(self._pot._pot, self._ds, self._w)
        g += grad

    def calc_errors(self) -> dict:
        m = compute_metrics(self._data.configs, *_ENGINE.predict(self._pot._pot, self._ds))
        return {block: {"count": s.count, "max": s.max, "mae": s.mae, "rmse": s.rmse}
                for block, s in (("energy", m.energy), ("energy_per_atom", m.energy_per_atom),
                                 ("forces", m.forces), ("stress", m.stress))}
