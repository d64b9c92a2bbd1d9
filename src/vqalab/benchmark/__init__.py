"""What the benchmarks in ``bench/`` share, so that a benchmark script holds only what it measures.

``common`` (settings composed from conf/ as `dvc exp run` composes them, results written with when
and where they were measured), ``experiments`` (a CPU benchmark as a named sweep of DVC experiments:
queued, run by DVC's queue, read back from ``dvc exp show``), ``timing`` (how a GPU step is timed:
warm-up excluded, variants interleaved, median over rounds) and ``loopstep`` (synthetic data of the
pipeline's own types, and the training loop's own step), so that what a benchmark measures is what
a run of the pipeline does.
"""
