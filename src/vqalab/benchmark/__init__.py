"""What the benchmarks in ``bench/`` share, so that a benchmark script holds only what it measures.

``timing`` (how a step is timed: warm-up excluded, variants interleaved, median over rounds),
``loopstep`` (synthetic data of the pipeline's own types, and the training loop's own step),
``strategies`` (a strategy: a file of parameter overrides, shared by every benchmark that runs it)
and ``runs`` (the pipeline's steps - ``vqalab.pipeline`` - with their outputs made once per value of
what they depend on), so that what a benchmark measures is what a run of the pipeline does.
"""
