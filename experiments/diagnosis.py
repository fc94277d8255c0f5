r"""FedMChain's parts one at a time under label skew, on the validation split.

  python -m experiments.study --diagnose ...   (a section of the report)

Each variant changes one thing of the `fedmchain` reference (the config's
values: rho 0.1, error feedback, SSCA with tau 0, the weighted combine and
each coordinate normalized by the group's members, the boost regularizer,
the rotating chain, server SGD at lr 1) and runs the
study's seeds at Dirichlet alpha `ALPHA` and each of `MISSING`, evaluated on
the validation split (never the test split). The section gives each
variant's validation fused accuracy beside the reference's, and the round's
`agg/*` metrics of the last round of the classifier block (what the
aggregate is made of: senders per coordinate, coordinates one client alone
sent, groups, share of clients and of weight kept, ||U|| / ||dense mean||).
"""

import numpy as np

from experiments import stats

ALPHA = 0.1
MISSING = (0.0, 0.5)
REFERENCE = 'fedmchain'
# (name, algorithm, {field: value}): one change each from the reference.
VARIANTS = (
    ('reference (fedmchain)', REFERENCE, {}),
    ('rho 0.05', REFERENCE, {'fedmchain.rho': 0.05}),
    ('rho 0.3', REFERENCE, {'fedmchain.rho': 0.3}),
    ('rho 1.0 (dense, SSCA)', REFERENCE, {'fedmchain.rho': 1.0}),
    ('weighted mean of the same sparse uploads', REFERENCE,
     {'fedmchain.aggregator': 'mean'}),
    ('no error feedback', REFERENCE, {'fedmchain.error_feedback': False}),
    ('server lr 0.5', REFERENCE, {'server.lr': 0.5}),
    ('server lr 2', REFERENCE, {'server.lr': 2.0}),
    ('server momentum 0.9', REFERENCE, {'server.momentum': 0.9,
                                        'server.lr': 0.1}),
    # FedOpt's server optimizer on the sparse consensus aggregate.
    ('server Adam lr 0.003', REFERENCE, {'server.optimizer': 'adam',
                                         'server.lr': 0.003}),
    ('server Adam lr 0.01', REFERENCE, {'server.optimizer': 'adam',
                                        'server.lr': 0.01}),
    ('largest-group combine', REFERENCE, {'fedmchain.combine': 'largest'}),
    ('tau 0.2', REFERENCE, {'fedmchain.tau': 0.2}),
    ('tau 0.5', REFERENCE, {'fedmchain.tau': 0.5}),
    ('one group (TIES)', 'fedmchain_ties', {}),
    ('regularizer off', REFERENCE, {'fedmchain.reg_lambda': 0.0}),
    ('reweight regularizer', REFERENCE, {'fedmchain.regularizer': 'reweight'}),
    ('fixed chain order', REFERENCE, {'fedmchain.chain_rule': 'fixed'}),
    ('SSCA normalized by its senders (literal)', REFERENCE,
     {'fedmchain.normalize': 'senders'}),
    ('normalized by senders, server lr 0.5', REFERENCE,
     {'fedmchain.normalize': 'senders', 'server.lr': 0.5}),
    ('FedAvg (dense joint, mean)', 'fedavg', {}),
    ('FedOpt-Adam (dense joint, mean, server Adam lr 0.01)', 'fedopt_adam',
     {'server.lr': 0.01}),
    ('joint training, same sparse upload, mean', 'joint_sparse_mean', {}),
)
# The block whose agg/* metrics the table shows: every client holds it.
BLOCK = 'classifier'
AGG_COLUMNS = ('senders', 'single_sender', 'groups', 'clients_kept',
               'weight_kept', 'norm_ratio')


def variant_dir(name: str) -> str:
  return ''.join(c if c.isalnum() else '_' for c in name).strip('_')


def summarize(runs) -> dict:
  """Validation fused accuracy over seeds and the agg/* metrics' means."""
  finals = [r[-1] for r in runs]
  row = {'fused': [f['eval/accuracy'] for f in finals]}
  for column in AGG_COLUMNS:
    values = [f.get(f'agg/{BLOCK}/{column}') for f in finals]
    row[column] = (None if any(v is None for v in values)
                   else float(np.mean(values)))
  return row


def section(rows_by_missing, seeds, dataset) -> list[str]:
  """Markdown: one table per missing rate, then one sentence per variant
  whose paired interval against the reference excludes 0 (`stats`)."""
  lines = [f'## Diagnosis under label skew ({dataset}, validation split)', '',
           f'Dirichlet alpha {ALPHA}; seeds {", ".join(map(str, seeds))}; '
           'each row changes one thing of the `fedmchain` reference '
           '(experiments/diagnosis.py). agg/* columns: the classifier '
           'block in the last round (senders per sent coordinate, share of '
           'coordinates one client alone sent, groups, share of senders and '
           'of their weight kept, ||U|| / ||dense mean of e_c||).', '']
  findings = []
  for missing, rows in rows_by_missing.items():
    if not rows:
      continue  # Not run yet.
    lines += [f'### Missing-modality rate {missing}', '',
              '| variant | validation fused | ' + ' | '.join(AGG_COLUMNS) +
              ' |', '| --- | --- | ' + ' | '.join('---' for _ in AGG_COLUMNS)
              + ' |']
    reference = rows.get(VARIANTS[0][0])
    for name, row in rows.items():
      cells = [('—' if row[c] is None else f'{row[c]:.2f}')
               for c in AGG_COLUMNS]
      lines.append(f'| {name} | {stats.fmt(row["fused"])} | ' +
                   ' | '.join(cells) + ' |')
      if reference is None or row is reference:
        continue
      change = stats.paired(row['fused'], reference['fused'])
      if stats.verdict(*change) != 'level':
        findings.append(f'- missing {missing}: {name}: '
                        f'{stats.fmt_paired(*change)} '
                        f'({np.mean(row["fused"]):.3f} vs '
                        f'{np.mean(reference["fused"]):.3f}).')
    lines.append('')
  lines += [f'Changes whose {stats.CONFIDENCE:.0%} interval over seeds '
            '(paired with the reference) excludes 0:', ''] + (
      findings or ['- none.']) + ['']
  return lines
