"""What of an exception may go into a log line: never the payload of a database write, never a batch's values.

pymongo's errors quote what they were given: `BulkWriteError`'s text holds every failed document (`op`), a
`WriteError`'s `details` the key values, and a batch document holds its connectors' credentials. So a log line
names such an error by its type and codes only. A traceback is kept for what it says about the code (files, lines,
functions, source lines), with each exception's message replaced in the same way; other messages pass through
`mask` (cc_agency.secrets.Masker.text, where the protected values are known).
"""
import traceback

import pymongo.errors


def describe(error, mask=None):
    """One line about `error` that is safe to log."""
    if isinstance(error, pymongo.errors.BulkWriteError):
        codes = sorted({str(e.get('code')) for e in (error.details or {}).get('writeErrors', [])})
        concern = ' and a write concern error' if (error.details or {}).get('writeConcernErrors') else ''
        return 'BulkWriteError (write error codes {}{})'.format(', '.join(codes) or 'none', concern)
    if isinstance(error, (pymongo.errors.OperationFailure, pymongo.errors.InvalidOperation,
                          pymongo.errors.DocumentTooLarge)):
        code = getattr(error, 'code', None)
        return '{}{}'.format(type(error).__name__, ' (code {})'.format(code) if code is not None else '')
    if isinstance(error, pymongo.errors.PyMongoError):  # connection problems: about servers, not documents
        return '{}: {}'.format(type(error).__name__, error)
    text = str(error)
    return '{}: {}'.format(type(error).__name__, mask(text) if mask else text) if text else type(error).__name__


def traceback_text(error, mask=None):
    """The traceback of `error` (and of what caused it) with every message made safe by `describe`."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        stack = ''.join(traceback.format_tb(error.__traceback__))
        parts.append('Traceback (most recent call last):\n{}{}'.format(stack, describe(error, mask)))
        error = error.__cause__ or error.__context__
    return '\n\nwhich led to:\n'.join(reversed(parts)) if len(parts) > 1 else (parts[0] if parts else '')
