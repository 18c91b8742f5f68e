"""Protected keys of a RED: which values are secret, how they are used, masked and voided.

Seed, "Data Security": values of protected keys under a connector's `access` and an engine's `auth` are kept only
while a batch or experiment needs them, then overwritten. Protected keys are `password`, `privateKey` and any key
written with a leading `_` (its value must be a string); the `_` is removed before the value is used.
Everything here is pure: functions take plain data and return new data.
"""

ALWAYS_PROTECTED_KEYS = frozenset(['password', 'privateKey'])
VOIDED = None  # what a protected value becomes once it is no longer needed
MASK = '********'  # what the API shows instead of a protected value that is still stored


def is_protected_key(key):
    return key in ALWAYS_PROTECTED_KEYS or (isinstance(key, str) and key.startswith('_'))


def replace_protected(data, replacement):
    """A copy of `data` (an access or auth object) with the value of every protected key replaced."""
    if isinstance(data, dict):
        return {
            key: (replacement if is_protected_key(key) else replace_protected(value, replacement))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [replace_protected(item, replacement) for item in data]
    return data


def strip_protected_prefix(data):
    """A copy of an access or auth object as the connector or the engine must see it: `_key` becomes `key`."""
    if isinstance(data, dict):
        return {
            (key[1:] if isinstance(key, str) and key.startswith('_') else key): strip_protected_prefix(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [strip_protected_prefix(item) for item in data]
    return data


def protected_prefix_errors(data, path='access'):
    """Paths of `_`-keys whose value is not a string (the seed protects only string values)."""
    errors = []
    if isinstance(data, dict):
        for key, value in data.items():
            sub_path = '{}.{}'.format(path, key)
            if isinstance(key, str) and key.startswith('_') and not isinstance(value, str):
                errors.append(sub_path)
            else:
                errors.extend(protected_prefix_errors(value, sub_path))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            errors.extend(protected_prefix_errors(item, '{}[{}]'.format(path, index)))
    return errors


def _map_connectors(values, function):
    """Apply `function` to the `access` of every connector in batch inputs or outputs (a key -> value map)."""
    def visit(value):
        if isinstance(value, list):
            return [visit(item) for item in value]
        if isinstance(value, dict) and isinstance(value.get('connector'), dict):
            connector = dict(value['connector'])
            connector['access'] = function(connector.get('access', {}))
            return dict(value, connector=connector)
        return value
    return {key: visit(value) for key, value in (values or {}).items()}


def map_batch_access(batch_io, function):
    """`batch_io` is {'inputs': ..., 'outputs': ...}; returns a copy with `function` applied to every access."""
    return {name: _map_connectors(batch_io.get(name), function) for name in ('inputs', 'outputs')}


def void_batch_secrets(batch_io):
    return map_batch_access(batch_io, lambda access: replace_protected(access, VOIDED))


def mask_batch_secrets(batch_io):
    return map_batch_access(batch_io, lambda access: replace_protected(access, MASK))


def usable_batch_access(batch_io):
    return map_batch_access(batch_io, strip_protected_prefix)


def connector_accesses(batch_io):
    """Every connector access object of a batch's inputs and outputs, with its path (for checks)."""
    found = []

    def visit(value, path):
        if isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, '{}[{}]'.format(path, index))
        elif isinstance(value, dict) and isinstance(value.get('connector'), dict):
            found.append(('{}.connector.access'.format(path), value['connector'].get('access', {})))

    for name in ('inputs', 'outputs'):
        for key, value in (batch_io.get(name) or {}).items():
            visit(value, '{}.{}'.format(name, key))
    return found
