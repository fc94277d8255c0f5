"""What a results document states about where it was made: the machine's
CPU and the commit of the code."""

import os
import platform
import subprocess


def cpu_model() -> str:
  """The host CPU's model name (Linux), else the platform's processor."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def commit() -> str:
  """The git commit of the code measured ('' outside a checkout); a
  '+' marks uncommitted changes to tracked files."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root,
                          capture_output=True, text=True, timeout=10)
    dirty = subprocess.run(['git', 'status', '--porcelain',
                            '--untracked-files=no'], cwd=root,
                           capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return ''
  if head.returncode:
    return ''
  return head.stdout.strip() + ('+' if dirty.stdout.strip() else '')
