"""Chaos harness: fault injection against real recserve processes on loopback.

`python -m chaos.run` runs the scenarios of docs/reliability.md and writes JSON results;
`make chaos` is the bounded suite. Building blocks:

- `chaos.dns`: a dnsmasq on a free port answering one name per service with every replica's
  loopback address (a headless Service in miniature);
- `chaos.cluster`: Redis, dnsmasq and N replicas of each service (127.0.0.2, 127.0.0.3, ...
  on one port per service), behind client-side round_robin;
- `chaos.load`: an open-loop load generator in its own processes recording every request;
- `chaos.oracle`: the offline pipeline's answer per model version, to catch wrong or mixed
  responses, and the check that every acknowledged write is in Redis;
- `chaos.scenarios`: the scenarios; `chaos.run`: the CLI.
"""
