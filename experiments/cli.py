"""What the command-line entry points share: one-line errors for the
mistakes made on a command line, a quiet console and a workdir that a failed
start does not leave behind.

  app.run(main, flags_parser=cli.flags_parser('config'))
"""

import ast
import contextlib
import difflib
import glob
import logging as std_logging
import os
import re
import shutil
import sys

from absl import flags
from absl import logging

# Exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report.
INTERRUPTED = 130
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'configs')
_EXTRAS = {'tensorflow_datasets': 'data', 'array_record': 'data',
           'importlib_resources': 'data', 'imageio_ffmpeg': 'data',
           'matplotlib': 'plot'}


def quiet_platform_probe() -> None:
  """Silences JAX's INFO lines about accelerator platforms a CPU machine
  does not have ("Unable to initialize backend 'tpu'")."""
  std_logging.getLogger('jax._src.xla_bridge').setLevel(std_logging.WARNING)


def not_library_chatter(record) -> bool:
  """A log filter: orbax narrates every save and dumps its storage errors,
  and TFDS reports its builders' internals (config defaults, empty version
  folders); our own lines say what happened (checkpointing.Checkpointer,
  data.builders), so theirs show only at --verbosity=1 (debug), TFDS's
  errors always."""
  if logging.get_verbosity() >= logging.DEBUG:
    return True
  if '/orbax/' in record.pathname:
    return False
  return ('/tensorflow_datasets/' not in record.pathname or
          record.levelno >= std_logging.ERROR)


def missing_extra(error: ModuleNotFoundError) -> str | None:
  """'pip install ...' for a module an optional extra provides, or None."""
  extra = _EXTRAS.get((error.name or '').split('.')[0])
  return None if extra is None else f"pip install -e '.[{extra}]'"


def _override_error(argv, error) -> str:
  """One line for a `--config.a.b=...` naming a field the config lacks."""
  text = str(error.args[0] if error.args else error)
  suggestion = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  key = re.search(r"(\w+)\\?'", text)
  key = (suggestion.group(2) if suggestion else
         key.group(1) if key else text.strip())
  for arg in argv[1:]:
    name = arg.lstrip('-').split('=', 1)[0]
    parts = name.split('.')
    if len(parts) > 1 and key in parts[1:]:
      field = '.'.join(parts[1:])
      line = f'error: {arg.split("=", 1)[0]}: the config has no field {field}'
      if suggestion:
        fixed = parts[1:]
        fixed[fixed.index(key)] = suggestion.group(1)
        line += f'; did you mean {".".join(fixed)}?'
      return line
  return f'error: a config override names no field of the config ({key})'


def _config_file_error(name: str, path: str) -> str:
  configs = sorted(os.path.relpath(p) for p in
                   glob.glob(os.path.join(CONFIGS_DIR, '*.py'))
                   if not p.endswith('__init__.py'))
  close = difflib.get_close_matches(path, configs, n=1)
  hint = (f'did you mean {close[0]}?' if close else
          f'configs are {", ".join(configs)}')
  return f'error: --{name}={path}: no such file; {hint}'


# The fields `--help` shows with their defaults (all of them:
# experiments/configs/default.py).
MAIN_FIELDS = ('seed', 'algorithm', 'data.name', 'data.num_clients',
               'data.dirichlet_alpha', 'data.missing_modality_rate',
               'rounds.num_rounds', 'rounds.cohort_size', 'rounds.eval_every',
               'client.lr', 'client.num_local_steps',
               'client.steps_per_phase', 'client.batch_size',
               'server.optimizer', 'server.lr', 'fedmchain.rho',
               'fedmchain.tau', 'fedmchain.reg_lambda')
_HELP_FLAGS = ('-h', '-?', '--help', '--helpshort', '--helpfull')


def _config_files() -> list[tuple[str, str]]:
  """(path, its docstring's first line) of each config file."""
  files = []
  for path in sorted(glob.glob(os.path.join(CONFIGS_DIR, '*.py'))):
    if path.endswith('__init__.py'):
      continue
    with open(path) as f:
      doc = ast.get_docstring(ast.parse(f.read())) or ''
    first = ' '.join(doc.split('\n\n', 1)[0].split())
    files.append((os.path.relpath(path), first))
  return files


def help_text(full: bool = False, configs: bool = True) -> str:
  """The entry point's docstring and flags, and (`configs`) the config
  files and the main config fields with their defaults (and allowed
  names)."""
  # Imported here: the registry builds on the whole library.
  from experiments import registry  # pylint: disable=g-import-not-at-top
  from experiments.configs import default  # pylint: disable=g-import-not-at-top
  main = sys.modules['__main__']
  lines = [(main.__doc__ or '').strip(), '',
           flags.FLAGS.get_help() if full else
           flags.FLAGS.main_module_help()]
  if not configs:
    return '\n'.join(lines)
  lines += ['', 'Config files (--config=PATH; each docstring gives its '
            'command and '
           'expected result):']
  lines += [f'  {path}: {first}' for path, first in _config_files()]
  config = default.get_config()
  allowed = {'algorithm': registry.ALGORITHMS, 'data.name': registry.DATASETS,
             'server.optimizer': registry.OPTIMIZERS}
  lines += ['', 'Main config fields (--config.FIELD=VALUE; default.py '
            'defaults, every field in experiments/configs/default.py):']
  for field in MAIN_FIELDS:
    node = config
    for part in field.split('.'):
      node = node[part]
    choices = (f' (one of {", ".join(allowed[field])})' if field in allowed
               else '')
    lines.append(f'  {field} = {node!r}{choices}')
  return '\n'.join(lines)


def flags_parser(*config_flags: str):
  """An `app.run(flags_parser=...)` that ends a bad command line with one
  line on stderr and status 1: an unknown or malformed flag, a config
  override naming no field (with the closest field), a config file that
  does not exist (with the closest one). A config file that exists but
  fails to load keeps its traceback: the error is in that file. `--help`
  prints `help_text()` and exits 0."""

  def parse(argv):
    asked = [a.split('=', 1)[0] for a in argv[1:]
             if a.split('=', 1)[0] in _HELP_FLAGS]
    if asked:
      print(help_text(full='--helpfull' in asked,
                      configs=bool(config_flags)))
      sys.exit(0)
    try:
      rest = flags.FLAGS(argv)
    except flags.Error as e:
      sys.exit(f'error: {e} (see --help)')
    except (AttributeError, KeyError) as e:
      sys.exit(_override_error(argv, e))
    for name in config_flags:
      path = flags.FLAGS[name].config_filename
      if path and not os.path.exists(path):
        sys.exit(_config_file_error(name, path))
    return rest

  return parse


@contextlib.contextmanager
def removed_if_left_empty(workdir: str):
  """Removes `workdir` on the way out if this run created it and nothing
  was written there, or only its log before it failed: a start that failed
  (bad data, a missing extra) leaves nothing behind."""
  created = not os.path.exists(workdir)
  failed = True
  try:
    yield
    failed = False
  except SystemExit as e:
    failed = e.code not in (None, 0)
    raise
  finally:
    left = (set(os.listdir(workdir)) if created and os.path.isdir(workdir)
            else None)
    if left is not None and (not left or (failed and left == {'log.txt'})):
      shutil.rmtree(workdir, ignore_errors=True)
