"""docs/api.md's example runs as written (fewer rounds)."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_api_example_runs(capsys):
  with open(os.path.join(ROOT, 'docs', 'api.md')) as f:
    block = re.search(r'```python\n(.*?)```', f.read(), re.S).group(1)
  assert 'range(50)' in block
  exec(compile(block.replace('range(50)', 'range(10)'), 'api.md', 'exec'), {})
  assert 'eval/accuracy/weak' in capsys.readouterr().out
