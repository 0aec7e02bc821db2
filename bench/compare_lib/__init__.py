"""bench/compare: run every scenario against every echo server, write RESULTS.md.

Modules, one concern each:

- config:   scenarios, servers, run settings, command-line parsing
- build:    cargo builds of ringport and bench/peers
- procs:    server processes (start, wait for `listening on`, stop) and load-tool runs
- measure:  /proc readers and the perf-stat window sampler
- runner:   one round of each scenario kind, and the scenario/server/round loop
- report:   medians, ratios to tokio, the Targets, RESULTS.md and results.json
- chart:    results.png (matplotlib, optional)
"""
