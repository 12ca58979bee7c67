"""vLLM engine emulator: a continuous-batching simulator behind vLLM's OpenAI server API (no GPU)."""
