"""docs/api.md's notebook example runs as written (on a small generated sample) and gives the route's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
@pytest.mark.root
def test_the_api_example_runs_and_matches_the_command_line(tmp_path, config):
    pytest.importorskip("ROOT")
    from lib.generator import SampleRequest, WriteOptions, generate_sample
    from lib.route import run
    from tests.helpers_requests import make_request

    request = SampleRequest(2018, seed=11, n_data=150_000, n_mc=0, n_signal=0)
    stage1 = generate_sample(tmp_path / "stage1", request, WriteOptions(files_per_dataset=1)).parent
    example = _python_blocks(API_DOC.read_text())[0].replace('"data/samples/stage1"', repr(str(stage1)))
    namespace: dict[str, object] = {}
    exec(compile(example, str(API_DOC), "exec"), namespace)  # noqa: S102 - the documentation's own example
    factors = namespace["factors"].values()  # type: ignore[attr-defined]

    (summary,) = run(make_request(binned=True, input_path=stage1, output_path=tmp_path / "cli", plot_formats=(), workers=2), config)
    assert factors == summary.factors.values()
