"""docs/api.md's examples run as written (fewer rounds), in order."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_api_examples_run(capsys):
  with open(os.path.join(ROOT, 'docs', 'api.md')) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  assert 'range(50)' in blocks[0]
  assert any('clipped_mean' in block for block in blocks)
  namespace = {}
  for number, block in enumerate(blocks):
    block = block.replace('range(50)', 'range(10)').replace('range(20)',
                                                            'range(3)')
    exec(compile(block, f'api.md block {number}', 'exec'), namespace)
  out = capsys.readouterr().out
  assert 'eval/accuracy/weak' in out
  # The user's aggregator ran inside the jitted round and saw real updates.
  largest = float(re.search(r'largest client norm (\S+)', out).group(1))
  assert largest > 0
