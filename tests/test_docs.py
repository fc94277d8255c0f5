"""The README's library example runs as written (with fewer rounds)."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_library_example_runs(capsys):
  with open(os.path.join(ROOT, 'README.md')) as f:
    readme = f.read()
  block = re.search(r'```python\n(.*?)```', readme, re.S).group(1)
  assert 'range(100)' in block
  exec(compile(block.replace('range(100)', 'range(2)'), 'README.md', 'exec'),
       {})
  assert 'eval/accuracy/weak' in capsys.readouterr().out

