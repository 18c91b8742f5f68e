"""Protected keys of a RED: which values are secret, how they are used, masked and voided.

Seed, "Data Security": values of protected keys under a connector's `access` and an engine's `auth` are kept only
while a batch or experiment needs them, then overwritten. Protected keys are `password`, `privateKey` and any key
written with a leading `_` (its value must be a string); the `_` is removed before the value is used.
Under an image's `auth`, Docker's own credential keys (`auth`, `identitytoken`, `registrytoken`, `password`) are
protected too, whatever their spelling in the RED.

The controller also masks every protected value of a batch and its experiment in the text it stores or logs
(`Masker`): connectors and registries quote what they were given (a signed URL in an error message), and only the
controller knows which values were protected: the agent sees the keys without their `_`. A value is masked as it
was sent and in the forms it takes on its way into messages: URL-encoded, JSON-escaped, Python-escaped.
Everything here is pure: functions take plain data and return new data.
"""
import json
import urllib.parse

ALWAYS_PROTECTED_KEYS = frozenset(['password', 'privateKey'])
# what the Docker engine API reads as credentials in an auth config (besides username, which stays visible)
IMAGE_AUTH_PROTECTED_KEYS = ALWAYS_PROTECTED_KEYS | frozenset(['auth', 'identitytoken', 'registrytoken'])
VOIDED = None  # what a protected value becomes once it is no longer needed
MASK = '********'  # what the API shows instead of a protected value that is still stored


def is_protected_key(key, protected_keys=ALWAYS_PROTECTED_KEYS):
    return key in protected_keys or (isinstance(key, str) and key.startswith('_'))


def replace_protected(data, replacement, protected_keys=ALWAYS_PROTECTED_KEYS):
    """A copy of `data` (an access or auth object) with the value of every protected key replaced."""
    if isinstance(data, dict):
        return {
            key: (replacement if is_protected_key(key, protected_keys)
                  else replace_protected(value, replacement, protected_keys))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [replace_protected(item, replacement, protected_keys) for item in data]
    return data


def replace_protected_image_auth(auth, replacement):
    """A copy of an image's `auth` with every protected value replaced (Docker's credential keys included)."""
    return replace_protected(auth, replacement, IMAGE_AUTH_PROTECTED_KEYS)


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


# --- masking of text the controller stores or logs ----------------------------------------------------------------
def _protected_strings(data, protected_keys, inside=False):
    """Every string under a protected key of `data` (also nested inside a protected value)."""
    if isinstance(data, dict):
        return [text for key, value in data.items()
                for text in _protected_strings(value, protected_keys, inside or is_protected_key(key, protected_keys))]
    if isinstance(data, list):
        return [text for item in data for text in _protected_strings(item, protected_keys, inside)]
    if inside and isinstance(data, (int, float)) and not isinstance(data, bool):
        return [str(data)]  # a number given as a password is a secret too
    return [data] if inside and isinstance(data, str) and data else []


def protected_values(batch_io=None, image_auth=None, execution_access=None):
    """The protected values of a batch (its connectors' access) and its experiment (image auth, execution access),
    as strings (pure)."""
    values = set()
    for _, access in connector_accesses(batch_io or {}):
        values.update(_protected_strings(access, ALWAYS_PROTECTED_KEYS))
    values.update(_protected_strings(image_auth or {}, IMAGE_AUTH_PROTECTED_KEYS))
    values.update(_protected_strings(execution_access or {}, ALWAYS_PROTECTED_KEYS))
    return values


def secret_forms(value):
    """The spellings of `value` that messages carry: as sent, URL-encoded (path, query and form style), JSON- and
    Python-escaped (ASCII or not), and those escapes of the URL-encoded forms."""
    encoded = {value, urllib.parse.quote(value), urllib.parse.quote(value, safe=''), urllib.parse.quote_plus(value),
               urllib.parse.quote(value, safe=':/?&=')}
    forms = set(encoded)
    for form in encoded:
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
        forms.add(repr(form)[1:-1])
        forms.add(ascii(form)[1:-1])
        forms.add(json.dumps(json.dumps(form))[3:-3])  # JSON inside JSON (a result quoted in a log line)
    return {form for form in forms if form}


def _occurrences(text, forms):
    """Spans [start, end) of every occurrence of every form in text (overlapping ones too)."""
    spans = []
    for form in forms:
        start = text.find(form)
        while start != -1:
            spans.append((start, start + len(form)))
            start = text.find(form, start + 1)
    return spans


def _edge_spans(text, forms, cut_start, cut_end):
    """Where text was cut (a tail, a head), the piece of a form that the cut left: the longest suffix of a form that
    text starts with, the longest prefix of a form that text ends with."""
    spans = []
    for form in forms:
        for length in range(min(len(form) - 1, len(text)), 0, -1):
            if cut_start and text.startswith(form[-length:]):
                spans.append((0, length))
                break
        for length in range(min(len(form) - 1, len(text)), 0, -1):
            if cut_end and text.endswith(form[:length]):
                spans.append((len(text) - length, len(text)))
                break
    return spans


def _replace_spans(text, spans, replacement):
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, position = [], 0
    for start, end in merged:
        parts.append(text[position:start])
        parts.append(replacement)
        position = end
    parts.append(text[position:])
    return ''.join(parts)


def mask_text(text, forms, cut_start=False, cut_end=False, replacement=MASK):
    """`text` with every occurrence of every form replaced (pure). `cut_start`/`cut_end`: the text is a tail/head
    of a longer one, so a piece of a form at that edge is masked too.

    Masking repeats until no form is left: a replacement next to other text can spell a form anew. It ends, because
    each round replaces at least one character that is not the replacement's with it.
    """
    if not forms or not text:
        return text
    spans = _edge_spans(text, forms, cut_start, cut_end)
    while True:
        spans.extend(_occurrences(text, forms))
        if not spans:
            return text
        text = _replace_spans(text, spans, replacement)
        spans = []


class Masker:
    """Masks the protected values of one batch and its experiment in the text and data the controller keeps."""

    def __init__(self, values):
        self.forms = frozenset(form for value in values for form in secret_forms(value))

    @classmethod
    def for_batch(cls, batch, experiment):
        experiment = experiment or {}
        batch = batch or {}
        settings = experiment.get('container', {}).get('settings', {})
        access = experiment.get('execution', {}).get('settings', {}).get('access')
        return cls(protected_values({'inputs': batch.get('inputs'), 'outputs': batch.get('outputs')},
                                    settings.get('image', {}).get('auth'), access))

    def text(self, text, cut_start=False, cut_end=False):
        return mask_text(text, self.forms, cut_start, cut_end) if isinstance(text, str) else text

    def data(self, data):
        """A copy of JSON-like data with every string (keys too) masked."""
        if isinstance(data, dict):
            return {self.text(key): self.data(value) for key, value in data.items()}
        if isinstance(data, list):
            return [self.data(item) for item in data]
        return self.text(data)
