# The two commands of the README. Each sets up what it needs first (idempotent).
.PHONY: demo test crds

demo:  ## set up, then run the whole product locally (no cluster, no GPU)
	scripts/bootstrap.sh
	.venv/bin/tokenfleet demo

test:  ## set up with test tools, then run every test
	scripts/bootstrap.sh --test
	PATH="$(CURDIR)/.tools/bin:$$PATH" .venv/bin/python -m pytest -q

crds:  ## regenerate crds/ from the API models
	.venv/bin/tokenfleet crds
