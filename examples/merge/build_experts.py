"""Build the tiny local "experts" the example recipe tiny-moe.yml names: three Llama-architecture models
with the demo tokenizer, each from its own seed (so their MLPs differ), in models/ beside this file.

    python examples/merge/build_experts.py     # make merge RECIPE=examples/merge/tiny-moe.yml runs it
"""

from __future__ import annotations

import sys
from pathlib import Path

from evalsuite.demo import build_tiny_model

EXPERTS = {"tiny-science": 11, "tiny-stories": 12, "tiny-math": 13}  # model name -> weight seed


def main(root: Path) -> None:
    for name, seed in EXPERTS.items():
        build_tiny_model(root / name, arch="llama", seed=seed)
        print(f"built {root / name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "models")
