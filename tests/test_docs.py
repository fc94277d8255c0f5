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



def test_readme_study_rows_are_the_reports():
  """Every row of README's study table is a row of docs/RESULTS.md (the
  study writes it), so README cannot drift from the report."""
  with open(os.path.join(ROOT, 'README.md')) as f:
    readme = f.read()
  with open(os.path.join(ROOT, 'docs', 'RESULTS.md')) as f:
    report = f.read().splitlines()
  from experiments import study_report
  header = study_report.glance({}, {})[0]  # The table's header as the study writes.
  assert header in readme
  rows = readme.split(header, 1)[1].strip().splitlines()[1:]
  rows = [r for r in rows[:rows.index('')] if r] if '' in rows else rows
  assert rows and all(r.startswith('| ') for r in rows)
  for row in rows:
    assert row in report, row
