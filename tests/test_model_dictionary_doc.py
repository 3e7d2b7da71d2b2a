"""docs/model-dictionary.md: its editing example runs, its model table lists every model."""
import re

import visionfw
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "model-dictionary.md").read_text(encoding="utf-8")


def section(title):
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end >= 0 else None]


def test_editing_example_with_string_nodes_runs(capsys):
    code = re.search(r"```python\n(.*?)```", section("Editing a dictionary: name the nodes"),
                     re.S).group(1)
    scope = {}
    exec(compile(code, "model-dictionary.md", "exec"), scope)
    d, model = scope["d"], scope["model"]
    assert d["convo"] == [("lr", "feat"), ("act", "body"), ("sum", "up")]
    assert model.compute_output_shape((1, 8, 8, 3)) == (1, 16, 16, 3)
    assert "merge[0]" in capsys.readouterr().out


def test_model_table_lists_every_registered_model():
    table = section("Registered models")
    listed = re.findall(r"^\| `([^`]+)` \|", table, re.M)
    assert sorted(listed) == visionfw.model_names()
