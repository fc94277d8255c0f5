r"""Mutation testing of the round's core with cosmic-ray; writes docs/MUTATION.md.

  pip install -e '.[test,mutation]'
  python -m tests.mutation.run [--targets=uploads,compression] \
      [--work_dir=/tmp/fedmchain_mutation] [--retest_survivors | \
      --retest_unexplained] [--report_only]

Each target (`tests/mutation/targets.py`) is one module: cosmic-ray plants
one mutant at a time in a copy of the tracked tree under `work_dir/tree`
(the checkout is never touched) and runs the target's tests against it; a
mutant survives when they all pass. Sessions are sqlite files in
`work_dir/sessions`, one per target and module text: a stopped run goes on
where it stopped, and a changed module starts a fresh session.
`--retest_survivors` runs the survivors again (after new tests);
`--retest_unexplained` only those without a recorded reason.
Not part of CI: a module takes from minutes to hours on 2 cores.

The report lists every survivor with the reason it stays
(`tests/mutation/survivors.py`: equivalent, or not worth a test) or
'not yet killed'. Targets not in this run keep their earlier rows.
"""

import argparse
import ast
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time

from experiments import host
from tests.mutation import survivors as survivors_lib
from tests.mutation import targets as targets_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
REPORT = os.path.join(ROOT, 'docs', 'MUTATION.md')


def _copy_tree(work_dir: str) -> str:
  """The tracked files of the checkout, as they are now, in work_dir/tree."""
  tree = os.path.join(work_dir, 'tree')
  shutil.rmtree(tree, ignore_errors=True)
  files = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode().split('\0')
  for name in filter(None, files):
    if not os.path.exists(os.path.join(ROOT, name)):
      continue  # Deleted in the working tree, not yet committed.
    os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
    shutil.copy2(os.path.join(ROOT, name), os.path.join(tree, name))
  return tree


def line_ranges(path: str, functions) -> list[str]:
  """'start-end' line ranges of the named top-level functions and classes
  (decorators included); None: the whole file."""
  source = open(path).read()
  if functions is None:
    return [f'1-{len(source.splitlines())}']
  tree = ast.parse(source)
  ranges = {}
  for node in tree.body:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (
        node.name in functions):
      start = min([node.lineno] + [d.lineno for d in node.decorator_list])
      ranges[node.name] = f'{start}-{node.end_lineno}'
  missing = set(functions) - set(ranges)
  if missing:
    raise SystemExit(f'error: {path} has no top-level {sorted(missing)}; '
                     f'fix tests/mutation/targets.py')
  return list(ranges.values())


def _toml_list(values) -> str:
  return '[' + ', '.join(repr(v).replace("'", '"') for v in values) + ']'


def _config(target, tree: str, timeout: float) -> str:
  tests = ' '.join(target.tests)
  ranges = line_ranges(os.path.join(tree, target.module), target.functions)
  return '\n'.join([
      '[cosmic-ray]',
      f'module-path = "{target.module}"',
      f'timeout = {timeout:.0f}',
      'excluded-modules = []',
      f'test-command = "{sys.executable} -m pytest -x -q -p no:cacheprovider '
      f'{tests}"',
      '[cosmic-ray.distributor]',
      'name = "local"',
      '[cosmic-ray.filters.operators-filter]',
      'exclude-operators = ' + _toml_list(targets_lib.EXCLUDED_OPERATORS),
      '[cosmic-ray.filters.line-filter]',
      f'lines = {{"{target.module}" = '
      f'{_toml_list(ranges)}}}',
      ''])


def _run(command, cwd, env, check=True):
  return subprocess.run(command, cwd=cwd, env=env, check=check, text=True,
                        capture_output=True)


def _environment(work_dir: str, tree: str) -> dict:
  """The copy's package ahead of the installed one; one XLA cache for every
  mutant's test run."""
  env = dict(os.environ)
  env['PYTHONPATH'] = tree
  env['JAX_COMPILATION_CACHE_DIR'] = os.path.join(work_dir, 'xla-cache')
  return env


def session_path(work_dir: str, name: str, module_path: str) -> str:
  digest = hashlib.sha1(open(module_path, 'rb').read()).hexdigest()[:10]
  return os.path.join(work_dir, 'sessions', f'{name}-{digest}.sqlite')


def _baseline(target, tree, env) -> float:
  """Seconds the target's tests take unmutated; exits if they fail."""
  tic = time.perf_counter()
  result = _run([sys.executable, '-m', 'pytest', '-x', '-q', '-p',
                 'no:cacheprovider', *target.tests], tree, env, check=False)
  if result.returncode != 0:
    raise SystemExit(f'error: the tests of {target.module} fail unmutated:\n'
                     f'{(result.stdout + result.stderr)[-3000:]}')
  return time.perf_counter() - tic


def _retest_survivors(session: str, unexplained_only: bool = False) -> int:
  """Marks the session's survivors (or those without a recorded reason) to
  run again; returns how many."""
  with sqlite3.connect(session) as db:
    rows = db.execute(
        'SELECT r.job_id, m.module_path, m.definition_name, '
        'm.operator_name, r.diff FROM work_results r JOIN mutation_specs m '
        "ON m.job_id = r.job_id WHERE r.test_outcome = 'SURVIVED'"
    ).fetchall()
    again = [job for job, module, function, operator, diff in rows
             if not unexplained_only or survivors_lib.reason(
                 module, function or '', operator, *_changed_lines(diff))
             is None]
    db.executemany('DELETE FROM work_results WHERE job_id = ?',
                   [(job,) for job in again])
  return len(again)


def run_target(name, work_dir, tree, retest):
  """Initializes (or resumes) the target's session and runs what is left."""
  target = targets_lib.TARGETS[name]
  env = _environment(work_dir, tree)
  session = session_path(work_dir, name, os.path.join(tree, target.module))
  os.makedirs(os.path.dirname(session), exist_ok=True)
  seconds = _baseline(target, tree, env)
  config = os.path.join(work_dir, f'{name}.toml')
  with open(config, 'w') as f:
    f.write(_config(target, tree, timeout=max(60.0, 3 * seconds + 30)))
  if not os.path.exists(session):
    _run(['cosmic-ray', 'init', config, session], tree, env)
    _run(['cr-filter-operators', session, config], tree, env)
    _run(['cr-filter-lines', session, '--config', config], tree, env)
  elif retest:
    print(f'{name}: {_retest_survivors(session, retest == "unexplained")} '
          'survivors to run again',
          flush=True)
  print(f'{name}: tests take {seconds:.0f} s unmutated; running the pending '
        f'mutants of {target.module}', flush=True)
  _run(['cosmic-ray', 'exec', config, session], tree, env)
  return session


def pending(session: str) -> int:
  """Mutants of the session not yet run."""
  with sqlite3.connect(session) as db:
    return db.execute('SELECT COUNT(*) FROM mutation_specs m LEFT JOIN '
                      'work_results r ON m.job_id = r.job_id WHERE '
                      'r.job_id IS NULL').fetchone()[0]


def read_session(session: str) -> list[dict]:
  """One dict per mutant run (filtered ones left out)."""
  query = ('SELECT m.module_path, m.operator_name, m.occurrence, '
           'm.start_pos_row, m.definition_name, r.worker_outcome, '
           'r.test_outcome, r.diff, r.output FROM mutation_specs m '
           'JOIN work_results r ON m.job_id = r.job_id')
  with sqlite3.connect(session) as db:
    rows = db.execute(query).fetchall()
  keys = ('module', 'operator', 'occurrence', 'line', 'function', 'worker',
          'outcome', 'diff', 'output')
  return [dict(zip(keys, row)) for row in rows if row[5] != 'SKIPPED']


def _changed_lines(diff: str) -> tuple[str, str]:
  """(the line before, the line after) of a one-line mutant's diff."""
  old = [l[1:].strip() for l in (diff or '').splitlines()
         if l.startswith('-') and not l.startswith('---')]
  new = [l[1:].strip() for l in (diff or '').splitlines()
         if l.startswith('+') and not l.startswith('+++')]
  return ' / '.join(old), ' / '.join(new)


def summarize(name: str, runs: list[dict], left: int = 0
              ) -> tuple[str, str]:
  """(the table row, the survivors section) of one target; `left`: its
  mutants not yet run."""
  killed = [r for r in runs if r['outcome'] == 'KILLED']
  timeouts = [r for r in killed if r['output'] == 'timeout']
  survived = [r for r in runs if r['outcome'] == 'SURVIVED']
  incompetent = [r for r in runs if r['outcome'] not in ('KILLED',
                                                         'SURVIVED')]
  lines, equivalent = [], 0
  for r in sorted(survived, key=lambda r: (r['line'], r['operator'])):
    old, new = _changed_lines(r['diff'])
    reason = survivors_lib.reason(r['module'], r['function'] or '',
                                  r['operator'], old, new)
    if reason is not None and reason.startswith('equivalent'):
      equivalent += 1
    lines.append(f'- line {r["line"]} in `{r["function"]}`, '
                 f'{r["operator"].removeprefix("core/")}: `{old}` -> '
                 f'`{new}`: {reason or "**not yet killed**"}')
  scored = len(runs) - len(incompetent) - equivalent
  score = len(killed) / scored if scored else float('nan')
  module = targets_lib.TARGETS[name].module
  row = (f'| {name} | `{module}` | {len(runs)} | {left} | {len(killed)} '
         f'({len(timeouts)} by timeout) | {len(survived)} | {equivalent} | '
         f'{len(incompetent)} | {score:.1%} |')
  section = '\n'.join([f'### {name} (`{module}`)', ''] + (
      lines or ['No survivors.']) + [''])
  return row, section


def _previous(text: str, kind: str, name: str) -> str | None:
  match = re.search(rf'<!-- {kind} {name} -->\n(.*?)<!-- end -->', text,
                    re.S)
  return match.group(1) if match else None


def _machine() -> str:
  return (f'{host.cpu_model()}, {os.cpu_count()} CPUs, Python '
          f'{platform.python_version()}')


def write_report(results: dict, command: str) -> None:
  """docs/MUTATION.md: this run's targets, earlier rows for the others."""
  previous = open(REPORT).read() if os.path.exists(REPORT) else ''
  rows, sections, missing = [], [], []
  for name in targets_lib.TARGETS:
    if name in results:
      row, section = summarize(name, *results[name])
    else:
      row, section = (_previous(previous, 'row', name),
                      _previous(previous, 'survivors', name))
      if row is None:
        missing.append(name)
        continue
      row, section = row.rstrip('\n'), section.rstrip('\n')
    rows.append(f'<!-- row {name} -->\n{row}\n<!-- end -->')
    sections.append(f'<!-- survivors {name} -->\n{section}\n<!-- end -->')
  commit = _run(['git', 'rev-parse', '--short', 'HEAD'], ROOT, None).stdout
  with open(REPORT, 'w') as f:
    f.write(_HEADER.format(
        command=command, commit=commit.strip(), machine=_machine(),
        version=importlib.metadata.version('cosmic-ray')))
    f.write('\n'.join(rows) + '\n\n')
    if missing:
      f.write(f'Targets not run yet: {", ".join(missing)}.\n\n')
    f.write('## Survivors\n\n' + '\n'.join(sections) + '\n')


_HEADER = """# Mutation testing of the round's core

Generated by `{command}` (`tests/mutation/run.py`) at commit {commit} on
{machine}, with cosmic-ray {version}. Rows of targets not in that run were
kept from the run before; `git log docs/MUTATION.md` tells when.

Each mutant is one single-token change to one module (the operators are
listed in `tests/mutation/targets.py`), judged by that module's tests. A
mutant is killed when a test fails or times out. Score = killed / (mutants
run - equivalent - incompetent); an incompetent mutant crashes the test
runner itself. A target with mutants not yet run resumes from its session. Survivors are listed below with the reason each one
stays (`tests/mutation/survivors.py`).

| target | module | mutants run | not yet run | killed | survived | equivalent | incompetent | score |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
"""


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--targets', default='all',
                      help=f'comma-separated, of {list(targets_lib.TARGETS)}')
  parser.add_argument('--work_dir', default='/tmp/fedmchain_mutation')
  parser.add_argument('--retest_survivors', action='store_true')
  parser.add_argument('--retest_unexplained', action='store_true',
                      help='run again only the survivors without a reason')
  parser.add_argument('--report_only', action='store_true',
                      help='write the report from the sessions there are')
  args = parser.parse_args(argv)
  names = (list(targets_lib.TARGETS) if args.targets == 'all' else
           args.targets.split(','))
  unknown = [n for n in names if n not in targets_lib.TARGETS]
  if unknown:
    parser.error(f'--targets: unknown {unknown}; allowed: all or '
                 f'{",".join(targets_lib.TARGETS)}')
  os.makedirs(args.work_dir, exist_ok=True)
  tree = _copy_tree(args.work_dir)
  results = {}
  for name in names:
    target = targets_lib.TARGETS[name]
    if args.report_only:
      session = session_path(args.work_dir, name,
                             os.path.join(tree, target.module))
      if not os.path.exists(session):
        continue
    else:
      retest = ('unexplained' if args.retest_unexplained else
                args.retest_survivors)
      session = run_target(name, args.work_dir, tree, retest)
    results[name] = (read_session(session), pending(session))
    print(summarize(name, *results[name])[0], flush=True)
  write_report(results, 'python -m tests.mutation.run ' + ' '.join(
      sys.argv[1:] if argv is None else argv))


if __name__ == '__main__':
  main()
