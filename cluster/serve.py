"""The HTTP service on Ray Serve: a deployment per shard, and a front that fans out.

    client ──HTTP──> Ray Serve proxy ──> Front (FastAPI app: /ask, /search, /documents, /v1, /mcp, /)
                                           │  embeds the query once, reads the best passages
                                           ├──> shard-000 replicas (Shard: stats, candidates, writes)
                                           └──> shard-001 replicas …

Each shard deployment has ``replicas`` replicas sharing the shard's folder. When a replica
dies, Ray Serve starts another; a question that meets the dead one is answered 503 with
``Retry-After`` (``cluster.front.gather``), never from the other shards alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from ray import serve
from ray.serve.handle import DeploymentHandle

from cluster.front import ClusterPipeline, Pending
from cluster.layout import Layout, check_address
from cluster.shard import Shard
from service import errors
from service.errors import CiteqaError
from service.settings import Settings

APP = "citeqa"
REPLICA_CPUS = 0.25  # per shard replica; the work is short numpy/FAISS calls between network hops
FRONT_CPUS = 0.25
SHARD_METHODS = frozenset({"version", "catalogue", "stats", "candidates", "add", "remove"})


@serve.deployment(health_check_period_s=2, health_check_timeout_s=10, graceful_shutdown_timeout_s=5)
class ShardReplica:
    """One replica of one shard: ``Shard``'s methods, with the service's errors as values."""

    def __init__(self, folder: str, model_path: str | None, precision: str) -> None:
        self.shard = Shard(folder, model_path, precision)
        self.shard.current()  # ready only once the shard is loaded

    def call(self, method: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if method not in SHARD_METHODS:
            return ("error", "BadInputError", f"no shard method {method!r}")
        try:
            return ("ok", getattr(self.shard, method)(*args))
        except CiteqaError as exc:  # 404/409/422 travel as values: Ray would wrap them
            return ("error", type(exc).__name__, str(exc))

    def check_health(self) -> None:
        self.shard.current()


class _RayPending:
    def __init__(self, response: Any) -> None:
        self.response = response

    def result(self, timeout_s: float | None = None) -> Any:
        try:
            asyncio.get_running_loop()  # the app's startup and MCP's tools run on the event loop
        except RuntimeError:
            out = self.response.result(timeout_s=timeout_s)
        else:
            out = _in_thread(lambda: self.response.result(timeout_s=timeout_s))
        if out[0] == "error":
            cls = getattr(errors, out[1], CiteqaError)
            raise cls(out[2])
        return out[1]


class RayShard:
    """A ``ShardClient`` over a shard deployment's handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    def call(self, method: str, *args: Any) -> Pending:
        return _RayPending(self.handle.call.remote(method, args))


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` off the replica's event loop (a blocking wait on a handle is refused there)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


@serve.deployment(graceful_shutdown_timeout_s=5)
@serve.ingress()
class Front:
    """The HTTP app of ``service.api`` over a ``ClusterPipeline`` of shard handles."""

    def __init__(self, settings: Settings, *handles: DeploymentHandle) -> None:
        from service.api import pipeline_options

        self.settings = settings
        shards = [RayShard(h) for h in handles]
        self.pipeline = ClusterPipeline(shards, index_dir=settings.index_dir, **pipeline_options(settings))
        _in_thread(self.pipeline.warm_up)

    def __serve_build_asgi_app__(self) -> Any:
        from service.api import create_app

        return create_app(self.settings, pipeline=self.pipeline)


def application(settings: Settings, replicas: int = 1) -> Any:
    """The bound Serve application for the sharded collection at ``settings.index_dir``."""
    layout = Layout.load(settings.index_dir)
    model = str(settings.model_path) if settings.model_path else None
    shards = [
        cast(Any, ShardReplica)
        .options(name=name, num_replicas=replicas, ray_actor_options={"num_cpus": REPLICA_CPUS})
        .bind(str(folder.resolve()), model, settings.precision)
        for name, folder in zip(layout.names, layout.folders)
    ]
    return cast(Any, Front).options(ray_actor_options={"num_cpus": FRONT_CPUS}).bind(settings, *shards)


def start(
    settings: Settings, address: str, replicas: int = 1, host: str = "127.0.0.1", port: int = 8000
) -> None:
    """Connect to the cluster at ``address`` and deploy (returns once every replica is ready)."""
    import ray

    if not ray.is_initialized():
        check_address(address)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")
    serve.run(application(settings, replicas), name=APP, route_prefix="/", blocking=False)


def stop() -> None:
    """Take the application down and disconnect (the cluster itself keeps running)."""
    import ray

    try:
        serve.delete(APP)
        serve.shutdown()
    finally:
        ray.shutdown()


def run(settings: Settings, address: str, replicas: int, host: str, port: int) -> None:
    """``citeqa serve --ray``: deploy, then serve until interrupted."""
    start(settings, address, replicas, host, port)
    index = Path(settings.index_dir)
    print(
        f"serving {index} ({Layout.load(index).count} shards × {replicas} replicas) on http://{host}:{port}",
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop()
