#!/usr/bin/env python3
"""Render the broker's OpenAPI document (docs/openapi.yaml) as the REST reference docs/rest-api.md.

    python3 deploy/tools/render_rest_api.py            # writes docs/rest-api.md
    python3 deploy/tools/render_rest_api.py --check    # exit 1 if docs/rest-api.md is not what it would write

tests/integration/test_docs.py runs the check, so the reference never drifts from the OpenAPI document.
Needs PyYAML only.
"""
import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / 'docs' / 'openapi.yaml'
OUTPUT = REPO / 'docs' / 'rest-api.md'
METHODS = ('get', 'post', 'put', 'patch', 'delete')


class Renderer:
    def __init__(self, spec):
        self.spec = spec

    def resolve(self, node):
        """Follows a local $ref; returns (name or None, the referenced object)."""
        if isinstance(node, dict) and '$ref' in node:
            parts = node['$ref'].lstrip('#/').split('/')
            target = self.spec
            for part in parts:
                target = target[part]
            return parts[-1], target
        return None, node

    def type_of(self, schema):
        """A short type description: `Batch`, `array of Batch`, `string (one of a, b)`, ..."""
        if schema is None:
            return ''
        name, schema = self.resolve(schema)
        if name and name in self.spec.get('components', {}).get('schemas', {}):
            return '[{0}](#{1})'.format(name, name.lower())
        if 'oneOf' in schema:
            return ' or '.join(self.type_of(option) for option in schema['oneOf'])
        kind = schema.get('type', 'any')
        if kind == 'array':
            items = schema.get('items') or {}
            text = 'array of {}'.format(self.type_of(items) or 'any') if items else 'array'
        elif kind == 'object' and schema.get('properties'):
            required = set(schema.get('required', []))
            text = '{' + ', '.join('{}{}: {}'.format(field, '' if field in required else '?', self.type_of(sub))
                                   for field, sub in schema['properties'].items()) + '}'
        elif 'enum' in schema:
            text = '{} (one of {})'.format(kind, ', '.join('`{}`'.format(v) for v in schema['enum']))
        else:
            text = kind
            bounds = [part for part in (
                'min {}'.format(schema['minimum']) if 'minimum' in schema else None,
                'max {}'.format(schema['maximum']) if 'maximum' in schema else None) if part]
            if bounds:
                text += ' ({})'.format(', '.join(bounds))
            if 'pattern' in schema:
                text += ' `{}`'.format(schema['pattern'])
        if schema.get('nullable'):
            text += ' or null'
        return text

    @staticmethod
    def cell(text):
        return ' '.join(str(text or '').split()).replace('|', '\\|')

    def parameters(self, operation, path_item):
        params = [self.resolve(p)[1] for p in path_item.get('parameters', []) + operation.get('parameters', [])]
        if not params:
            return []
        lines = ['| parameter | in | type | default | meaning |', '|---|---|---|---|---|']
        for param in params:
            schema = self.resolve(param.get('schema', {}))[1]
            default = schema.get('default')
            lines.append('| `{}`{} | {} | {} | {} | {} |'.format(
                param['name'], ' (required)' if param.get('required') else '', param['in'],
                self.cell(self.type_of(param.get('schema'))), '' if default is None else '`{}`'.format(
                    str(default).lower() if isinstance(default, bool) else default),
                self.cell(param.get('description', ''))))
        return lines + ['']

    def responses(self, operation):
        lines = ['| status | meaning | body |', '|---|---|---|']
        for status, response in operation.get('responses', {}).items():
            _, response = self.resolve(response)
            bodies = []
            for media, content in (response.get('content') or {}).items():
                bodies.append('{} {}'.format(media, self.type_of(content.get('schema'))).strip())
            headers = ', '.join('`{}`'.format(h) for h in response.get('headers', {}))
            meaning = self.cell(response.get('description', '')) + (' (header {})'.format(headers) if headers else '')
            lines.append('| {} | {} | {} |'.format(status, meaning, self.cell('; '.join(bodies))))
        return lines + ['']

    def operation(self, path, method, operation, path_item):
        lines = ['## `{} {}`'.format(method.upper(), path), '']
        lines += [operation.get('summary', '').strip(), '']
        if operation.get('security') == []:
            lines += ['No authentication.', '']
        if operation.get('description'):
            lines += [operation['description'].strip(), '']
        lines += self.parameters(operation, path_item)
        body = operation.get('requestBody')
        if body:
            for media, content in body.get('content', {}).items():
                lines += ['Request body ({}): {}'.format(media, self.type_of(content.get('schema'))), '']
        lines += self.responses(operation)
        return lines

    def schema(self, name, schema):
        lines = ['### {}'.format(name), '']
        if schema.get('description'):
            lines += [schema['description'].strip(), '']
        properties = schema.get('properties')
        if properties:
            required = set(schema.get('required', []))
            lines += ['| field | type | meaning |', '|---|---|---|']
            for field, sub in properties.items():
                _, resolved = self.resolve(sub)
                lines.append('| `{}`{} | {} | {} |'.format(field, ' (required)' if field in required else '',
                                                         self.cell(self.type_of(sub)),
                                                         self.cell(resolved.get('description', ''))))
            lines.append('')
        elif schema.get('type') and schema.get('type') != 'object':
            lines += ['{}'.format(self.type_of(schema)), '']
        if 'example' in schema and isinstance(schema['example'], dict):
            lines += ['Example:', '', '```yaml', yaml.safe_dump(schema['example'], sort_keys=False).rstrip(), '```',
                      '']
        return lines

    def render(self):
        info = self.spec['info']
        lines = [
            '# REST API reference (broker)', '',
            '<!-- Generated from docs/openapi.yaml by deploy/tools/render_rest_api.py: edit those, not this file. -->',
            '',
            '{} (OpenAPI {}, API version {}). Worked examples with curl and faice: '
            '[user-guide.md](user-guide.md); the machine-readable document: [openapi.yaml](openapi.yaml).'.format(
                info['title'], self.spec['openapi'], info['version']), '',
        ]
        servers = self.spec.get('servers', [])
        if servers:
            lines += ['Base URL: ' + ', '.join('`{}` ({})'.format(s['url'], s.get('description', ''))
                                               for s in servers), '']
        lines += [info.get('description', '').strip(), '']
        schemes = self.spec.get('components', {}).get('securitySchemes', {})
        if schemes:
            lines += ['Authentication schemes:', '']
            for name, scheme in schemes.items():
                lines.append('- `{}`: HTTP {}; {}'.format(name, scheme.get('scheme', scheme.get('type')),
                                                         scheme.get('description', '')))
            lines.append('')
        lines += ['## Routes', '']
        for path, item in self.spec['paths'].items():
            for method in METHODS:
                if method in item:
                    summary = item[method].get('summary', '')
                    anchor = '{}-{}'.format(method, path).lower()
                    anchor = ''.join(c for c in anchor if c.isalnum() or c in '-_ ').replace(' ', '-')
                    lines.append('- [`{} {}`](#{}): {}'.format(method.upper(), path, anchor, summary))
        lines.append('')
        for path, item in self.spec['paths'].items():
            for method in METHODS:
                if method in item:
                    lines += self.operation(path, method, item[method], item)
        schemas = self.spec.get('components', {}).get('schemas', {})
        if schemas:
            lines += ['## Schemas', '']
            for name, schema in schemas.items():
                lines += self.schema(name, schema)
        return '\n'.join(lines).rstrip() + '\n'


def render(openapi_path=OPENAPI):
    with open(openapi_path) as f:
        return Renderer(yaml.safe_load(f)).render()


def main(argv=None):
    parser = argparse.ArgumentParser(description='Render docs/openapi.yaml as docs/rest-api.md.')
    parser.add_argument('--check', action='store_true', help='only compare; exit 1 when they differ')
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print('{} is not the rendering of {}: run python3 deploy/tools/render_rest_api.py'.format(
                OUTPUT.relative_to(REPO), OPENAPI.relative_to(REPO)), file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print('wrote {}'.format(OUTPUT.relative_to(REPO)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
