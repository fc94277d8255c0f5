"""The mutation run's configuration stays true to the code it names.

The run itself is not part of CI (BUILD.md); these checks are: every
target's module and functions exist, every test it names exists, and every
recorded reason for a survivor still points at a line in its module.
"""

import ast
import os
import sqlite3

import pytest

from tests.mutation import run
from tests.mutation import survivors
from tests.mutation import targets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('name', sorted(targets.TARGETS))
def test_each_target_names_a_module_functions_and_tests_that_exist(name):
  target = targets.TARGETS[name]
  ranges = run.line_ranges(os.path.join(ROOT, target.module),
                           target.functions)
  assert ranges
  for test in target.tests:
    path, _, function = test.partition('::')
    assert os.path.exists(os.path.join(ROOT, path)), test
    if function:
      tree = ast.parse(open(os.path.join(ROOT, path)).read())
      names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
      assert function in names, test


def test_every_recorded_reason_names_a_line_of_its_module():
  for (module, function, operator, old, new), why in (
      survivors.REASONS.items()):
    source = open(os.path.join(ROOT, module)).read()
    first = ' '.join(old.split(' / ')[0].split())
    assert first in ' '.join(source.split()), (module, old)
    assert old != new and operator
    assert why.startswith(('equivalent: ', 'not worth a test: ')), why
    assert function


def test_a_target_with_an_unknown_function_is_refused():
  with pytest.raises(SystemExit, match='has no top-level'):
    run.line_ranges(os.path.join(ROOT, 'fedmchain_jax/uploads.py'),
                    ('top_fraction', 'no_such_function'))


def test_the_summary_counts_equivalents_out_of_the_score():
  diff = '--- a\n+++ b\n-    x = y + 1\n+    x = y - 1\n'
  runs = [
      {'module': 'm.py', 'operator': 'core/AddNot', 'occurrence': 0,
       'line': 3, 'function': 'f', 'worker': 'NORMAL',
       'outcome': outcome, 'diff': diff, 'output': output}
      for outcome, output in (('KILLED', 'F'), ('KILLED', 'timeout'),
                              ('KILLED', 'F'), ('SURVIVED', ''))]
  row, section = run.summarize('uploads', runs, 5)
  # 3 killed (1 by timeout) of 4, none recorded as equivalent, 5 to run.
  assert '| 4 | 5 | 3 (1 by timeout) | 1 | 0 | 0 | 75.0% |' in row
  assert '`x = y + 1` -> `x = y - 1`: **not yet killed**' in section


def test_retesting_the_unexplained_leaves_the_explained_survivors(tmp_path):
  # A session of two survivors, one with a recorded reason, and a kill.
  (module, function, operator, old, new), _ = next(
      iter(survivors.REASONS.items()))
  diff = lambda a, b: f'--- a\n+++ b\n-{a}\n+{b}\n'
  session = str(tmp_path / 'session.sqlite')
  with sqlite3.connect(session) as db:
    db.execute('CREATE TABLE mutation_specs (job_id TEXT, module_path TEXT, '
               'definition_name TEXT, operator_name TEXT)')
    db.execute('CREATE TABLE work_results (job_id TEXT, test_outcome TEXT, '
               'diff TEXT)')
    db.executemany('INSERT INTO mutation_specs VALUES (?, ?, ?, ?)', [
        ('a', module, function, f'core/{operator}'),
        ('b', module, function, 'core/NumberReplacer'),
        ('c', module, function, 'core/NumberReplacer')])
    db.executemany('INSERT INTO work_results VALUES (?, ?, ?)', [
        ('a', 'SURVIVED', diff(old, new)),
        ('b', 'SURVIVED', diff('x = 1', 'x = 2')),
        ('c', 'KILLED', diff('y = 1', 'y = 2'))])
  assert run._retest_survivors(session, unexplained_only=True) == 1
  with sqlite3.connect(session) as db:
    left = db.execute('SELECT job_id FROM work_results').fetchall()
  assert sorted(left) == [('a',), ('c',)]
  assert run._retest_survivors(session) == 1
