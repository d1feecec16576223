"""The runner below both front ends: files, folders, globs and videos through a pipeline, written safely.

Pipelines only compute (:mod:`anime_core.inference.pipeline`). The runner turns files, folders
and globs into input images and videos, gives every input a unique output name, batches images
of equal size, refuses what cannot be processed with a reason per file (never a lost or black
output), and writes what a run mode returns (:class:`~anime_core.inference.modes.ModeOutput`).
``anime run`` (:mod:`anime_core.cli.run`), the web app (:mod:`anime_core.ui.actions`) and
``anime eval`` call it, and :func:`anime_core.run` is the same runner as one Python call; it
imports nothing from either front end.

Modules, by job (each imports only those above it):

- :mod:`~anime_core.runner.limits`: the bounds of the options (light: ``anime run --help`` shows them).
- :mod:`~anime_core.runner.report`: ``Report``, what a run wrote, skipped, replaced, failed and noted;
  ``RunInterrupted``, what Ctrl-C leaves.
- :mod:`~anime_core.runner.options`: ``FileOptions``, the file-handling options.
- :mod:`~anime_core.runner.inputs`: files, folders and bounded globs -> ``InputFile`` s.
- :mod:`~anime_core.runner.naming`: one unique output name per input (``plan_outputs``).
- :mod:`~anime_core.runner.outputs`: atomic writes, side by side, a run mode's images.
- :mod:`~anime_core.runner.batches`: batches of one size, tiling, one batch through the model.
- :mod:`~anime_core.runner.eta`: estimated times of large images on a CPU.
- :mod:`~anime_core.runner.videos`: videos and animated images, frame by frame.
- :mod:`~anime_core.runner.prefetch`: decoding ahead and writing in threads, in serial order.
- :mod:`~anime_core.runner.sharding`: many processes under ``accelerate launch``.
- :mod:`~anime_core.runner.translate`: a whole run (``run_pipeline``, ``translate_files``).
- :mod:`~anime_core.runner.call`: ``anime_core.run(model, inputs, output, **options)``.
"""
