"""Regenerate every generated table of docs/validation.md in one command.

    python benchmarks/validation_page.py             (or: make validate)
    python benchmarks/validation_page.py NAME ...    (only these blocks, e.g. vllm-h100-runs)

The page's prose stays as written; each table between ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->`` is replaced by what the matching function below prints now, so the
figures on the page are always the ones the current code produces. Takes about a minute.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "validation.md"
sys.path.insert(0, str(ROOT))

from benchmarks import (  # noqa: E402
    batching_validation, capacity_check, leave_one_model_out, seed_stories, session_story,
    vllm_h100_replay,
)


def _script_output(name: str) -> str:
    """A check script's own markdown output, run as the page says to run it."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


BLOCKS: dict[str, Callable[[], str]] = {
    "anyscale": lambda: batching_validation.anyscale()[0],
    "kv-waste": lambda: batching_validation.vllm_waste()[0],
    "triton": lambda: batching_validation.triton()[0],
    "gateway": lambda: batching_validation.gateway_sweep()[0],
    "step-times-output": lambda: _script_output("default_profile_check.py"),
    "end-to-end-output": lambda: _script_output("end_to_end_check.py"),
    "held-out": lambda: _script_output("held_out_check.py"),
    "seed-awq": lambda: seed_stories.awq_speedup(),
    "seed-a100-l4": lambda: seed_stories.a100_to_l4(),
    "seed-routing": lambda: seed_stories.routing(),
    "sessions": session_story.page_block,
    "vllm-h100-runs": vllm_h100_replay.page_block,
    # fits ten folds (an hour on two cores; seconds from its cache when sim/ has not changed)
    "leave-one-model-out": leave_one_model_out.page_block,
    "capacity": capacity_check.page_block,  # after the folds it uses
}
# Needs the vLLM environment (`make vllm-env`) and ~3 minutes of a real engine; left as it is
# on the page where that environment is missing.
VLLM_BLOCK = "vllm-cpu"
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


def regenerate(text: str, blocks: dict[str, Callable[[], str]], stamp: bool = True) -> str:
    """``text`` with each named block replaced; ``stamp``: date the page's tables as today's
    (only when every table was regenerated)."""
    for name, make in blocks.items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(name)} -->\n)(?:.*?\n)?(<!-- end: {re.escape(name)} -->)",
            re.DOTALL,
        )
        if not pattern.search(text):
            raise SystemExit(f"{PAGE} has no '<!-- generated: {name} -->' block")
        print(f"regenerating {name} ...", file=sys.stderr, flush=True)
        body = make().replace("\\", "\\\\")
        text = pattern.sub(rf"\g<1>{body}\n\g<2>", text, count=1)
    if not stamp:
        return text
    return re.sub(r"(Tables regenerated on )\d{4}-\d{2}-\d{2}", rf"\g<1>{date.today()}", text)


def main() -> None:
    available = dict(BLOCKS)
    if VLLM_PYTHON.exists():
        available[VLLM_BLOCK] = lambda: _script_output("vllm_cpu_check.py")
    names = sys.argv[1:]  # none: every block
    unknown = [name for name in names if name not in available]
    if unknown:
        raise SystemExit(f"cannot regenerate {', '.join(unknown)}: the blocks are "
                         f"{', '.join([*BLOCKS, VLLM_BLOCK])} ({VLLM_BLOCK} needs "
                         f"{VLLM_PYTHON.relative_to(ROOT)})")
    if not names and VLLM_BLOCK not in available:
        print(f"no {VLLM_PYTHON.relative_to(ROOT)}: the {VLLM_BLOCK} table is left as it was",
              file=sys.stderr)
    blocks = {name: available[name] for name in names} if names else available
    PAGE.write_text(regenerate(PAGE.read_text(), blocks, stamp=not names))
    print(f"wrote {PAGE.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
