"""Pure decisions of the controller: an attempt's outcome, reconciliation plans, job files, transitions."""
import collections

import hypothesis
import hypothesis.strategies
import pytest
from bson import ObjectId

from cc_agency import batch_counts, transitions
from cc_agency.controller import jobs
from cc_agency.controller.reconcile import plan_reconciliation
from cc_agency.controller.runner import masked_agent_result, masked_failure, masked_stream, outcome_from_exit
from cc_agency.secrets import MASK, Masker
from cc_agency.transitions import AttemptFailed
from cc_agency.states import ALLOWED_TRANSITIONS, state_after_failure

OK = {'state': 'succeeded', 'process': {'returnCode': 0}}
FAILED = {'state': 'failed', 'debugInfo': ['command exited with code 3', 'boom']}


def test_outcomes():
    assert outcome_from_exit(OK, 0, False, 256, '') is OK
    with pytest.raises(AttemptFailed) as failure:
        outcome_from_exit(FAILED, 0, False, 256, '')
    assert failure.value.reasons == FAILED['debugInfo'] and not failure.value.permanent
    with pytest.raises(AttemptFailed) as failure:
        outcome_from_exit(FAILED, 0, True, 512, '')  # only the command was OOM-killed
    assert 'memory limit of 512 MiB' in failure.value.reasons[0] and failure.value.permanent
    with pytest.raises(AttemptFailed) as failure:
        outcome_from_exit(None, 137, False, 256, 'Traceback ... \n' + 'x' * 5000)
    assert '(killed)' in failure.value.reasons[0] and len(failure.value.reasons[1]) < 2100


def test_state_after_failure():
    assert state_after_failure(1, 3, True, False) == 'registered'
    assert state_after_failure(3, 3, True, False) == 'failed'
    assert state_after_failure(1, 3, False, False) == 'failed'
    assert state_after_failure(1, 3, True, True) == 'failed'


def test_the_retry_policy_of_a_failed_attempt():
    """One policy for the runner, reconciliation and a lost node: retried while attempts and the RED allow it."""
    flaky = AttemptFailed(['exit 1', 'stderr: boom'])
    retrying = {'execution': {'settings': {}}}
    state, debug_info = transitions.failure_record(1, 'n1', flaky, 3, retrying)
    assert state == 'registered'
    assert debug_info == ['attempt 1 on node n1 failed: exit 1', 'stderr: boom', 'retrying (1 of 3 attempts used)']
    assert transitions.failure_record(3, 'n1', flaky, 3, retrying)[0] == 'failed'
    assert transitions.failure_record(1, 'n1', AttemptFailed(['bad image'], permanent=True), 3, retrying)[0] == 'failed'
    for no_retry in ({'disableRetry': True}, {'execution': {'settings': {'retryIfFailed': False}}}, None):
        assert transitions.failure_record(1, 'n1', flaky, 3, no_retry)[0] == 'failed'


def test_reconciliation_plan():
    a, b, c, d, e = (ObjectId() for _ in range(5))
    containers = [
        {'id': 'ca', 'batchId': str(a), 'attempt': 1},  # processing, nobody watches: adopt
        {'id': 'cb', 'batchId': str(b), 'attempt': 1},  # batch is on attempt 2 now: stale
        {'id': 'cc', 'batchId': str(c), 'attempt': 2},  # watched by a thread: leave
        {'id': 'cx', 'batchId': 'garbage', 'attempt': 1},
        {'id': 'ce', 'batchId': str(e), 'attempt': 3},  # scheduled, nobody starts it: replaced when resumed
        {'id': 'ce2', 'batchId': str(e), 'attempt': 2},  # an older attempt of it: stale
    ]
    active = {a: {'attempts': 1, 'state': 'processing', 'usedGPUs': [1]},
              b: {'attempts': 2, 'state': 'processing'},
              c: {'attempts': 2, 'state': 'processing'},
              d: {'attempts': 1, 'state': 'scheduled', 'usedGPUs': [0, 2]},
              e: {'attempts': 3, 'state': 'scheduled'}}
    runs = {c: {'attempt': 2, 'node': 'n1', 'containerId': 'cc'}}
    adopt, resume, remove, vanished = plan_reconciliation('n1', containers, active, runs)
    assert adopt == [(a, 1, 'ca', (1,))]
    assert sorted(resume) == sorted([(d, 1, (0, 2)), (e, 3, ())])
    assert remove == ['cb', 'cx', 'ce2']
    assert vanished == [b]
    # a batch that a thread of this process starts is left to it, container or not
    runs[d] = {'attempt': 1, 'node': 'n1', 'containerId': None}
    runs[e] = {'attempt': 3, 'node': 'n1', 'containerId': None}
    assert plan_reconciliation('n1', containers, active, runs)[1] == []


def test_job_file_uses_unprefixed_access_and_archive_holds_job_privately():
    batch = {'_id': ObjectId(), 'inputs': {'f': {'class': 'File', 'connector': {'command': 'c', 'access': {
        '_user': 'u', 'password': 'p'}}}}, 'outputs': {}}
    job = jobs.job_file(batch, {'cli': {'x': 1}}, validate_connectors=False)
    assert job['inputs']['f']['connector']['access'] == {'user': 'u', 'password': 'p'}
    assert job['options']['validateConnectors'] is False
    import io
    import tarfile
    archive = tarfile.open(fileobj=io.BytesIO(jobs.container_archive(job, b'print(1)', uid=1000)))
    members = {m.name: m for m in archive.getmembers()}
    assert members['cc/job.json'].mode == 0o600 and members['cc/job.json'].uid == 1000
    assert members['cc/outputs'].isdir()


def test_terminal_transition_voids_secrets_in_the_same_write():
    batch = {'_id': 1, 'state': 'processing', 'inputs': {'f': {'class': 'File', 'connector': {
        'command': 'c', 'access': {'url': 'u', 'password': 'p'}}}}, 'outputs': {}}
    update = transitions.transition_update(batch, 'succeeded', node='n1')
    assert update['$set']['inputs']['f']['connector']['access'] == {'url': 'u', 'password': None}
    assert update['$push']['history']['$each'][0]['state'] == 'succeeded'
    assert 'inputs' not in transitions.transition_update(batch, 'registered')['$set']
    with pytest.raises(transitions.TransitionError):
        transitions.BatchLifecycle(None).cancel(dict(batch, state='succeeded'))


@hypothesis.given(hypothesis.strategies.lists(hypothesis.strategies.integers(min_value=0, max_value=10 ** 6),
                                              max_size=60), hypothesis.strategies.integers(min_value=1, max_value=8))
def test_state_counters_follow_any_sequence_of_allowed_transitions(choices, batch_count):
    """Counters changed by counter_update at each transition give what counting the batches gives (starting from
    the registration's count of queued batches)."""
    states = ['registered'] * batch_count
    counters = {'registered': batch_count}
    for choice in choices:
        index = choice % batch_count
        allowed = sorted(ALLOWED_TRANSITIONS[states[index]])
        if not allowed:
            continue
        to_state = allowed[choice % len(allowed)]
        update = batch_counts.counter_update(states[index], to_state)
        for key, delta in (update or {'$inc': {}})['$inc'].items():
            state = key.split('.', 1)[1]
            counters[state] = counters.get(state, 0) + delta
        states[index] = to_state
    assert batch_counts.counts_from(batch_count, counters) == dict(
        batch_counts.zero_counts(), **collections.Counter(states))


def test_what_an_attempt_keeps_is_masked_also_where_the_output_limit_cut_it():
    secret = 'https://h/x?sig=S1gn3d'
    masker = Masker([secret])
    result = {'state': 'failed', 'debugInfo': ['GET {} failed'.format(secret)],
              'streamFiles': {'stdout': '/cc/streams/stdout'}}
    masked = masked_agent_result(result, masker)
    assert masked['debugInfo'] == ['GET {} failed'.format(MASK)] and masked['streamFiles'] == result['streamFiles']
    # the limit kept the head of the stream: the value's start ends it
    head = ('x' * 100 + secret + ' ' + secret[:-3]).encode()
    assert masked_stream(head, masker, cut=True) == ('x' * 100 + MASK + ' ' + MASK).encode()
    assert masked_stream(head, masker, cut=False) == ('x' * 100 + MASK + ' ' + secret[:-3]).encode()
    binary = b'\xff\xfe\x00' + secret.encode() + b'\x80'
    assert masked_stream(binary, masker, cut=False) == b'\xff\xfe\x00' + MASK.encode() + b'\x80'
    failure = masked_failure(AttemptFailed(['lost {}'.format(secret)], permanent=True, ccagent=result), masker)
    assert failure.reasons == ['lost ' + MASK] and failure.permanent and failure.ccagent == masked


def test_only_stream_files_below_the_agent_root_are_read():
    named = {'streamFiles': {'stdout': '/cc/outputs/run.log', 'stderr': '/cc/../etc/shadow'}}
    assert jobs.stream_files(named) == {'stdout': '/cc/outputs/run.log'}
    assert jobs.stream_files({'streamFiles': {'stdout': 'relative', 'stderr': 5}}) == {}
    assert jobs.stream_files({'streamFiles': None}) == {} and jobs.stream_files({'streamFiles': 'x'}) == {}
    # no result (the agent was killed): what the command wrote until then, where the agent puts it by default
    assert jobs.stream_files(None) == {'stdout': '/cc/streams/stdout', 'stderr': '/cc/streams/stderr'}
