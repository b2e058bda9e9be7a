"""Write every ``run:`` script of GitHub workflow files out as a bash file, for shellcheck.

actionlint (which does this itself) cannot be installed from PyPI on machines without access to
its GitHub releases; deploy/check.sh validates the workflow schema with check-jsonschema and
shellchecks the scripts this writes. ``${{ ... }}`` expressions become a placeholder word.

    python deploy/image/workflow_scripts.py OUTPUT_DIR WORKFLOW.yml...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def scripts(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, script) for each ``run:`` step, the expressions replaced."""
    found = []
    for job_name, job in workflow.get("jobs", {}).items():
        for index, step in enumerate(job.get("steps", [])):
            if "run" in step:
                text = _EXPRESSION.sub("GHA_EXPRESSION", step["run"])
                found.append((f"{job_name}-{index}", text))
    return found


def main(argv: list[str]) -> int:
    output_dir, *workflows = argv or [""]
    if not output_dir or not workflows:
        print(__doc__, file=sys.stderr)  # noqa: T201 - a CLI
        return 2
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    for path in map(Path, workflows):
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        for name, text in scripts(workflow):
            target = output / f"{path.stem}-{name}.sh"
            target.write_text(f"#!/usr/bin/env bash\n# {path}: {name}\n{text}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
