"""The seed's configuration file, and cc-agency 9.x's, are accepted as written; a wrong one fails with one line
naming the key (and never echoing a secret)."""
import logging
import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from cc_agency.config import (NO_EFFECT_KEYS, ConfigError, apply_defaults, check_config, image_pull_policy,
                              load_config, wake_bind_url, wake_connect_url, warn_no_effect_keys)

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


def test_output_limit_and_gpu_detection_keys(tmp_path):
    conf = yaml.safe_load(SEED)
    assert load_config(write(tmp_path, yaml.safe_dump(conf)))['controller']['max_output_bytes'] == 16 * 1024 * 1024
    conf['controller']['max_output_bytes'] = 1024
    conf['controller']['docker']['nodes']['node2']['hardware'] = {'gpu_blacklist': [0], 'gpu_detection_image': 'i:1'}
    loaded = load_config(write(tmp_path, yaml.safe_dump(conf)))
    assert loaded['controller']['max_output_bytes'] == 1024
    for wrong, key in ((100, 'controller.max_output_bytes'), (2 ** 40, 'controller.max_output_bytes'),
                       ('16M', 'controller.max_output_bytes')):
        conf['controller']['max_output_bytes'] = wrong
        with pytest.raises(ConfigError, match='config key ' + key):
            check_config(conf)
    conf['controller']['max_output_bytes'] = 1024
    conf['controller']['docker']['nodes']['node2']['hardware']['gpu_detection_image'] = ''
    with pytest.raises(ConfigError, match='hardware.gpu_detection_image'):
        check_config(conf)


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


# ------------------------------------------------------------------------------------- cc-agency 9.x files

CONFIGS = Path(__file__).resolve().parents[1] / 'configs'
NINE_THREE = CONFIGS / 'cc-agency-9.3.yml'          # 9.3's installation guide, as written there
NINE_ALL_KEYS = CONFIGS / 'cc-agency-9.x-all-keys.yml'  # every key of 9.3's configuration schema


def test_a_9_3_file_loads_as_it_is_and_wakes_over_its_unix_socket(caplog):
    with caplog.at_level(logging.WARNING, logger='cc_agency.config'):
        conf = load_config(str(NINE_THREE))
    socket_path = os.path.expanduser('~/.cache/cc-agency-controller.sock')
    assert wake_connect_url(conf) == 'ipc://' + socket_path
    assert conf['controller']['scheduling'] == {'strategy': 'spread', 'attempts_to_fail': 3,
                                                'pass_interval_seconds': 2, 'batch_concurrency_limit': 64,
                                                'policy': 'fair'}
    assert conf['mongo'] == {'db': 'ccagency', 'username': 'ccadmin', 'password': 'SECRET', 'host': 'localhost',
                             'port': 27017}
    assert sorted(conf['controller']['docker']['nodes']) == ['node1', 'node2', 'node3']
    # the trustee is the one key of that file without effect here: one line, and no secret in it
    assert [r.getMessage() for r in caplog.records] == [
        'config key trustee (cc-agency 9.x) has no effect here: no trustee service is used: secrets stay in MongoDB '
        'until their batch or experiment ends, then are voided']


def test_every_9_x_key_loads_with_one_warning_per_key_without_effect(caplog):
    with caplog.at_level(logging.WARNING, logger='cc_agency.config'):
        conf = load_config(str(NINE_ALL_KEYS))
    assert conf['broker']['auth']['jwt']['access_token_expires'] == 900
    assert conf['mongo']['host'] == 'db.example.com' and conf['mongo']['port'] == 27018
    warned = [r.getMessage().split(' (cc-agency 9.x)')[0] for r in caplog.records]
    # notification_hooks, allow_insecure_capabilities, image_prune_duration, gpu_blacklist have their 9.x effect here
    assert warned == ['config key trustee', 'config key cloud']
    assert conf['controller']['docker']['allow_insecure_capabilities'] is True
    assert conf['controller']['docker']['image_prune_duration'] == 604800
    text = ' '.join(r.getMessage() for r in caplog.records)
    for secret in ('trustee-secret', 'cloud-secret', 'hook-secret', 'mongo-secret', 'a-long-random-jwt-secret'):
        assert secret not in text


def test_9_x_keys_asking_for_nothing_are_not_warned_about(caplog):
    conf = yaml.safe_load(NINE_THREE.read_text())
    del conf['trustee']
    conf['controller']['notification_hooks'] = []
    with caplog.at_level(logging.WARNING, logger='cc_agency.config'):
        check_config(conf)
        warn_no_effect_keys(conf)   # allow_insecure_capabilities: false is what happens here anyway
    assert caplog.records == []


def test_cloud_enable_true_is_refused_with_one_line(tmp_path):
    conf = yaml.safe_load(NINE_ALL_KEYS.read_text())
    conf['cloud']['enable'] = True
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, yaml.safe_dump(conf)))
    assert str(error.value) == ('config key cloud.enable: cc-cloud is not supported by this agency; set it to false '
                                'or remove the cloud section')


@pytest.mark.parametrize('edit, expected', [
    (lambda c: c['controller'].update(bind_port=6001), 'config key controller.bind_port: give either '
                                                       'controller.bind_socket_path'),
    (lambda c: c['controller'].update(bind_socket_path='/tmp/' + 'x' * 110), 'controller.bind_socket_path: longer '
                                                                              'than 107 bytes'),
    (lambda c: c['controller'].update(bind_socket_path=6001), 'controller.bind_socket_path: 6001 is not of type'),
    (lambda c: c['trustee'].pop('password'), 'config key trustee.password: is required'),
    (lambda c: c['trustee'].update(password=12345), 'config key trustee.password: must be of type string'),
    (lambda c: c['cloud'].update(enable='yes'), 'config key cloud.enable'),
    (lambda c: c['cloud'].update(sshPort=0), 'config key cloud.sshPort'),
    (lambda c: c['broker']['auth']['jwt'].update(access_token_expires='15m'), 'broker.auth.jwt.access_token_expires'),
    (lambda c: c['broker']['auth']['jwt'].update(secret_key=42), 'config key broker.auth.jwt.secret_key: must be '
                                                                 'of type string'),
    (lambda c: c['broker']['auth']['jwt'].update(algorithm='HS256'), 'broker.auth.jwt: unknown key'),
    (lambda c: c['controller']['docker'].update(allow_insecure_capabilities='no'),
     'controller.docker.allow_insecure_capabilities'),
    (lambda c: c['controller']['docker'].update(image_prune_duration=-1), 'controller.docker.image_prune_duration'),
    (lambda c: c['controller']['notification_hooks'][0].pop('url'), 'controller.notification_hooks.0.url: is '
                                                                   'required'),
    (lambda c: c['controller']['notification_hooks'][0]['auth'].update(password=None),
     'config key controller.notification_hooks.0.auth.password: must be of type string'),
    (lambda c: c['controller']['notification_hooks'][0].update(secret=42),
     'config key controller.notification_hooks.0.secret: must be of type string'),
    (lambda c: c['controller']['notification_hooks'][0].update(url='ftp://hooks.example.com/cc'),
     'config key controller.notification_hooks.0.url: '),
    (lambda c: c['controller'].update(notification_retry_base_seconds=0),
     'config key controller.notification_retry_base_seconds: '),
    (lambda c: c['controller'].update(metrics={'bind_host': '127.0.0.1'}),
     'config key controller.metrics.bind_port: is required'),
    (lambda c: c['controller'].update(metrics={'bind_host': '127.0.0.1', 'bind_port': 9100, 'path': '/m'}),
     'config key controller.metrics: unknown key'),
    (lambda c: c['controller']['docker']['nodes']['gpu-node_1']['hardware'].update(gpu_blacklist=['0']),
     'hardware.gpu_blacklist.0'),
    (lambda c: c['mongo'].update(port='27017'), 'config key mongo.port'),
    (lambda c: c['mongo'].update(password=123456), 'config key mongo.password: must be of type string'),
])
def test_wrong_9_x_keys_are_named(tmp_path, edit, expected):
    conf = yaml.safe_load(NINE_ALL_KEYS.read_text())
    edit(conf)
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, yaml.safe_dump(conf)))
    message = str(error.value)
    assert expected in message and '\n' not in message
    for secret in ('12345', '123456', 'trustee-secret', 'mongo-secret', 'hook-secret'):
        assert secret not in message


def test_the_seed_s_wake_keys_are_all_needed_without_a_socket_path(tmp_path):
    conf = yaml.safe_load(SEED)
    del conf['controller']['bind_host']
    with pytest.raises(ConfigError, match='^config key controller.bind_host: is required'):
        load_config(write(tmp_path, yaml.safe_dump(conf)))


def test_seed_file_wakes_over_tcp_and_keeps_its_scheduling(tmp_path):
    conf = load_config(write(tmp_path, SEED))
    assert wake_connect_url(conf) == 'tcp://127.0.0.1:6001'
    assert wake_bind_url(conf) == 'tcp://127.0.0.1:6001'
    assert conf['controller']['scheduling']['batch_concurrency_limit'] == 64
    conf['controller']['bind_host'] = '::1'
    assert wake_bind_url(conf) == 'tcp://[::1]:6001'


def test_batch_concurrency_limit_is_configurable_and_bounded(tmp_path):
    conf = yaml.safe_load(SEED)
    conf['controller']['scheduling']['batch_concurrency_limit'] = 8
    assert load_config(write(tmp_path, yaml.safe_dump(conf)))['controller']['scheduling'][
        'batch_concurrency_limit'] == 8
    conf['controller']['scheduling']['batch_concurrency_limit'] = 0
    with pytest.raises(ConfigError, match='controller.scheduling.batch_concurrency_limit'):
        load_config(write(tmp_path, yaml.safe_dump(conf)))


def test_the_bind_url_makes_the_socket_directory_private(tmp_path):
    conf = {'controller': {'bind_socket_path': str(tmp_path / 'run' / 'cc.sock')}}
    assert wake_bind_url(conf) == 'ipc://{}'.format(tmp_path / 'run' / 'cc.sock')
    assert wake_connect_url(conf) == wake_bind_url(conf)
    assert stat.S_IMODE((tmp_path / 'run').stat().st_mode) == 0o700


def test_the_operator_guide_shows_the_9_3_file_the_tests_load():
    guide = (Path(__file__).resolve().parents[2] / 'docs' / 'operator-guide.md').read_text()
    section = guide[guide.index('## 16. Moving from cc-agency 9.x'):]
    [block] = re.findall(r'^```yaml cc-agency 9.x\n(.*?)^```$', section, re.M | re.S)
    tested = yaml.safe_load(NINE_THREE.read_text())
    tested['controller']['docker']['nodes'] = {}   # the tests' file adds the nodes of 9.3's "Docker Cluster" step
    assert yaml.safe_load(block) == tested
    for key, _, _ in NO_EFFECT_KEYS:   # every key without effect is named there
        assert '`{}'.format(key.replace('.*.', '.NAME.')) in section, key


@pytest.mark.parametrize('docker_keys, policy', [
    ({}, 'if-not-present'),  # the registry check per experiment needs a pull of images from a registry
    ({'core_image': {'url': 'x', 'disable_pull': True}}, 'never'),  # the seed's key keeps its meaning
    ({'core_image': {'url': 'x', 'disable_pull': True}, 'image_pull_policy': 'never'}, 'never'),
    ({'image_pull_policy': 'always'}, 'always'),
    ({'core_image': {'url': 'x', 'disable_pull': False}, 'image_pull_policy': 'never'}, 'never'),
])
def test_image_pull_policy_by_its_key_or_the_seeds_disable_pull(docker_keys, policy):
    conf = yaml.safe_load(SEED)
    conf['controller']['docker'].pop('core_image')
    conf['controller']['docker'].update(docker_keys)
    check_config(conf)
    assert image_pull_policy(conf['controller']['docker']) == policy


def test_a_pull_policy_that_contradicts_disable_pull_is_refused_with_one_line(tmp_path):
    conf = yaml.safe_load(SEED)
    conf['controller']['docker']['core_image']['disable_pull'] = True
    conf['controller']['docker']['image_pull_policy'] = 'always'
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, yaml.safe_dump(conf)))
    assert str(error.value) == ('config key controller.docker.image_pull_policy: always contradicts '
                                'core_image.disable_pull: True (which means never); set one of them')
    conf['controller']['docker']['image_pull_policy'] = 'sometimes'
    with pytest.raises(ConfigError, match='config key controller.docker.image_pull_policy: .sometimes. is not one'):
        check_config(conf)


def test_image_keys_default_to_no_pruning_and_no_fuse():
    conf = yaml.safe_load(SEED)
    check_config(conf)
    docker_conf = apply_defaults(conf)['controller']['docker']
    assert docker_conf['allow_insecure_capabilities'] is False
    assert docker_conf['image_prune_duration'] == 0
    assert docker_conf['image_prune_interval_seconds'] == 60
    conf['controller']['docker']['image_prune_interval_seconds'] = 0
    with pytest.raises(ConfigError, match='controller.docker.image_prune_interval_seconds'):
        check_config(conf)
