"""The user's view: TensorBoard event files and the plot command."""

import glob
import json
import os
import re
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


def test_study_tunes_on_validation_and_reports_on_test(tmp_path,
                                                       monkeypatch):
  from experiments import registry
  from experiments import study
  from experiments import study_report
  from experiments import study_runs
  splits = []
  build = registry.DATASETS['synthetic']
  monkeypatch.setitem(registry.DATASETS, 'synthetic', build._replace(
      load=lambda config: (splits.append(config.eval.split)
                           or build.load(config))))
  monkeypatch.setitem(registry.ALGORITHMS, 'fedmchain',
                      registry.ALGORITHMS['fedmchain']._replace(
                          grid=({'fedmchain.rho': (0.1, 0.3)},)))
  results = {'synthetic': {(1.0, 0.3): {}}}
  choices = {}
  for algorithm in ('fedavg', 'fedmchain'):
    chosen, accuracy, _ = study_runs.tune('synthetic', algorithm, 1.0, [0], 2,
                                     str(tmp_path))
    assert splits and set(splits) == {'validation'}  # Test never built.
    assert set(chosen) == set(registry.ALGORITHMS[algorithm].grid[0])
    choices[algorithm] = (chosen, accuracy)
    del splits[:]
    _, runs, _ = study_runs.run_cell('synthetic', algorithm, 1.0, 0.3, [0, 1], 2,
                                str(tmp_path), chosen=chosen)
    assert set(splits) == {'test'}
    assert [len(r) for r in runs] == [1, 1]  # One evaluation at round 2.
    assert runs[0][-1]['eval/examples'] == 2000  # The test split.
    del splits[:]
    results['synthetic'][(1.0, 0.3)][algorithm] = study_report.summarize_cell(
        runs, target=0.5)
  # A second call finds the finished sweeps and runs nothing.
  assert study_runs.tune('synthetic', 'fedavg', 1.0, [0], 2, str(tmp_path),
                    report_only=True)[0] == choices['fedavg'][0]
  assert not splits
  # Final runs of another choice are not the saved ones: run again.
  other = {'client.lr': 0.5 * choices['fedavg'][0]['client.lr']}
  assert study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.3, [0, 1], 2,
                        str(tmp_path), chosen=other,
                        report_only=True) is None
  text = study_report.report(results, [0, 1], {'synthetic': 2},
                      {('synthetic', 1.0): choices}, 12.0,
                      test_sizes={'synthetic': 2000})
  assert '### Dirichlet alpha 1.0, missing-modality rate 0.3' in text
  assert re.search('`fedmchain` in 1 settings: against FedAvg wins [01], '
                   'level [01], loses [01]; against the best tuned baseline',
                   text)
  # Its choice and its results (and the summary table's header).
  assert text.count('| fedmchain |') == 3
  assert '| synthetic | 1.0 | 0.3 | ' in text  # The summary table's row.
  assert f'| fedavg | client.lr={choices["fedavg"][0]["client.lr"]:g} ' in text
  assert 'Test split: 2000 examples' in text
  assert '![synthetic](RESULTS_synthetic.png)' in text
  # Another report's figures are its own, beside it.
  assert study._figures('docs/RESULTS_examples.md') == 'RESULTS_examples'
  assert '(RESULTS_examples_synthetic.png)' in study_report.report(
      results, [0, 1], {'synthetic': 2}, figures='RESULTS_examples')


def test_equal_bytes_runs_the_frugal_method_longer_and_reads_it_at_fedavgs_upload():
  from experiments import study_report
  from experiments import study_runs
  assert study_runs.equal_bytes_rounds(10, 1.0, 4.0) == 40
  assert study_runs.equal_bytes_rounds(10, 1.0, 100.0) == 10 * study_runs.MAX_ROUNDS_FACTOR
  assert study_runs.equal_bytes_rounds(10, 3.7, 4.0) is None  # Nearly as much.
  mib = 2**20
  # Every method downloads 0.1 MiB a round.
  records = lambda accuracies, per_round: [
      {'round': 10 * (i + 1), 'eval/accuracy': a,
       'comm/upload_bytes': per_round * 10 * (i + 1) * mib,
       'comm/download_bytes': 0.1 * 10 * (i + 1) * mib}
      for i, a in enumerate(accuracies)]
  cell = lambda runs: study_report.summarize_cell(runs, target=0.99)
  by_algorithm = {'fedavg': cell([records([0.5, 0.6], 0.2)] * 2),
                  'sparse': cell([records([0.3, 0.4], 0.05)] * 2)}
  asked = []

  def run(algorithm, rounds):  # 4 times the rounds, a quarter of the bytes.
    asked.append((algorithm, rounds))
    return [records([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95], 0.05),
            records([0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.7, 0.9], 0.05)], 3.0
  assert study_runs.equal_bytes(by_algorithm, 20, run) == 3.0
  assert asked == [('sparse', 80)]
  assert by_algorithm['sparse'][0]['equal_bytes'] == [0.95, 0.9]
  assert by_algorithm['sparse'][0]['equal_bytes_rounds'] == 80
  assert by_algorithm['fedavg'][0]['equal_bytes'] == [0.6, 0.6]
  # FedAvg's 20 rounds move 6 MiB up and down; the sparse method 0.15 MiB
  # a round: 40 rounds within it.
  assert by_algorithm['sparse'][0]['equal_traffic'] == [0.6, 0.6]
  assert by_algorithm['sparse'][0]['equal_traffic_rounds'] == 40
  assert by_algorithm['fedavg'][0]['equal_traffic'] == [0.6, 0.6]
  table = '\n'.join(study_report._setting_table(by_algorithm, [0, 1], 100))
  assert ("| fused at FedAvg's upload (rounds) | fused at FedAvg's traffic "
          '(rounds) |') in table
  # Standard deviation over the two seeds, n - 1 in the denominator.
  assert '| 0.925 ± 0.035 (80) | 0.600 ± 0.000 (40) |' in table


def test_equal_bytes_runs_go_on_from_the_settings_own_runs(tmp_path):
  from experiments import study_runs
  from tests.test_launcher import without_times
  root = str(tmp_path)
  _, base, _ = study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0], 10, root)
  _, longer, seconds = study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0],
                                      20, root, under='equal_bytes')
  workdir = os.path.join(root, 'synthetic', 'steps', 'alpha1.0',
                         'missing0.0', 'equal_bytes', 'fedavg')
  # Started from the 10-round runs' last checkpoint (copied in), not from
  # round 0, and to the same first 10 rounds.
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints')),
                key=int) == ['10', '20']
  assert without_times(longer[0][:1]) == without_times(base[0])
  assert [r['round'] for r in longer[0]] == [10, 20]
  with open(os.path.join(workdir, 'sweep.json')) as f:
    timing = json.load(f)['timing']
  assert timing['extends_s'] > 0
  assert seconds == pytest.approx(timing['compile_s'] + timing['sweep_s'] -
                                  timing['extends_s'])


def test_examples_budget_changes_the_chain_and_reads_joint_training_from_steps(
    tmp_path):
  from experiments import study_runs
  config = lambda algorithm, budget: study_runs.study_config(
      'synthetic', algorithm, 1.0, 0.0, 2, budget=budget).to_dict()
  chain, steps = config('fedmchain', 'examples'), config('fedmchain', 'steps')
  assert (chain['client']['steps_per_phase'] ==
          chain['client']['num_local_steps'] !=
          steps['client']['steps_per_phase'])
  for algorithm in ('fedavg', 'joint_ssca', 'joint_sparse_mean'):
    assert config(algorithm, 'examples') == config(algorithm, 'steps')
  root = str(tmp_path)
  _, runs, _ = study_runs.run_cell('synthetic', 'joint_ssca', 1.0, 0.0, [0], 2,
                              root)
  read = study_runs.run_cell('synthetic', 'joint_ssca', 1.0, 0.0, [0], 2, root,
                        budget='examples', report_only=True)
  assert read is not None and read[1] == runs
  assert study_runs.run_cell('synthetic', 'fedmchain', 1.0, 0.0, [0], 2, root,
                        budget='examples', report_only=True) is None


def test_diagnosis_section_states_changes_beyond_the_seed_spread():
  from experiments import diagnosis
  row = lambda fused, ratio: {'fused': fused, **{
      c: (ratio if c == 'norm_ratio' else None)
      for c in diagnosis.AGG_COLUMNS}}
  rows = {0.0: {'reference (fedmchain)': row([0.80, 0.82, 0.81], 4.0),
                'rho 0.3': row([0.90, 0.91, 0.90], 2.0),
                'rho 0.05': row([0.81, 0.80, 0.80], 5.0)}}
  text = '\n'.join(diagnosis.section(rows, [0, 1, 2], 'synthetic'))
  assert '| rho 0.3 | 0.903 ± 0.006 | — | — | — | — | — | 2.00 |' in text
  # Per seed +0.10, +0.09, +0.09: the 95% t interval (half-width 4.303 x
  # 0.00577 / sqrt 3 = 0.014) excludes 0; rho 0.05's -0.01, +0.02, +0.01
  # ... -0.007 on average does not.
  assert ('- missing 0.0: rho 0.3: +0.093 [+0.079, +0.108] wins (0.903 vs '
          '0.810).') in text
  assert 'rho 0.05:' not in text


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


@pytest.mark.parametrize('alphas,missing,message', [
    (['0'], ['0.0'], '--alphas=0 is invalid: numbers in (0, inf)'),
    (['x'], ['0.0'], '--alphas=x is invalid'),
    (['0.1'], ['1.0'], '--missing=1.0 is invalid: numbers in [0, 1)'),
])
def test_study_settings_are_checked_before_any_run(alphas, missing, message):
  from experiments import study
  with pytest.raises(study.app.UsageError, match='^' + re.escape(message)):
    study.check_lists(['synthetic'], ['fedavg'], ['0'], alphas, missing)


def test_tuning_steps_past_the_grid_edge_of_rates_only():
  from experiments import study_runs
  grid = {'client.lr': [0.05, 0.1, 0.2], 'fedmchain.rho': [0.05, 0.1, 0.3]}
  tried = {k: set(v) for k, v in grid.items()}
  # The largest lr and the smallest rho: lr goes on (x2), rho is bounded.
  assert study_runs._edge_steps(grid, tried, {'client.lr': 0.2,
                                         'fedmchain.rho': 0.05}) == {
                                             'client.lr': 0.4}
  assert study_runs._edge_steps(grid, tried, {'client.lr': 0.05,
                                         'fedmchain.rho': 0.1}) == {
                                             'client.lr': 0.025}
  assert study_runs._edge_steps(grid, tried, {'client.lr': 0.1,
                                         'fedmchain.rho': 0.3}) == {}
  tried['client.lr'].add(0.4)  # Tried past the edge, and 0.2 stayed best.
  assert study_runs._edge_steps(grid, tried, {'client.lr': 0.2}) == {}


def test_saved_sweeps_compare_only_the_sections_their_algorithm_reads():
  from experiments import study_record
  from experiments.configs import default
  config = json.loads(default.get_config().to_json())
  changed = json.loads(json.dumps(config))
  changed['fedmchain']['normalize'] = 'senders'
  assert study_record.read_by(config) == study_record.read_by(changed)  # FedAvg.
  config['algorithm'] = changed['algorithm'] = 'fedmchain'
  assert study_record.read_by(config) != study_record.read_by(changed)
  changed['fedmchain']['normalize'] = config['fedmchain']['normalize']
  changed['ogm']['alpha'] = 2.0
  assert study_record.read_by(config) == study_record.read_by(changed)


def test_plot_without_matplotlib_names_the_install(monkeypatch, tmp_path):
  import sys
  from experiments import plot
  monkeypatch.setitem(sys.modules, 'matplotlib', None)
  with pytest.raises(SystemExit, match=r"^error: plotting needs matplotlib, "
                     r"which is not installed: pip install -e '\.\[plot\]'$"):
    plot.plot([('a', [{'round': 1, 'eval/accuracy': 0.5,
                       'comm/upload_bytes': 1.0}])], str(tmp_path / 'x.png'))


def test_plot_labels_sweep_members_by_settings_and_groups_seeds(tmp_path):
  from experiments import plot
  for i, (lr, seed) in enumerate([(0.02, 0), (0.02, 1), (0.1, 0)]):
    member = tmp_path / f'member_{i}'
    member.mkdir()
    (member / 'settings.json').write_text(
        json.dumps({'client.lr': lr, 'seed': seed}))
    (member / 'metrics.jsonl').write_text(''.join(
        json.dumps({'round': r, 'eval/accuracy': 0.5 + 0.1 * r + seed,
                    'eval/accuracy/a': 0.4, 'comm/upload_bytes': r * 2**20})
        + '\n' for r in (1, 2)))
  runs = [plot.load_run(str(tmp_path / f'member_{i}')) for i in range(3)]
  assert [label for label, _ in runs] == [
      'client.lr=0.02, seed 0', 'client.lr=0.02, seed 1',
      'client.lr=0.1, seed 0']
  groups = plot.group_seeds(runs)
  assert [(label, len(m)) for label, m in groups] == [
      ('client.lr=0.02 (2 seeds)', 2), ('client.lr=0.1, seed 0', 1)]
  # A sweep's workdir stands for its members, in member order.
  for i in range(10, 12):  # member_10 sorts after member_2.
    (tmp_path / f'member_{i}').mkdir()
    for name in ('settings.json', 'metrics.jsonl'):
      (tmp_path / f'member_{i}' / name).write_bytes(
          (tmp_path / 'member_2' / name).read_bytes())
  assert plot.load_runs(str(tmp_path)) == runs + [runs[2]] * 2
  assert plot.load_runs(str(tmp_path / 'member_1')) == [runs[1]]
  out = tmp_path / 'sweep.png'
  plot.main(['--workdir', str(tmp_path), '--out', str(out)])
  assert out.read_bytes()[:4] == b'\x89PNG'


def test_study_record_carries_finished_sweeps_to_an_empty_study_dir(
    tmp_path, monkeypatch):
  from experiments import study_record
  from experiments import study_runs
  path = str(tmp_path / 'record.jsonl')
  first = study_record.Record(path, str(tmp_path / 'a'), commit='abc1234')
  _, runs, seconds = study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0, 1],
                                    2, str(tmp_path / 'a'), record=first)
  with open(path) as f:
    lines = [json.loads(line) for line in f]
  assert [e['sweep'] for e in lines] == [
      'synthetic/steps/alpha1.0/missing0.0/fedavg']
  assert lines[0]['commit'] == 'abc1234'
  # Another machine: an empty study dir, the same record. Nothing runs.
  monkeypatch.setattr(study_runs.sweep, 'run_sweep', lambda *a, **k: 1 / 0)
  second = study_record.Record(path, str(tmp_path / 'b'), commit='def5678')
  _, again, again_seconds = study_runs.run_cell(
      'synthetic', 'fedavg', 1.0, 0.0, [0, 1], 2, str(tmp_path / 'b'),
      record=second)
  assert again_seconds == pytest.approx(seconds, rel=1e-5)
  assert second.used == {'abc1234': 1}  # The report names that commit.
  for mine, theirs in zip(runs, again):
    assert [r['round'] for r in mine] == [r['round'] for r in theirs]
    assert mine[-1]['eval/accuracy'] == pytest.approx(
        theirs[-1]['eval/accuracy'], rel=1e-5)
    assert mine[-1]['comm/upload_bytes'] == theirs[-1]['comm/upload_bytes']
  # Another choice is not the recorded sweep.
  assert study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0, 1], 2,
                        str(tmp_path / 'b'), chosen={'client.lr': 0.01},
                        report_only=True, record=second) is None
  with open(path) as f:
    assert len(f.readlines()) == 1  # Reading it adds nothing.


def test_study_record_ending_in_gz_is_gzip(tmp_path, monkeypatch):
  import gzip
  from experiments import study_record
  from experiments import study_runs
  path = str(tmp_path / 'record.jsonl.gz')
  first = study_record.Record(path, str(tmp_path / 'a'), commit='abc1234')
  _, runs, _ = study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0], 2,
                              str(tmp_path / 'a'), record=first)
  with open(path, 'rb') as f:
    assert f.read(2) == b'\x1f\x8b'  # gzip's magic number.
  monkeypatch.setattr(study_runs.sweep, 'run_sweep', lambda *a, **k: 1 / 0)
  second = study_record.Record(path, str(tmp_path / 'b'))
  _, again, _ = study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0], 2,
                               str(tmp_path / 'b'), record=second)
  assert again[0][-1]['eval/accuracy'] == pytest.approx(
      runs[0][-1]['eval/accuracy'], rel=1e-5)
  with gzip.open(path, 'rt') as f:
    assert len(f.readlines()) == 1  # Reading it back appends nothing.


def test_study_record_takes_in_sweeps_already_in_the_study_dir(tmp_path):
  from experiments import study_record
  from experiments import study_report
  from experiments import study_runs
  root = str(tmp_path)
  study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0], 2, root)
  path = str(tmp_path / 'record.jsonl')
  record = study_record.Record(path, root, commit='abc1234')
  assert study_runs.run_cell('synthetic', 'fedavg', 1.0, 0.0, [0], 2, root,
                        report_only=True, record=record) is not None
  with open(path) as f:
    (entry,) = [json.loads(line) for line in f]
  assert entry['commit'] == ''  # It ran without a record: commit unknown.
  text = study_report.report({}, [0], {}, machine={
      'commit': 'def5678', 'sweep_commits': record.used})
  assert 'at commit def5678; its sweeps ran at an unrecorded commit (1 ' \
         'sweeps)' in text


def test_study_record_reads_back_a_tuning_stage_of_several_fields(
    tmp_path, monkeypatch):
  from experiments import study_record
  from experiments import study_runs
  path = str(tmp_path / 'record.jsonl')
  # The grid's keys out of sorted order: the record stores them sorted.
  grid = {'seed': [0, 1], 'client.lr': [0.1, 0.03]}
  config = study_runs.study_config('synthetic', 'fedavg', 1.0, 0.0, 2)
  first = study_record.Record(path, str(tmp_path / 'a'), commit='abc1234')
  settings, runs, _ = study_runs.run_sweep(
      config, grid, str(tmp_path / 'a' / 'stage0'), record=first)
  assert [(s['seed'], s['client.lr']) for s in settings] == [
      (0, 0.1), (0, 0.03), (1, 0.1), (1, 0.03)]
  monkeypatch.setattr(study_runs.sweep, 'run_sweep', lambda *a, **k: 1 / 0)
  second = study_record.Record(path, str(tmp_path / 'b'), commit='def5678')
  again, again_runs, _ = study_runs.run_sweep(
      config, grid, str(tmp_path / 'b' / 'stage0'), record=second)
  assert again == settings
  assert [r[-1]['eval/accuracy'] for r in again_runs] == pytest.approx(
      [r[-1]['eval/accuracy'] for r in runs], rel=1e-5)
  with open(path) as f:
    assert len(f.readlines()) == 1  # Reading it back appends nothing.


def test_report_names_what_has_not_run_and_leaves_it_out_of_the_summary():
  from experiments import study_report
  pending = {('synthetic', 1.0, 0.3, 'final'): ['fedprox'],
             ('synthetic', 0.1, None, 'tuning'): ['fedavg'],
             ('av_digits', None, 0.5, 'diagnosis'): ['tau 0.2'],
             ('crema_d', None, None, 'data'): ['its raw files are absent']}
  lines, incomplete = study_report.not_run_yet(pending, empty=['av_digits'])
  assert lines == [
      '- synthetic, alpha 1.0, missing 0.3: final runs of fedprox.',
      '- synthetic, alpha 0.1: not tuned yet (nor run): fedavg.',
      '- av_digits: nothing has run yet.',
      '- crema_d: skipped, its raw files are absent.']
  assert incomplete == {('synthetic', 1.0, 0.3), ('synthetic', 0.1, None)}
  run = lambda accuracy: [{'round': 10, 'eval/accuracy': accuracy,
                           'comm/upload_bytes': 2**20,
                           'comm/download_bytes': 2**20}]
  cells = {(alpha, missing): {
      name: study_report.summarize_cell([run(a)], target=0.5)
      for name, a in (('fedavg', 0.6), ('fedmchain', 0.7))}
           for alpha, missing in ((1.0, 0.0), (1.0, 0.3), (0.1, 0.0))}
  text = study_report.report({'synthetic': cells, 'av_digits': {}}, [0],
                      {'synthetic': 10}, pending=pending)
  assert '## Not run yet' in text and '## av_digits' not in text
  summary = text.split('## Summary')[1].split('## synthetic')[0]
  assert '| synthetic | 1.0 | 0.0 |' in summary  # All its runs are in.
  assert '| synthetic | 1.0 | 0.3 |' not in summary
  assert '| synthetic | 0.1 |' not in summary
  # One seed: no interval, so level.
  assert ('`fedmchain` in 1 settings: against FedAvg wins 0, level 1, '
          'loses 0') in summary
  # fedmchain_adam did not run: its columns say so.
  assert ('| synthetic | 1.0 | 0.0 | 0.600 | fedavg 0.600 | 0.700 | '
          '+0.100 [+nan, +nan] level | — | — |') in summary
  # The per-setting tables still show what has run.
  assert '### Dirichlet alpha 1.0, missing-modality rate 0.3' in text


def test_paired_differences_and_their_t_interval_by_hand():
  from experiments import stats
  # Differences 0.02, 0.025, 0.03: mean 0.025, s 0.005, t(0.975, 2) =
  # 4.3027, half-width 4.3027 x 0.005 / sqrt(3) = 0.0124.
  mean, half = stats.paired([0.92, 0.925, 0.93], [0.90, 0.90, 0.90])
  assert mean == pytest.approx(0.025)
  assert half == pytest.approx(4.302653 * 0.005 / 3**0.5, rel=1e-5)
  assert stats.fmt_paired(mean, half) == '+0.025 [+0.013, +0.037] wins'
  assert stats.verdict(-mean, half) == 'loses'
  # Differences 0.02, 0.01, 0.03: s 0.01, half-width 0.0248 > 0.02.
  assert stats.fmt_paired(*stats.paired([0.92, 0.91, 0.93], [0.9] * 3)) == (
      '+0.020 [-0.005, +0.045] level')
  assert stats.fmt([0.9, 0.95]) == '0.925 ± 0.035'
  assert stats.fmt([0.9]) == '0.900'
