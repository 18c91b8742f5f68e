"""Pure parts of scheduling: the queue query of a pass, connector checks once per experiment, engine error lines."""
import requests

from cc_agency.controller import jobs
from cc_agency.controller.engines import describe_connection_error
from cc_agency.controller.placement import Gpu, NodeCapacity, Placer
from cc_agency.controller.scheduler import concurrency_limit, page_limit, queue_filter

IMAGE = 'registry.example/lab/tool:1'


def connector(command='red-connector-http', mount=None):
    value = {'command': command, 'access': {'url': 'u'}}
    if mount is not None:
        value['mount'] = mount
    return value


BATCH = {
    'inputs': {'a': {'class': 'File', 'connector': connector()},
               'b': [{'class': 'Directory', 'connector': connector('red-connector-ssh')}],
               'c': {'class': 'Directory', 'connector': connector('red-connector-ssh', mount=True)},
               'n': 3},
    'outputs': {'out': {'class': 'File', 'connector': connector()}, 'log': {'class': 'stdout',
                                                                            'connector': connector()}},
}


def experiment(**fields):
    doc = {'container': {'settings': {'image': {'url': IMAGE}}}, 'registrationComplete': True,
           'cli': {'inputs': {'a': {'type': 'File'}}, 'outputs': {}}}
    doc.update(fields)
    return doc


def test_connector_check_entries_name_image_command_and_mode():
    assert jobs.connector_check_entries(BATCH, IMAGE) == [IMAGE + '|' + entry for entry in (
        'red-connector-http|cli-version', 'red-connector-http|receive-file-validate',
        'red-connector-http|send-file-validate', 'red-connector-ssh|cli-version', 'red-connector-ssh|mount-dir-validate',
        'red-connector-ssh|receive-dir-validate')]


def test_checks_run_until_every_check_of_the_batch_passed_once():
    assert jobs.connector_checks_needed(BATCH, experiment())
    passed = jobs.connector_check_entries(BATCH, IMAGE)
    assert not jobs.connector_checks_needed(BATCH, experiment(connectorChecksPassed=[IMAGE] + passed))
    assert jobs.connector_checks_needed(BATCH, experiment(connectorChecksPassed=[IMAGE] + passed[:-1]))
    other_image = [entry.replace(IMAGE, 'other:1') for entry in passed]
    assert jobs.connector_checks_needed(BATCH, experiment(connectorChecksPassed=other_image))
    assert not jobs.connector_checks_needed(BATCH, experiment(disableConnectorValidation=True))
    job = jobs.job_file({'_id': 'x', **BATCH}, experiment(cli={}, connectorChecksPassed=passed))
    assert job['options']['validateConnectors'] is False and job['options']['checkConnectorVersions'] is False
    job = jobs.job_file({'_id': 'x', **BATCH}, experiment(cli={}))
    assert job['options']['validateConnectors'] is True and job['options']['checkConnectorVersions'] is True


def test_one_batch_at_a_time_until_the_first_checks_passed():
    assert jobs.connector_checks_pending(experiment())
    assert concurrency_limit(experiment()) == 1
    assert not jobs.connector_checks_pending(experiment(connectorChecksPassed=[IMAGE]))
    assert concurrency_limit(experiment(connectorChecksPassed=[IMAGE])) is None
    assert concurrency_limit(experiment(connectorChecksPassed=[IMAGE],
                                        execution={'settings': {'batchConcurrencyLimit': 4}})) == 4
    assert not jobs.connector_checks_pending(experiment(disableConnectorValidation=True))
    no_connectors = experiment(cli={'inputs': {'script': {'type': 'string'}}, 'outputs': {}})
    assert not jobs.connector_checks_pending(no_connectors)
    assert jobs.connector_checks_pending(experiment(cli={'inputs': {}, 'outputs': {'o': {'type': 'stdout'}}}))


def test_only_failed_checks_are_permanent():
    assert jobs.agent_failure_is_permanent({'state': 'failed', 'connectorChecks': 'failed'})
    assert not jobs.agent_failure_is_permanent({'state': 'failed', 'connectorChecks': 'passed'})
    assert not jobs.agent_failure_is_permanent({'state': 'failed'})
    assert not jobs.agent_failure_is_permanent(None)


def test_queue_filter_asks_for_what_fits_now_or_never_fits():
    nodes = [NodeCapacity('a', 8192, 1024, gpus=[Gpu(0, 4096), Gpu(1, 2048)], used_gpu_ids=[0]),
             NodeCapacity('b', 4096, 0), NodeCapacity('c', 65536, 0, online=False)]
    placer = Placer(nodes, 'spread')
    query = queue_filter(placer, {'e2', 'e1'}, after=4711)
    assert query == {
        'state': 'registered',
        'experimentId': {'$nin': ['e1', 'e2']},
        'seq': {'$gt': 4711},
        '$or': [{'requirements.ramMiB': {'$lte': 7168}, 'requirements.gpuVramMiB.1': {'$exists': False}},
                {'requirements.ramMiB': {'$gt': 65536}},
                {'requirements.gpuVramMiB.2': {'$exists': True}},
                {'requirements.gpuVramMiB': {'$gt': 4096}}]}
    assert page_limit(placer) == (7168 + 4096) // 256


def test_engine_errors_say_what_to_fix():
    url = 'tcp://127.0.0.1:2376'
    ssl = requests.exceptions.SSLError("HTTPSConnectionPool: Max retries (Caused by SSLError(SSLCertVerificationError"
                                       "(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to "
                                       "get local issuer certificate (_ssl.c:1006)')))")
    assert describe_connection_error(ssl, url, 10) == (
        "TLS with tcp://127.0.0.1:2376 failed: the engine's certificate is not signed by the CA in tls.verify "
        "([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate)")
    refused = requests.exceptions.ConnectionError('[Errno 111] Connection refused')
    assert describe_connection_error(refused, url, 10) == 'connection to {} refused (is the engine running?)'.format(url)
    timeout = requests.exceptions.ReadTimeout('read timed out')
    assert describe_connection_error(timeout, url, 10) == 'no answer from {} within 10 s'.format(url)
