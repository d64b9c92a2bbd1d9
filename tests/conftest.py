import os

# Nothing in the tests may reach a model hub (and a missing hub id would retry for ~26 s).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
