"""The examples of the docs, executed or checked against what they show.

- docs/user-guide.md: its `yaml file=red.yml` block is the RED, its `bash` blocks run in order as one script
  against a live agency (the demo's addresses replaced by the test's), its `faice exec` line runs on a terminal;
- docs/operator-guide.md: every configuration block is accepted by the agency's own config check, the unit, ini
  and site blocks are the files in deploy/, the config error shown is what the controller says, `ccagency
  --help` works, and the TLS commands make certificates that a `--tlsverify` engine and the controller work with;
- docs/rest-api.md: is the rendering of docs/openapi.yaml and documents exactly the routes the broker has;
- docs/architecture.md and the other pages: every `cc_agency/...` path they name exists;
- README.md: starts with the demo command and the test command.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.test_faice import _run_on_pty, experiment_id_from, faice, faice_env  # noqa: F401 (fixture)
from localcluster import FileServer
from localcluster.images import TEST_IMAGE

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / 'docs'
DEMO_BROKER = 'http://127.0.0.1:8080'
DEMO_FILES = 'http://127.0.0.1:8081'


def fenced_blocks(path):
    """[(info string, text)] of the ``` fenced blocks of a markdown file, in order."""
    return fenced_blocks_of(Path(path).read_text(), path)


def fenced_blocks_of(markdown, name='markdown'):
    blocks, info, lines = [], None, []
    for line in markdown.splitlines():
        if info is None:
            match = re.match(r'^```(.*)$', line)
            if match:
                info, lines = match.group(1).strip(), []
        elif line.startswith('```'):
            blocks.append((info, '\n'.join(lines) + '\n'))
            info = None
        else:
            lines.append(line)
    assert info is None, '{}: unclosed code block'.format(name)
    return blocks


def demo_module():
    spec = importlib.util.spec_from_file_location('cc_demo', str(REPO / 'deploy' / 'demo' / 'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ user guide

@pytest.fixture
def guide_agency(make_agency, engine, engine_client):
    """The demo's setting: user demo, image local/cc-demo:1, input texts on a file server."""
    engine_client.api.tag(TEST_IMAGE, 'local/cc-demo', '1')
    agency = make_agency({'local': {'base_url': engine.base_url, 'network': 'host'}})
    agency.create_user('demo', 'demo-pw-1')
    files = FileServer()
    for name, text in demo_module().TEXTS:
        files.add('/inputs/' + name, text + '\n')
    with files:
        yield agency, files


def _localise(text, agency, files):
    return text.replace(DEMO_BROKER, agency.url).replace(DEMO_FILES, files.base_url)


def test_user_guide_examples_run(guide_agency, tmp_path):
    agency, files = guide_agency
    blocks = fenced_blocks(DOCS / 'user-guide.md')
    [red_text] = [text for info, text in blocks if info == 'yaml file=red.yml']
    red = yaml.safe_load(red_text)
    assert red['execution']['settings']['access']['url'] == DEMO_BROKER
    (tmp_path / 'red.yml').write_text(_localise(red_text, agency, files))
    (tmp_path / '.cache' / 'demo').mkdir(parents=True)
    (tmp_path / '.cache' / 'demo' / 'demo-password').write_text('demo-pw-1\n')

    script = ['set -euo pipefail']
    for info, text in blocks:
        if info == 'bash':
            script.append(_localise(text, agency, files))
    assert len(script) >= 8, 'the user guide lost its examples'
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    result = subprocess.run(['bash', '-c', '\n'.join(script)], cwd=str(tmp_path), env=env, capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output + '\ncontroller log:\n' + agency.log('controller')[-3000:]

    assert '{"status":"ok"}' in output and '"agencyVersion"' in output
    assert '2 of 2 batches ended' in output
    assert re.search(r'\d+ words; most common: \[', output), output      # a batch's stdout
    assert output.rstrip().splitlines()[-2] == 'cancelled', output      # the cancel example
    assert '{"message":"invalid RED: ' in output, output   # the error example
    batches = yaml.safe_load((tmp_path / 'batches.json').read_text())
    assert [b['state'] for b in batches] == ['succeeded', 'succeeded'], batches
    counts = files.uploaded('/outputs/guide-zen.txt').decode().splitlines()
    assert counts[:3] == ['6 is', '6 better', '6 than'], counts
    assert files.uploaded('/outputs/guide-red.txt')


def test_user_guide_faice_example_runs(faice, guide_agency, tmp_path):  # noqa: F811 (fixture)
    agency, files = guide_agency
    blocks = fenced_blocks(DOCS / 'user-guide.md')
    [red_text] = [text for info, text in blocks if info == 'yaml file=red.yml']
    (tmp_path / 'red.yml').write_text(_localise(red_text, agency, files))
    [console] = [text for info, text in blocks if info == 'console' and '$ faice exec' in text]
    command = re.search(r'^\$ (faice exec .*)$', console, re.M).group(1).split()
    prompt = re.search(r'^(\w+) \(protected\):', console, re.M).group(1)

    status, output = _run_on_pty([faice] + command[1:], faice_env(tmp_path), str(tmp_path),
                                 [(re.escape(prompt) + r' \(protected\): ', 'demo-pw-1')])
    assert status == 0, output
    experiment_id = experiment_id_from(output)
    session = agency.session('demo', 'demo-pw-1')
    done = agency.wait_terminal(session, experiment_id, 2, timeout=120)
    assert sorted(b['state'] for b in done) == ['succeeded', 'succeeded'], done


# ------------------------------------------------------------------------------------------------ operator guide

def _deep_merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def test_operator_guide_files_are_the_deploy_files():
    blocks = [(info, text) for info, text in fenced_blocks(DOCS / 'operator-guide.md') if 'file=' in info]
    named = {info.split('file=', 1)[1].strip(): text for info, text in blocks}
    assert set(named) == {'deploy/uwsgi/ccagency-broker.ini', 'deploy/systemd/ccagency-controller.service',
                          'deploy/systemd/ccagency-broker.service', 'deploy/apache2/ccagency-broker.conf'}
    for path, text in named.items():
        assert text == (REPO / path).read_text(), '{} in docs/operator-guide.md differs from the file'.format(path)


def test_operator_guide_configuration_blocks_are_accepted():
    from cc_agency.config import check_config
    example = yaml.safe_load((REPO / 'cc-agency.example.yml').read_text())
    check_config(example)
    blocks = [text for info, text in fenced_blocks(DOCS / 'operator-guide.md') if info == 'yaml']
    assert len(blocks) >= 4
    for text in blocks:
        conf = yaml.safe_load(text)
        if set(conf) != {'broker', 'controller', 'mongo'}:   # a part: shown on top of the full example
            conf = _deep_merge(yaml.safe_load((REPO / 'cc-agency.example.yml').read_text()), conf)
        check_config(conf)


def test_operator_guide_config_error_example_is_what_the_controller_says(tmp_path):
    guide = (DOCS / 'operator-guide.md').read_text()
    [shown] = re.findall(r'`(ccagency-controller: config key [^`]+)`', guide)
    conf = yaml.safe_load((REPO / 'cc-agency.example.yml').read_text())
    conf['controller']['scheduling']['strategy'] = 'fastest'
    (tmp_path / 'bad.yml').write_text(yaml.safe_dump(conf))
    result = subprocess.run([sys.executable, '-m', 'cc_agency.controller.main', '-c', str(tmp_path / 'bad.yml')],
                            capture_output=True, text=True, cwd=str(REPO), timeout=60)
    assert result.returncode != 0 and result.stderr.strip() == shown, result.stderr


def test_operator_guide_cli_help_works():
    result = subprocess.run([sys.executable, '-m', 'cc_agency.cli.main', '--help'], capture_output=True, text=True,
                            cwd=str(REPO), timeout=60)
    assert result.returncode == 0
    for command in ('create-db-user', 'create-broker-user', 'drop-db-collections'):
        assert command in result.stdout
        assert command in (DOCS / 'operator-guide.md').read_text()


def test_operator_guide_tls_example_works(make_agency, file_server, tmp_path):
    """The openssl commands of "Engines over TLS" make a CA and certificates that a dockerd with --tlsverify and the
    controller, configured as the guide shows (tls.verify, tls.client_cert, assert_hostname), work with."""
    from tests import reds
    from localcluster import DockerEngine, load_images
    guide = (DOCS / 'operator-guide.md').read_text()
    section = guide[guide.index('## 12. Engines over TLS'):guide.index('## 13.')]
    [commands] = [text for info, text in fenced_blocks_of(section) if info == 'sh']
    # this machine's engine listens on 127.0.0.1; 2048-bit keys only to save test time
    commands = commands.replace('192.168.0.100', '127.0.0.1').replace('rsa:4096', 'rsa:2048')
    tls_dir = tmp_path / 'tls'
    tls_dir.mkdir()
    result = subprocess.run(['bash', '-euc', commands], cwd=str(tls_dir), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '--tlsverify --tlscacert ca.pem --tlscert server-cert.pem --tlskey' in ' '.join(section.split())

    engine = DockerEngine(name='tlsdoc', tls=True, tls_dir=str(tls_dir))   # dockerd --tlsverify with those files
    try:
        engine.start()
        client = engine.client()
        try:
            load_images([client], refs=(TEST_IMAGE,))
        finally:
            client.close()
        node = {'base_url': engine.tcp_url, 'network': 'host', 'tls': {
            'verify': str(tls_dir / 'ca.pem'), 'client_cert': [str(tls_dir / 'cert.pem'), str(tls_dir / 'key.pem')],
            'assert_hostname': False}}
        agency = make_agency({'tlsnode': node})
        agency.create_user('op', 'op-pw')
        session = agency.session('op', 'op-pw')
        file_server.add('/files/tls-in.txt', b'tls ')
        red = reds.red([reds.batch(file_server.base_url, name='tls-in.txt', out='tls-out.txt', word='x', times=1)])
        response = session.post(agency.url + '/red', json=red, timeout=30)
        assert response.status_code == 200, response.text
        [batch] = agency.wait_terminal(session, response.json()['experimentId'], 1, timeout=90)
        assert batch['state'] == 'succeeded' and batch['node'] == 'tlsnode', batch
        assert file_server.uploaded('/uploads/tls-out.txt') == b'tls x'
    finally:
        engine.stop(remove=True)


# ------------------------------------------------------------------------------------------------ REST reference

def _route_key(method, path):
    return '{} {}'.format(method.upper(), re.sub(r'[<{][^>}]*[>}]', '{}', path))


def test_rest_reference_lists_exactly_the_brokers_routes():
    from cc_agency.broker.factory import create_app
    conf = yaml.safe_load((REPO / 'cc-agency.example.yml').read_text())
    conf['mongo'] = {'host': '127.0.0.1', 'port': 9, 'db': 'unused'}   # never contacted here
    app = create_app(conf)
    routes = {_route_key(method, rule.rule) for rule in app.url_map.iter_rules() if rule.endpoint != 'static'
              for method in rule.methods - {'HEAD', 'OPTIONS'}}
    documented = {_route_key(*heading.split(' ', 1)) for heading in
                  re.findall(r'^## `([A-Z]+ /[^`]*)`$', (DOCS / 'rest-api.md').read_text(), re.M)}
    assert documented == routes, 'undocumented: {}; not in the broker: {}'.format(
        sorted(routes - documented), sorted(documented - routes))


def test_rest_reference_is_the_rendering_of_the_openapi_document():
    """docs/rest-api.md is generated: `python3 deploy/tools/render_rest_api.py` after changing docs/openapi.yaml."""
    spec = importlib.util.spec_from_file_location('render_rest_api', str(REPO / 'deploy' / 'tools' /
                                                                        'render_rest_api.py'))
    renderer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(renderer)
    if (DOCS / 'openapi.yaml').exists():
        assert (DOCS / 'rest-api.md').read_text() == renderer.render(), \
            'docs/rest-api.md is out of date: run python3 deploy/tools/render_rest_api.py'
        openapi = yaml.safe_load((DOCS / 'openapi.yaml').read_text())
        assert openapi['openapi'].startswith('3.')
    else:   # the hand-written reference of before the OpenAPI document
        assert 'Written by hand' in (DOCS / 'rest-api.md').read_text()


# ------------------------------------------------------------------------------------------------ all pages

def test_code_paths_named_in_the_docs_exist():
    pages = [DOCS / name for name in ('architecture.md', 'operator-guide.md', 'user-guide.md', 'rest-api.md')]
    pages.append(REPO / 'README.md')
    for page in pages:
        for path in set(re.findall(r'\b((?:cc_agency|deploy|tests|docs|localcluster)/[\w./-]*\w)', page.read_text())):
            assert (REPO / path).exists(), '{} names {}, which does not exist'.format(page.name, path)
        for link in re.findall(r'\]\(([\w./-]+\.(?:md|yml))(?:#[\w-]+)?\)', page.read_text()):
            assert (page.parent / link).exists(), '{} links to {}'.format(page.name, link)


def test_readme_starts_with_the_demo_and_the_test_command():
    lines = (REPO / 'README.md').read_text().splitlines()
    assert lines[0].startswith('```')
    assert lines[1].split('#')[0].strip() == 'bash deploy/demo/demo.sh'
    assert lines[2].split('#')[0].strip() == 'bash tests/run.sh'
    assert 'bash tests/run.sh' in (REPO / '.ci' / 'run').read_text()
    assert 'python3 -m pytest' in (REPO / 'tests' / 'run.sh').read_text()
