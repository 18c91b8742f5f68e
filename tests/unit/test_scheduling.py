"""Pure parts of scheduling: merged queues and their heads, connector checks once per experiment, engine errors."""
import hypothesis
import requests

from cc_agency.controller import jobs
from cc_agency.controller.engines import describe_connection_error
from cc_agency.controller.placement import Gpu, NodeCapacity, Placer
from cc_agency.controller.queue_heads import QueueHeads
from cc_agency.controller.scheduler import concurrency_limit, merge_by_seq, page_limit

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


def test_page_limit_is_what_the_free_ram_could_take():
    nodes = [NodeCapacity('a', 8192, 1024, gpus=[Gpu(0, 4096), Gpu(1, 2048)], used_gpu_ids=[0]),
             NodeCapacity('b', 4096, 0), NodeCapacity('c', 65536, 0, online=False)]
    assert page_limit(Placer(nodes, 'spread')) == (7168 + 4096) // 256


@hypothesis.given(hypothesis.strategies.lists(hypothesis.strategies.lists(
    hypothesis.strategies.integers(min_value=0, max_value=10 ** 4), max_size=8, unique=True), max_size=6),
    hypothesis.strategies.integers(min_value=0, max_value=40))
def test_merge_by_seq_is_oldest_first_and_starts_a_queue_only_when_its_turn_may_come(queues, taken):
    seqs = sorted(set(seq for queue in queues for seq in queue))
    queues = [sorted(set(queue) - {seq for other in queues[:i] for seq in other}) for i, queue in enumerate(queues)]
    started = []

    def source(index, queue):
        started.append(index)
        yield from ({'seq': seq} for seq in queue)

    merged = merge_by_seq([(queue[0] if queue else 0, source(i, queue)) for i, queue in enumerate(queues)])
    out = [batch['seq'] for batch, _ in zip(merged, range(taken))]
    assert out == seqs[:taken]
    if out and len(out) < len(seqs):  # a queue is started only if it may hold the next batch to hand out
        next_seq = seqs[len(out)]
        assert all(not queues[index] or queues[index][0] <= next_seq for index in started)


def test_queue_heads_never_keep_a_head_computed_before_a_requeue():
    heads = QueueHeads()
    head, version = heads.get('e', 100)
    assert head == 100
    heads.advance('e', version, 150)
    assert heads.get('e', 100)[0] == 150
    head, version = heads.get('e', 100)
    heads.forget('e')  # a batch below 150 went back to the queue while a pass was reading
    heads.advance('e', version, 180)
    assert heads.get('e', 100)[0] == 100
    heads.keep_only(set())
    assert heads.get('e', 7) == (7, 0)


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
