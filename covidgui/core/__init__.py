"""Everything CovidGUI computes, with no Qt import, ever.

Its rooms by job, lowest first:

- ``io``: reading and writing files (X-ray images, DICOM, atomic writes, the log file);
- ``models``: a model on disk (its card, its companion files, the user's versions);
- ``data``: labelled image folders and the reference split;
- ``inference``: running a model (preprocessing, classifier, Grad-CAM, input gate, lung fields);
- ``output``: how a result is shown (words, flags, colours, overlays, the PDF report);
- ``analysis``: one path from a file to a complete result, for one image or a whole folder;
- ``scoring``: measuring a model (metrics, calibration, evaluation, by source);
- ``training``: training a classifier and the lung segmenter, and one training run as a job.

A room imports only rooms below it (pyproject.toml's import contracts, checked by the suite).
TensorFlow is imported only when a model is loaded or trained, so importing core stays cheap.
"""
