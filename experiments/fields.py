"""Checks of one config field each; every failure is a `ConfigError` whose
message is one line naming the field, the value given and what is allowed.

`config_checks.validate` and the registry's dataset and aggregator entries
(their own fields) are written with these.
"""

import math
import numbers


class ConfigError(ValueError):

  def __init__(self, field: str, value, allowed: str):
    self.field, self.value, self.allowed = field, value, allowed
    super().__init__(f'config.{field}={value!r} is invalid: {allowed}')


def get(config, field):
  """The value of a dotted field; `ConfigError` when it is missing."""
  node = config
  for part in field.split('.'):
    if part not in node:
      raise ConfigError(field, None, 'the field is missing from the config')
    node = node[part]
  return node


def is_number(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def integer(config, field, low=1, high=None):
  value = get(config, field)
  if not isinstance(value, numbers.Integral) or isinstance(value, bool):
    raise ConfigError(field, value, 'must be an integer')
  if value < low or (high is not None and value > high):
    bound = f'>= {low}' if high is None else f'in [{low}, {high}]'
    raise ConfigError(field, value, f'must be an integer {bound}')
  return value


def real(config, field, low=None, high=None, low_open=False,
         high_open=False):
  value = get(config, field)
  if not is_number(value):
    raise ConfigError(field, value, 'must be a finite number')
  too_low = low is not None and (value <= low if low_open else value < low)
  too_high = high is not None and (value >= high if high_open
                                   else value > high)
  if too_low or too_high:
    if high is None:
      allowed = f'must be {">" if low_open else ">="} {low}'
    elif low is None:
      allowed = f'must be {"<" if high_open else "<="} {high}'
    else:
      allowed = (f'must be in {"(" if low_open else "["}{low}, '
                 f'{high}{")" if high_open else "]"}')
    raise ConfigError(field, value, allowed)
  return value


def choice(config, field, allowed):
  value = get(config, field)
  if value not in allowed:
    raise ConfigError(field, value, f'must be one of {", ".join(allowed)}')
  return value


def boolean(config, field):
  value = get(config, field)
  if not isinstance(value, bool):
    raise ConfigError(field, value, 'must be True or False')
  return value


def per_modality(config, field, count):
  value = get(config, field)
  if not isinstance(value, (tuple, list)) or len(value) != count:
    raise ConfigError(
        field, value,
        f'must be a tuple with one entry per modality ({count} entries)')
  return value


def directory(config, field):
  value = get(config, field)
  if not isinstance(value, str) or not value:
    raise ConfigError(field, value, 'must be a directory path')
  return value
