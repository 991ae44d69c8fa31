"""How far a DICOM copy of a real X-ray moves the prediction, for each DICOM variant.

Writes every variant the tests use (MONOCHROME1/2, 8/12/16-bit, rescale, window, RLE, JPEG 2000
lossless, JPEG baseline) for N images of covid-xray/Val and prints, per variant, how many labels
matched the source file's and the largest probability difference; plus the median decode time.

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

from covidgui.core.images import load_xray  # noqa: E402
from covidgui.core.model import Classifier  # noqa: E402
from tests.conftest import COVID_VAL  # noqa: E402
from tests.dicom_factory import make_xray_dicom  # noqa: E402
from tests.test_dicom import VARIANTS  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    sources = [p for c in ("Covid", "Normal") for p in sorted((COVID_VAL / c).iterdir())[: n // 2]]
    classifier = Classifier.load()
    rows = {v: {"match": 0, "max_diff": 0.0, "decode_ms": []} for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            expected = classifier.predict_file(source)
            pixels = load_xray(source).pixels
            for variant, options in VARIANTS.items():
                path = make_xray_dicom(Path(tmp) / f"{variant}.dcm", pixels, **options)
                start = time.perf_counter()
                load_xray(path)
                rows[variant]["decode_ms"].append((time.perf_counter() - start) * 1000)
                got = classifier.predict_file(path)
                rows[variant]["match"] += got.label == expected.label
                diff = max(abs(got.probabilities[k] - p) for k, p in expected.probabilities.items())
                rows[variant]["max_diff"] = max(rows[variant]["max_diff"], diff)
    print(f"{len(sources)} images from {COVID_VAL}; model {classifier.card.name} v{classifier.card.version}")
    print(f"{'variant':32} {'same label':>10} {'max |dp|':>9} {'decode ms (median)':>19}")
    for variant, r in rows.items():
        print(f"{variant:32} {r['match']:>4}/{len(sources):<5} {r['max_diff']:>9.4f} "
              f"{statistics.median(r['decode_ms']):>19.1f}")


if __name__ == "__main__":
    main()
