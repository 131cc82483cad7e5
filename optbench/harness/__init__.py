"""The benchmark harness: data sets, objectives, optimizer runs and the `optbench` command line."""
