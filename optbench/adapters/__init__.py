"""Adapters to potential implementations: the ctypes binding of the embedded engine (capi)."""
