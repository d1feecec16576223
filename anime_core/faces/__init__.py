"""Portrait mode: face detection, alignment, stylisation per face, pasting back, and tracking in videos.

:mod:`.portrait` is the pipeline (``anime run --faces``, ``anime_core.load(..., faces=True)``);
:mod:`.detect` the RetinaFace detector (a registered :class:`~anime_core.specs.DetectorSpec`);
:mod:`.align` and :mod:`.paste` the transforms and the mask; :mod:`.track` the video face tracks.
Modules import torch and numpy: import them where faces are used, not at ``anime --help``.
"""
