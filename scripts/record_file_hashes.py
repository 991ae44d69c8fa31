"""Record in a locked-split model's card which files it was trained and calibrated on, by content
(``training.file_hashes``: {"train": [...], "calibration": [...]}, the sorted short sha256 of each
file, covidgui.core.data.dataset.short_file_hashes), so that ``covidgui evaluate`` and the
Training tab can report those files apart from files the model never saw.

    python scripts/record_file_hashes.py [--model models/covid_classifier.keras] [--data ../shared/data]

The parts are rebuilt from the sources the card's ``training.train_sources`` names (a source added
to covidgui.core.scoring.sources later does not change them) and checked against the card's split
manifest hashes before anything is written. A training run (covidgui.core.training.run) records
the same key itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covidgui.core.data.dataset import manifest_hash, short_file_hashes  # noqa: E402
from covidgui.core.io.atomic import write_atomic  # noqa: E402
from covidgui.core.models.model_files import bundled_model_path  # noqa: E402
from covidgui.core.models.modelcard import FILE_HASHES_KEY, card_path, read_card  # noqa: E402
from covidgui.core.scoring.sources import find_sources, locked_split  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    model = args.model or bundled_model_path()
    card = read_card(model)
    names = sorted(card.training.get("train_sources") or [])
    if not names:
        raise SystemExit("The card names no training sources (training.train_sources).")
    split = locked_split(find_sources(args.data, names=names, classes=list(card.classes)), list(card.classes))
    hashes = {}
    for part in ("train", "calibration"):
        files = getattr(split, part)
        expected = card.training["split"][part]["sha256"]
        if manifest_hash(files) != expected:
            raise SystemExit(f"The {part} part found below {args.data} is not the one the card records.")
        hashes[part] = short_file_hashes(files)
        print(f"{part}: {len(files)} files, manifest matches the card")
    card.training[FILE_HASHES_KEY] = hashes
    write_atomic(card_path(model), card.to_json())  # the card records the other files' digests, not its own
    print(f"wrote training.{FILE_HASHES_KEY} into {card_path(model).name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
