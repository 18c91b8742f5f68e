"""red-val's RED schema, compiled once and checked once per distinct shape of batch.

Why: the schema check is the largest part of POST /red for a sweep (0.5-0.7 s of CPU per 10,000 batches, compiled
with fastjsonschema; its `anyOf`/`oneOf` alternatives try each shape in turn for every input value), yet the
batches of a sweep differ only in values the schema does not look at: it asks of a batch's strings only that they
are strings, except for a few enumerated fields (`class`, `mountProtocol`). So a batch is reduced to its shape (its
keys, the type of each value, the values of those enumerated fields), and the schema is checked against the RED
with one batch of each shape: the verdict is the same as for the whole RED (tests/unit/test_red_schema_check.py
compares both on generated batches).

The fields whose values are kept (VALUED_KEYS) are read from the schema itself when this module loads: every
keyword below `batches` is one whose verdict the shape decides (types, keys, required, alternatives) or a value
constraint under a named property. A schema with any other keyword there stops the import (SchemaShapeError), so a
red-val whose schema changes cannot silently weaken the check.
"""
import fastjsonschema
from red_val.schemas.red import red_schema

JsonSchemaException = fastjsonschema.JsonSchemaException

# keywords whose verdict depends only on a value's shape as `shape()` spells it
_STRUCTURAL = {'type', 'properties', 'patternProperties', 'additionalProperties', 'required', 'items', 'oneOf',
               'anyOf', 'allOf', 'not', '$ref', 'description', 'title'}
# keywords that constrain a value itself: allowed only as a named property's schema, whose values are then kept
_VALUE_CONSTRAINTS = {'enum', 'const', 'pattern', 'format', 'minLength', 'maxLength', 'minimum', 'maximum',
                      'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf'}


class SchemaShapeError(Exception):
    """red-val's schema uses a keyword under `batches` that a batch's shape cannot decide."""


def _batch_schema(schema):
    alternatives = [alt for alt in schema['oneOf'] if 'batches' in alt.get('properties', {})]
    if len(alternatives) != 1:
        raise SchemaShapeError('no single schema alternative with batches')
    return alternatives[0]['properties']['batches']


def valued_keys(schema=red_schema):
    """The property names under `batches` whose values the schema constrains (pure)."""
    definitions = schema.get('definitions', {})
    keys, seen = set(), set()
    stack = [(_batch_schema(schema), None)]
    while stack:
        node, name = stack.pop()
        if isinstance(node, bool):
            continue
        if '$ref' in node:
            ref = node['$ref']
            if not ref.startswith('#/definitions/') or len(node) != 1:
                raise SchemaShapeError('reference {} not understood'.format(ref))
            if ref not in seen:
                seen.add(ref)
                stack.append((definitions[ref[len('#/definitions/'):]], name))
            continue
        unknown = set(node) - _STRUCTURAL - _VALUE_CONSTRAINTS
        if unknown:
            raise SchemaShapeError('keywords {} under batches'.format(sorted(unknown)))
        if set(node) & _VALUE_CONSTRAINTS:
            if name is None:
                raise SchemaShapeError('a value constraint that is not a named property\'s')
            keys.add(name)
        for key, child in (node.get('properties') or {}).items():
            stack.append((child, key))
        for child in (node.get('patternProperties') or {}).values():
            stack.append((child, None))
        for key in ('additionalProperties', 'items', 'not'):
            if isinstance(node.get(key), dict):
                stack.append((node[key], None))
        for key in ('oneOf', 'anyOf', 'allOf'):
            stack.extend((child, name) for child in node.get(key, ()))
    return frozenset(keys)


VALUED_KEYS = valued_keys()
_check = fastjsonschema.compile(red_schema)


def shape(value, keep=False):
    """What the schema can tell apart of a JSON value: its keys and nesting, the type of each leaf (and whether a
    float is whole: the schema's "integer" accepts 1.0), and the whole value of fields in VALUED_KEYS (`keep`).
    Equal shapes get equal verdicts (pure)."""
    if isinstance(value, dict):
        if keep:
            return object()  # a constrained field that holds an object: never shared
        return (dict,) + tuple((key, shape(child, key in VALUED_KEYS)) for key, child in value.items())
    if isinstance(value, list):
        if keep:
            return object()
        return (list,) + tuple(shape(child) for child in value)
    if keep:
        return type(value), value
    if isinstance(value, float):
        return float, value.is_integer()
    return type(value)


def check(red):
    """Raise JsonSchemaException where red-val's schema rejects `red`, with the same verdict as checking it whole."""
    batches = red.get('batches') if isinstance(red, dict) else None
    if isinstance(batches, list) and len(batches) > 1:
        firsts = {}
        for batch in batches:
            firsts.setdefault(shape(batch), batch)
        red = dict(red, batches=list(firsts.values()))
    _check(red)
