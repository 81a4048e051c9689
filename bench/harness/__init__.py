"""cmbench harness: runs the experiments of docs/architecture.md §5 and records what it measured.

Modules, bottom-up:
  procfs      small readers for /proc files (no caching, missing process -> None)
  sampler     samples a server's whole process tree in a background thread
  stats       medians, ranges, spread, least-squares slope, histogram merging
  store       the run folder: atomic writes, runs.jsonl, resume bookkeeping
  plan        presets, experiments and their points, time estimates
  server      start / ready line / probe / stop of one server process
  loadgen     command lines for build/bin/loadgen and running it
  slowloris   the slow-client helper (also runnable as a script)
  points      runs one point (experiment x model x parameter x repetition)
  meta        machine and tool metadata for meta.json
  summary     per-point records -> summary rows (median, min, max, spread, flags)
  readings    generated sentences about this run's numbers for report.md
"""
