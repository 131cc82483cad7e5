"""Physical properties of trained potentials, against references no one tuned to.

One module per kind of property, each a function ``(calculator, structure, settings) ->
PropertyResult`` (base.py): eos.py (equation of state), elastic.py (elastic constants),
phonons.py (phonopy), md.py (molecular-dynamics stability), defects.py (vacancy, surface,
stacking-fault energies); structures.py names the crystals, relax.py relaxes them,
calculators.py gives the ASE calculator of any potential file, references.py the
reference results (EMT, DFT fitted to data by dft_reference.py, numbers), suite.py the
registry and one calculator's whole list.
"""

from optbench.properties.base import OK, UNSTABLE, PropertyError, PropertyResult
from optbench.properties.structures import build_structure, parse_structure_name
from optbench.properties.suite import FAILED, PROPERTIES, applies, check_settings, compute_properties

__all__ = ["OK", "UNSTABLE", "FAILED", "PropertyError", "PropertyResult", "PROPERTIES", "applies",
           "build_structure", "check_settings", "compute_properties", "parse_structure_name"]
