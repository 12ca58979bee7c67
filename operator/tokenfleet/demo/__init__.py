"""``tokenfleet demo``: the whole product on one machine, no cluster and no GPU (see docs/quickstart.md).

    localkube (API emulator) <- operator (real, subprocess) -> Deployments, Services, ConfigMaps
    kubelet (this package) runs each Deployment's replicas as local processes (engine emulators,
    cache, router) behind a proxy per Service; Prometheus scrapes them; traffic replays a trace.

Modules: ``pods`` (pure: Deployment -> local process), ``proxy`` (Service proxies), ``kubelet``,
``processes`` (process groups), ``prometheus``, ``workload`` (pure: trace + prompts -> requests),
``traffic`` (sends them with the openai client), ``results`` (pure: what the run measured),
``charts`` and ``report`` (HTML with inline SVG), ``run`` (orchestration).
"""
