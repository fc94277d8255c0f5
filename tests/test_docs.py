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


def test_readme_study_numbers_are_the_studys():
  # README's table of the study quotes rows of docs/RESULTS.md (written by
  # experiments.study) verbatim, so no number in it is typed by hand.
  with open(os.path.join(ROOT, 'README.md')) as f:
    readme = f.read()
  with open(os.path.join(ROOT, 'docs', 'RESULTS.md')) as f:
    results = f.read()
  header = '| dataset | alpha | missing | fedavg | best baseline | fedmchain '
  assert readme.count(header) == 1
  table = readme[readme.index(header):].split('\n\n', 1)[0].splitlines()
  assert len(table) > 2
  for row in table:
    assert row in results, row
