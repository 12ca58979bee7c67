"""The emulator's app in-process (Starlette TestClient): repeated bodies, run-time controls, a dead engine."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tokenfleet.engine.app import build_app
from tokenfleet.engine.settings import EngineSettings

CHAT = "/v1/chat/completions"


def body(content: str, **extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture()
def instant():
    with TestClient(build_app(EngineSettings(models=("m",), instant=True, capability=0.9))) as client:
        yield client


def test_a_repeated_body_gets_the_same_answer_under_a_new_id(instant):
    first = instant.post(CHAT, json=body("hi [tokens=5]")).json()
    second = instant.post(CHAT, json=body("hi [tokens=5]")).json()
    assert first["id"] != second["id"]
    assert first["choices"] == second["choices"] and first["usage"] == second["usage"]
    assert instant.get("/_emulator/stats").json()["requests"][CHAT] == {"m": 2}


def test_changing_the_capability_changes_the_confidence_of_the_same_request(instant):
    ask = body("hard [difficulty=0.8] [tokens=8]", logprobs=True)

    def mean() -> float:
        content = instant.post(CHAT, json=ask).json()["choices"][0]["logprobs"]["content"]
        return sum(t["logprob"] for t in content) / len(content)

    assert mean() > -0.3
    assert instant.post("/_emulator/config", json={"capability": 0.2}).json()["capability"] == 0.2
    assert mean() < -1.5


def test_errors_have_openai_shape(instant):
    resp = instant.post(CHAT, json={"model": "m"})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "messages" and resp.json()["error"]["code"] == 400
    resp = instant.post(CHAT, json=body("x", stream_options={"include_usage": True}))
    assert resp.status_code == 400 and "stream" in resp.json()["error"]["message"]
    resp = instant.post(CHAT, content=b"[1, 2]", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "object" in resp.json()["error"]["message"]


def test_a_crashed_engine_loop_fails_requests_instead_of_hanging():
    settings = EngineSettings(models=("m",), gpu_type="nvidia-h100", time_scale=100.0)
    with TestClient(build_app(settings)) as client:
        assert client.post(CHAT, json=body("ok [tokens=3]")).json()["usage"]["completion_tokens"] == 3
        engine = client.app.state.emulator.engine

        def broken_step():
            raise RuntimeError("simulated bug")

        engine.sim.step = broken_step
        resp = client.post(CHAT, json=body("now [tokens=3]"))
        assert resp.status_code == 500 and "simulated bug" in resp.json()["error"]["message"]
        assert client.get("/health").status_code == 503
        assert client.post(CHAT, json=body("later [tokens=3]")).status_code == 503
