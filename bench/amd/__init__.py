"""AMD bench: a synthetic telephone corpus (`corpus`) and the accuracy/latency report (`python -m bench.amd`)."""
