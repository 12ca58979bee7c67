"""State the emulator's routes share: settings, metrics, engine loop, call counters, run-time controls."""

from __future__ import annotations

import json
import random
import time
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass

from tokenfleet.engine import responses as fmt
from tokenfleet.engine.answers import Choice, build_choices
from tokenfleet.engine.metrics import EngineMetrics
from tokenfleet.engine.protocol import ApiError, Plan, parse_body, plan_chat, plan_completion
from tokenfleet.engine.runtime import EngineLoop
from tokenfleet.engine.settings import EngineSettings

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
RECENT_REQUESTS = 100  # request bodies kept for /_emulator/stats
PREPARED_ENTRIES = 1024  # validated requests kept by raw body (the answer is a function of it)


class Stats:
    """Calls counted for tests and benchmarks (``GET /_emulator/stats``)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.by_endpoint: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.total = 0
        self.in_flight = 0
        self.injected_failures = 0
        self.recent: deque = deque(maxlen=RECENT_REQUESTS)

    def record(self, endpoint: str, model: str, raw: bytes) -> None:
        self.total += 1
        self.by_endpoint[endpoint][model] += 1
        self.recent.append((endpoint, raw))

    def as_dict(self) -> dict:
        by_model: dict[str, int] = defaultdict(int)
        for models in self.by_endpoint.values():
            for model, count in models.items():
                by_model[model] += count
        recent = []
        for endpoint, raw in self.recent:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            recent.append({"endpoint": endpoint, "body": body})
        return {"total": self.total, "in_flight": self.in_flight, "injected_failures": self.injected_failures,
                "requests": {e: dict(m) for e, m in self.by_endpoint.items()}, "by_model": dict(by_model),
                "recent": recent}


@dataclass
class Prepared:
    """A validated request and its answer: everything but the id and the timestamps."""

    plan: Plan
    choices: list[Choice]
    body_tail: bytes | None = None  # the serialized response after "created" (non-streaming, built lazily)

    def response(self, rid: str, created: int) -> bytes:
        """The non-streaming response body."""
        if self.body_tail is None:
            full = fmt.full_response(self.plan, self.choices, "", 0)
            del full["id"], full["object"], full["created"]
            self.body_tail = fmt.dumps(full)[1:]
        kind = b"chat.completion" if self.plan.kind == "chat" else b"text_completion"
        return b'{"id":"%s","object":"%s","created":%d,%s' % (rid.encode(), kind, created, self.body_tail)


class Emulator:
    """Everything the routes share; built in the app's lifespan."""

    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self.metrics = EngineMetrics(settings.served_name, legacy_names=settings.legacy_metric_names)
        self.stats = Stats()
        self.engine = None if settings.instant else EngineLoop(settings, self.metrics)
        self.capability = settings.resolved_capability()
        self.fail_rate = settings.fail_rate
        self.healthy = True
        self.rng = random.Random(settings.fail_seed)
        self.ready_at = time.monotonic() + settings.startup_delay
        self.created = int(time.time())
        self._prepared: OrderedDict[tuple[str, bytes], Prepared] = OrderedDict()

    def check_serving(self) -> None:
        if time.monotonic() < self.ready_at:
            raise ApiError(503, "the engine is loading the model (--startup-delay)")
        if not self.healthy:
            raise ApiError(503, "the engine is unhealthy (set by /_emulator/config)")
        if self.engine is not None and self.engine.dead:
            raise ApiError(503, self.engine.dead)

    def maybe_fail(self) -> None:
        if self.fail_rate and self.rng.random() < self.fail_rate:
            self.stats.injected_failures += 1
            raise ApiError(500, "injected failure (--fail-rate)")

    def set_capability(self, capability: float) -> None:
        self.capability = capability
        self._prepared.clear()

    def accept(self, endpoint: str, raw: bytes) -> Prepared:
        """Count the call, then validate it and work out the answer (a repeated body is looked up)."""
        key = (endpoint, raw)
        prepared = self._prepared.get(key)
        if prepared is not None:
            self._prepared.move_to_end(key)
            self.stats.record(endpoint, prepared.plan.model, raw)
            self.maybe_fail()
            return prepared
        body = parse_body(raw)
        self.stats.record(endpoint, str(body.get("model")), raw)
        self.maybe_fail()
        plan = (plan_chat if endpoint == CHAT else plan_completion)(body, self.settings.max_model_len)
        if plan.model not in self.settings.models:
            raise ApiError(404, f"The model `{plan.model}` does not exist.", param="model")
        prepared = Prepared(plan, build_choices(plan, self.settings.served_name, self.capability))
        self._prepared[key] = prepared
        if len(self._prepared) > PREPARED_ENTRIES:
            self._prepared.popitem(last=False)
        return prepared
