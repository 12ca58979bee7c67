"""``tokenfleet emulate-engine``: a vLLM-compatible OpenAI server with a continuous-batching model, no GPU."""

from __future__ import annotations

import argparse
import sys

from tokenfleet.engine.settings import EngineSettings
from tokenfleet.gpus import GPU_TYPES, WEIGHT_BYTES

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve vLLM's OpenAI API (/v1/chat/completions, /v1/completions, /v1/models, /health, /version, "
        "/metrics) from a simulated continuous-batching engine calibrated on published vLLM figures. "
        "Test controls: GET /_emulator/stats, POST /_emulator/reset, POST /_emulator/config. "
        "See docs/engine-emulator.md."
    )
    _server_flags(parser)
    _model_flags(parser)
    _test_flags(parser)


def _server_flags(parser: argparse.ArgumentParser) -> None:
    srv = parser.add_argument_group("server")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    srv.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    srv.add_argument("--model", action="append", dest="models", metavar="NAME",
                     help="served model name, repeatable (vLLM --served-model-name); the first labels the "
                          "metrics (default: llama-8b)")
    srv.add_argument("--source", help="the model's weights as vLLM names them, shown as 'root' in /v1/models")
    srv.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help="uvicorn log level")


def _model_flags(parser: argparse.ArgumentParser) -> None:
    model = parser.add_argument_group("model and GPU (set the step-time model, tokenfleet/perf.py)")
    model.add_argument("--parameters-b", type=float, default=8.0, help="parameters in billions (default: 8)")
    model.add_argument("--weights", default="none", choices=sorted(WEIGHT_BYTES),
                       help="weight precision, as ModelTier quantization.weights (default: none = 16-bit)")
    model.add_argument("--kv-cache", default="auto", choices=("auto", "fp8"), help="KV-cache dtype (default: auto)")
    model.add_argument("--gpu-type", default="nvidia-l4",
                       help=f"GPU type: {', '.join(GPU_TYPES)} or another name with --gpu-memory-gib "
                            "(default: %(default)s)")
    model.add_argument("--gpu-count", type=int, default=1, help="GPUs per replica, tensor parallel (default: 1)")
    model.add_argument("--gpu-memory-gib", type=float, help="memory of one GPU in GiB (default: the GPU type's)")
    model.add_argument("--gpu-memory-utilization", type=float, default=0.9,
                       help="share of GPU memory the engine may use (default: 0.9)")
    model.add_argument("--max-num-seqs", type=int,
                       help="most sequences in the running batch (default: vLLM's, 1024 on >=70 GiB GPUs "
                            "other than A100, else 256)")
    model.add_argument("--max-num-batched-tokens", type=int,
                       help="token budget of one scheduler step, chunked prefill (default: vLLM's, 8192 on "
                            ">=70 GiB GPUs other than A100, else 2048)")
    model.add_argument("--max-model-len", type=int, default=8192,
                       help="longest prompt + output in tokens; longer requests get a 400 (default: 8192)")
    model.add_argument("--kv-capacity-tokens", type=float,
                       help="KV-cache size in tokens, overriding the one computed from GPU memory")
    model.add_argument("--no-enable-prefix-caching", dest="prefix_caching", action="store_false",
                       help="turn off automatic prefix caching (on by default, as in vLLM): prompts sharing "
                            "leading 16-token blocks with recent ones skip their prefill")
    model.add_argument("--capability", type=float,
                       help="answer quality in [0, 1]: prompts harder than this get low-confidence logprobs "
                            "(default: 0.35 + 0.3 x log10(parameters-b))")


def _test_flags(parser: argparse.ArgumentParser) -> None:
    test = parser.add_argument_group("testing and benchmarks")
    test.add_argument("--time-scale", type=float, default=1.0,
                      help="run the simulated engine this many times faster than real time (default: 1)")
    test.add_argument("--instant", action="store_true",
                      help="answer at once with no simulated timing (fastest backend, for proxy benchmarks)")
    test.add_argument("--startup-delay", type=float, default=0.0,
                      help="seconds during which /health and the API answer 503, like vLLM loading weights")
    test.add_argument("--fail-rate", type=float, default=0.0,
                      help="share of generation requests answered with a 500 (default: 0)")
    test.add_argument("--fail-seed", type=int, default=0, help="seed of the failure draw (default: 0)")
    test.add_argument("--legacy-metric-names", action="store_true",
                      help="export vllm:gpu_cache_usage_perc instead of vllm:kv_cache_usage_perc (older vLLM)")


def settings_from_args(args: argparse.Namespace) -> EngineSettings:
    """EngineSettings from parsed command-line arguments."""
    return EngineSettings(
        models=tuple(args.models or ("llama-8b",)), host=args.host, port=args.port, source=args.source,
        parameters_b=args.parameters_b, weights=args.weights, kv_cache=args.kv_cache, gpu_type=args.gpu_type,
        gpu_count=args.gpu_count, gpu_memory_gib=args.gpu_memory_gib,
        gpu_memory_utilization=args.gpu_memory_utilization, max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens, max_model_len=args.max_model_len,
        kv_capacity_tokens=args.kv_capacity_tokens, prefix_caching=args.prefix_caching,
        capability=args.capability, time_scale=args.time_scale,
        instant=args.instant, startup_delay=args.startup_delay, fail_rate=args.fail_rate,
        fail_seed=args.fail_seed, legacy_metric_names=args.legacy_metric_names, log_level=args.log_level,
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    problems = settings.validate()
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    from tokenfleet.engine.app import build_app

    uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, proxy_headers=False, server_header=False,
                timeout_graceful_shutdown=1)
    return 0
