"""How far a DICOM copy of a real X-ray moves the prediction, for each DICOM variant.

Writes every variant the tests use (MONOCHROME1/2, 8/12/16-bit, rescale, window, RLE, JPEG 2000
lossless, JPEG baseline) for N images of covid-xray/Val and prints, per variant, how many labels
matched the source's and the largest probability difference, against the source decoded at full
resolution (the DICOM's own effect) and against the source file as ``predict_file`` reads it (what a
user sees: JPEG sources are decoded at reduced scale there); plus the median decode time.

    python benchmarks/dicom_variants.py [N]     (default 10 images: 5 COVID, 5 normal)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.io.images import load_xray  # noqa: E402
from covidgui.core.inference.classifier import Classifier  # noqa: E402
from tests.conftest import COVID_VAL  # noqa: E402
from tests.dicom_factory import make_xray_dicom  # noqa: E402
from tests.test_dicom import VARIANTS  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    sources = [p for c in ("Covid", "Normal") for p in sorted((COVID_VAL / c).iterdir())[: n // 2]]
    classifier = Classifier.load()
    rows = {v: {"match": 0, "max_diff": 0.0, "match_file": 0, "max_diff_file": 0.0, "decode_ms": []}
            for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            pixels = load_xray(source).pixels
            expected = classifier.predict_pixels(pixels)
            as_file = classifier.predict_file(source)
            for variant, options in VARIANTS.items():
                path = make_xray_dicom(Path(tmp) / f"{variant}.dcm", pixels, **options)
                start = time.perf_counter()
                load_xray(path)
                rows[variant]["decode_ms"].append((time.perf_counter() - start) * 1000)
                got = classifier.predict_file(path)
                for suffix, ref in (("", expected), ("_file", as_file)):
                    rows[variant]["match" + suffix] += got.label == ref.label
                    diff = max(abs(got.probabilities[k] - p) for k, p in ref.probabilities.items())
                    rows[variant]["max_diff" + suffix] = max(rows[variant]["max_diff" + suffix], diff)
    print(f"{len(sources)} images from {COVID_VAL}; model {classifier.card.name} v{classifier.card.version}")
    print(f"{'':32} {'vs full-resolution source':>26} {'vs predict_file(source)':>26}")
    print(f"{'variant':32} {'same label':>12} {'max |dp|':>12} {'same label':>14} {'max |dp|':>10} "
          f"{'decode ms (median)':>19}")
    for variant, r in rows.items():
        print(f"{variant:32} {r['match']:>8}/{len(sources):<3} {r['max_diff']:>12.4f} "
              f"{r['match_file']:>10}/{len(sources):<3} {r['max_diff_file']:>10.4f} "
              f"{statistics.median(r['decode_ms']):>19.1f}")


if __name__ == "__main__":
    main()
