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


def _where(chain):
    """The dotted path of a (parent chain, key) link, built only for an error message."""
    parts = []
    while chain is not None:
        chain, key = chain
        parts.append('[{}]'.format(key) if isinstance(key, int) else '.' + key)
    where = ''.join(reversed(parts)).lstrip('.') or '<top level>'
    return where if len(where) <= 120 else where[:120] + '...'


def _valid_unicode(text):
    try:
        text.encode('utf-8')
        return True
    except UnicodeEncodeError:
        return False


def check_storable(value):
    """Raise UnstorableError naming the first value under `value` that cannot be stored faithfully.

    Iterative (a deeply nested RED must not exhaust the interpreter's stack here), and paths are only spelled out
    for the error: a RED of 10,000 batches is checked in a fraction of the time red-val takes.
    """
    stack = [(value, None, 0)]
    while stack:
        item, chain, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                raise UnstorableError('{}: nested deeper than {} levels'.format(_where(chain), MAX_DEPTH))
            for key, child in item.items():
                if not isinstance(key, str):
                    raise UnstorableError('{}: keys must be strings'.format(_where(chain)))
                if key.startswith('$') or '\0' in key or not _valid_unicode(key):
                    raise UnstorableError('{}: key "{}" must be valid Unicode, not start with "$" and not contain '
                                          'NUL'.format(_where(chain), key[:50].encode('utf-8', 'replace').decode()))
                stack.append((child, (chain, key), depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                raise UnstorableError('{}: nested deeper than {} levels'.format(_where(chain), MAX_DEPTH))
            stack.extend((child, (chain, index), depth + 1) for index, child in enumerate(item))
        elif isinstance(item, str):
            if not _valid_unicode(item):
                raise UnstorableError('{}: string is not valid Unicode (lone surrogate)'.format(_where(chain)))
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise UnstorableError('{}: integer out of the 64-bit range'.format(_where(chain)))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnstorableError('{}: NaN and Infinity are not JSON numbers'.format(_where(chain)))
