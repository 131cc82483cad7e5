"""External MLIP codes: MLIP's `mlp` program (`mlp`: finding it, `mlp train` under a
process-group watchdog, `mlp check_errors`), reading its logs and error reports (`logs`),
and MLIP-4's Python module (`mlip4_module`: every call into `mlip_4` in one place).

Nothing here imports the embedded engine: these are the other codes.
"""
