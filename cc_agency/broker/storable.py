"""Refuse, before anything is written, JSON values that MongoDB cannot store or that would not read back as JSON.

A RED that red-val accepts may still hold an integer beyond 64 bits, a lone UTF-16 surrogate, a NUL or a leading
`$` in a key, NaN or Infinity: pymongo or the server would reject it half-way through the registration (a 500
and a half-written experiment), or it would come back out of GET as invalid JSON. Each becomes one 400 message
that names the path of the first offending value.
"""
import math

INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
MAX_DEPTH = 64  # far beyond any RED; deeper documents would exhaust recursive checks further down


class UnstorableError(ValueError):
    pass


def _check_string(value, path, what):
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        raise UnstorableError('{}: {} is not valid Unicode (lone surrogate)'.format(path or '<top level>', what))


def check_storable(value, path=''):
    """Raise UnstorableError naming the first value under `value` that cannot be stored faithfully."""
    stack = [(value, path, 0)]
    while stack:  # iterative: a deeply nested RED must not exhaust the interpreter's stack here
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH and isinstance(item, (dict, list)):
            raise UnstorableError('{}: nested deeper than {} levels'.format(where, MAX_DEPTH))
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise UnstorableError('{}: keys must be strings'.format(where or '<top level>'))
                _check_string(key, where, 'key')
                if key.startswith('$') or '\0' in key:
                    raise UnstorableError('{}: key "{}" must not start with "$" or contain NUL'.format(
                        where or '<top level>', key[:50]))
                stack.append((child, '{}.{}'.format(where, key) if where else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, '{}[{}]'.format(where, index), depth + 1) for index, child in enumerate(item))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise UnstorableError('{}: integer out of the 64-bit range'.format(where or '<top level>'))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnstorableError('{}: NaN and Infinity are not JSON numbers'.format(where or '<top level>'))
        elif isinstance(item, str):
            _check_string(item, where, 'string')
