"""The experiment core: one module per step of a run, each a function of the typed parameters.

``validate`` (every value checked first), ``download``, ``preprocess``, ``features`` (frozen encoders, once), ``blind`` (the question-only
baseline, once), ``train`` and ``evaluate``. The DVC stages (``stages/``) are thin command-line
wrappers over these functions; the CPU benchmarks (``bench/``) run the stages as DVC experiments and
the GPU ones time the training loop's own step, so what a benchmark measures is what the pipeline
runs. A stage imports only its own step, so its DVC dependencies are that step's modules alone.
"""
