"""Session settings: one persistent XLA compilation cache for a test run.

Many tests compile the same round more than once (a launcher run and its
resumed rerun, a sweep member and the single run it must equal, a workload
in a subprocess and in-process). A compilation cache shared by the run's
processes (xdist workers and the subprocesses the tests start inherit its
environment variable) compiles each program once; every test still runs
the executable it checks. The cache is a fresh directory, removed at the end,
unless JAX_COMPILATION_CACHE_DIR is already set (then that one is used and
kept).
"""

import os
import shutil
import tempfile

import jax

_VARIABLE = 'JAX_COMPILATION_CACHE_DIR'
_owned = []  # The directory this process made (and removes), if any.


def pytest_configure(config):
  del config
  if not os.environ.get(_VARIABLE):
    # The first process to get here (xdist's controller, or the only one)
    # makes the directory; workers inherit the variable.
    _owned.append(tempfile.mkdtemp(prefix='fmc-xla-cache-'))
    os.environ[_VARIABLE] = _owned[0]
  jax.config.update('jax_compilation_cache_dir', os.environ[_VARIABLE])


def pytest_unconfigure(config):
  del config
  while _owned:
    shutil.rmtree(_owned.pop(), ignore_errors=True)
    os.environ.pop(_VARIABLE, None)
