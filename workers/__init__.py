"""Pure PyTorch/NumPy/PIL compute for xai-crowd studies.

Nothing in this package imports Django (nor ``apps``): the web process never
loads torch, and the Celery tasks (``apps/<app>/tasks.py``) import
:mod:`workers.pipeline` inside the task body. Everything here is importable and testable on a CPU laptop.

Map of the package:

- :mod:`workers.pipeline` - the contract for the Django side: ``PipelineConfig``,
  ``pipeline_steps``, ``run_step``, ``run_pipeline``, ``load_manifest``.
- :mod:`workers.data` - generated demo shapes (with masks), Imagenette, any
  ImageFolder tree; corrupt images skipped and reported.
- :mod:`workers.models` - ``build_model``, ``default_target_layer``, pre-processing.
- :mod:`workers.training` - training / fine-tuning with early stopping.
- :mod:`workers.pruning` - ``prune_to_cpr``, ``conv_cpr``, layer reports,
  schedules, checkpoints.
- :mod:`workers.attribution` - Grad-CAM (+ ++), gradients, IG, SmoothGrad,
  Guided Grad-CAM; ``ATTRIBUTION_METHODS``.
- :mod:`workers.render` - heat-maps, occlusion-maps, metadata-free PNGs.
- :mod:`workers.metrics` - Gini, RMA, RRA, deletion / ROAD curves.
- :mod:`workers.selection` - stimulus images correct under every variant.
"""
