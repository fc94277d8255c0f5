"""The user's view: TensorBoard event files and the plot command."""

import glob
import os
import subprocess
import sys

import pytest

from experiments import plot
from experiments import train
from tests.test_launcher import tiny_config


def read_scalars(path):
  """(step, tag, value) from a TFRecord file of Event protos."""
  import struct  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  scalars = []
  with open(path, 'rb') as f:
    while header := f.read(12):
      length, = struct.unpack('<Q', header[:8])
      event = event_pb2.Event.FromString(f.read(length))
      f.read(4)  # The payload's CRC.
      for value in event.summary.value:
        scalars.append((event.step, value.tag, value.simple_value))
  return scalars


def test_tensorboard_events_and_plot(tmp_path):
  for algorithm in ('fedavg', 'fedmchain'):
    train.train_and_evaluate(tiny_config(algorithm=algorithm),
                             str(tmp_path / algorithm))
  events = glob.glob(str(tmp_path / 'fedavg' / 'tensorboard' / 'events.*'))
  assert len(events) == 1
  steps = [step for step, tag, _ in read_scalars(events[0])
           if tag == 'eval/accuracy/weak']
  assert steps == [1, 2]
  out = tmp_path / 'runs.png'
  plot.main(['--workdir', str(tmp_path / 'fedavg'), str(tmp_path / 'fedmchain'),
             '--out', str(out)])
  with open(out, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert os.path.getsize(out) > 10_000


def test_plot_names_a_workdir_without_metrics(tmp_path):
  with pytest.raises(SystemExit, match='metrics.jsonl does not exist'):
    plot.main(['--workdir', str(tmp_path), '--out', str(tmp_path / 'x.png')])


def test_study_cell_and_report(tmp_path):
  from experiments import study
  results = {'synthetic': {(1.0, 0.3): {}}}
  for algorithm in ('fedavg', 'fedmchain'):
    _, runs = study.run_cell('synthetic', algorithm, 1.0, 0.3, [0, 1], 10,
                             str(tmp_path))
    assert [len(r) for r in runs] == [1, 1]  # One evaluation at round 10.
    results['synthetic'][(1.0, 0.3)][algorithm] = study.summarize_cell(
        runs, target=0.5)
  text = study.report(results, [0, 1], {'synthetic': 10})
  assert '### Dirichlet alpha 1.0, missing-modality rate 0.3' in text
  assert 'FedMChain beats FedAvg on final fused accuracy in' in text
  assert text.count('| fedmchain |') == 1


@pytest.mark.parametrize('datasets,algorithms,seeds,message', [
    (['nope'], ['fedavg'], ['0'], '--datasets=nope is invalid: allowed are'),
    (['synthetic'], ['fedavg', 'x'], ['0'],
     '--algorithms=fedavg,x is invalid: allowed are'),
    (['synthetic'], [], ['0'], '--algorithms= is invalid'),
    (['synthetic'], ['fedavg'], ['0', '-1'],
     '--seeds=0,-1 must be non-negative integers'),
    (['synthetic'], ['fedavg'], ['a'], '--seeds=a must be non-negative'),
])
def test_study_lists_are_checked_before_any_run(datasets, algorithms, seeds,
                                                message):
  from experiments import study
  with pytest.raises(study.app.UsageError, match='^' + message):
    study.check_lists(datasets, algorithms, seeds)
  assert study.check_lists(['synthetic'], ['fedavg'], ['0', '2']) == [0, 2]


@pytest.mark.parametrize('flag,message', [
    ('--lr=-1', '--lr must be a finite number > 0'),
    ('--epochs=0', '--epochs=0: 0 is not a positive integer'),
])
def test_centralized_refuses_bad_flags_in_one_line(flag, message):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  process = subprocess.run(
      [sys.executable, '-m', 'experiments.centralized',
       '--config=experiments/configs/default.py', flag],
      cwd=root, capture_output=True, text=True, timeout=120, check=False)
  assert process.returncode != 0
  assert message in process.stderr
  assert not process.stdout.strip()
