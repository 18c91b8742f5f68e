"""The seed's configuration file is accepted as written; a wrong one fails with one line naming the key."""
import pytest
import yaml

from cc_agency.config import ConfigError, load_config

SEED = """
broker:
  external_url: "https://example.com/cc"
  auth:
    num_login_attempts: 3
    block_for_seconds: 30
    tokens_valid_for_seconds: 86400  # 24 h

controller:
  external_url: "tcp://127.0.0.1:6001"
  bind_host: "127.0.0.1"
  bind_port: 6001
  docker:
    core_image:
      url: "docker.io/curiouscontainers/cc-core:5.4.0"
      disable_pull: False
    nodes:
      node1:
        base_url: "tcp://192.168.0.100:2376"
        tls:
          verify: "/home/cc/.docker/machine/machines/node1/ca.pem"
          client_cert:
            - "/home/cc/.docker/machine/machines/node1/cert.pem"
            - "/home/cc/.docker/machine/machines/node1/key.pem"
          assert_hostname: False
      node2:
        base_url: "tcp://192.168.0.101:2375"
      node3:
        base_url: "unix://var/run/docker.sock"
      gpu_node1:
        base_url: "tcp://192.168.0.101:2376"
        hardware:
          gpus:
            - id: 0
              vram: 1024
            - id: 1
              vram: 1024
  scheduling:
    strategy: 'spread'
    attempts_to_fail: 3

mongo:
  db: "ccagency"
  username: "ccadmin"
  password: "SECRET"
"""


def write(tmp_path, text):
    path = tmp_path / 'cc-agency.yml'
    path.write_text(text)
    return str(path)


def test_seed_config_loads_with_defaults(tmp_path):
    conf = load_config(write(tmp_path, SEED))
    assert conf['mongo']['host'] == 'localhost' and conf['mongo']['port'] == 27017
    assert conf['controller']['docker']['nodes']['gpu_node1']['hardware']['gpus'][1] == {'id': 1, 'vram': 1024}


def test_every_node_gets_the_confinement_defaults(tmp_path):
    conf = yaml.safe_load(SEED)
    conf['controller']['docker']['nodes']['node3'].update(cap_add=['CHOWN'], pids_limit=64, cpus=1.5)
    nodes = load_config(write(tmp_path, yaml.safe_dump(conf)))['controller']['docker']['nodes']
    assert {key: nodes['node2'].get(key) for key in ('cap_add', 'pids_limit', 'cpus', 'container_log_mib')} == {
        'cap_add': [], 'pids_limit': 1024, 'cpus': None, 'container_log_mib': 16}
    assert (nodes['node3']['cap_add'], nodes['node3']['pids_limit'], nodes['node3']['cpus']) == (['CHOWN'], 64, 1.5)


def test_config_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv('CC_AGENCY_CONF', write(tmp_path, SEED))
    assert load_config()['mongo']['db'] == 'ccagency'


@pytest.mark.parametrize('edit, expected', [
    (lambda c: c['controller']['scheduling'].update(strategy='random'), 'controller.scheduling.strategy'),
    (lambda c: c['mongo'].pop('db'), 'config key mongo.db: is required'),
    (lambda c: c['controller']['docker']['nodes']['node2'].pop('base_url'), 'nodes.node2.base_url: is required'),
    (lambda c: c['broker']['auth'].update(num_login_attempts='3'), 'broker.auth.num_login_attempts'),
    (lambda c: c['controller'].update(bind_port=70000), 'controller.bind_port'),
    (lambda c: c['controller']['docker']['nodes']['node3'].update(hardwre={}), 'nodes.node3: unknown key'),
    (lambda c: c['controller']['docker']['nodes']['node3'].update(cap_add=['sys admin']), 'nodes.node3.cap_add.0'),
    (lambda c: c['controller']['docker']['nodes']['node3'].update(pids_limit=0), 'nodes.node3.pids_limit'),
    (lambda c: c['controller']['docker']['nodes']['node3'].update(cpus=0), 'nodes.node3.cpus'),
])
def test_wrong_config_names_the_key(tmp_path, edit, expected):
    conf = yaml.safe_load(SEED)
    edit(conf)
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, yaml.safe_dump(conf)))
    assert expected in str(error.value)
    assert '\n' not in str(error.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        load_config(str(tmp_path / 'nope.yml'))
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_config(write(tmp_path, 'broker: [\n'))
