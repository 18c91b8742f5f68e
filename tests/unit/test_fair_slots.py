"""A node's start slots (cc_agency/controller/fair_slots.py): at most `size` at once, and a freed slot goes to the
waiter whose user has the fewest batches on the node, oldest first among equals."""
import threading
import time

from hypothesis import given, settings, strategies as st

from cc_agency.controller.fair_slots import FairSlots

WAIT_S = 10


def _wait_until(condition):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, 'not reached in {} s'.format(WAIT_S)
        time.sleep(0.001)


def _grant_order(size, priorities):
    """Fill the slots, queue one waiter per priority (in this order), free the slots: the order of the grants."""
    slots = FairSlots(size)
    granted, release_first = [], threading.Event()
    lock = threading.Lock()

    def holder():
        with slots.slot(0):
            release_first.wait(WAIT_S)

    def waiter(index, priority):
        with slots.slot(priority):
            with lock:
                granted.append(index)

    holders = [threading.Thread(target=holder) for _ in range(size)]
    for thread in holders:
        thread.start()
    _wait_until(lambda: slots._held == size)
    waiters = []
    for index, priority in enumerate(priorities):
        waiters.append(threading.Thread(target=waiter, args=(index, priority)))
        waiters[-1].start()
        _wait_until(lambda: slots.waiting() == index + 1)  # queued in this order
    release_first.set()
    for thread in holders + waiters:
        thread.join(WAIT_S)
    return granted


def test_a_freed_slot_goes_to_the_user_with_the_fewest_batches_on_the_node_before_earlier_waiters():
    # a sweep's starts (10 batches of its user on the node) queued first, then a colleague's single batch
    order = _grant_order(1, [10, 10, 10, 1])
    assert order[0] == 3
    assert order[1:] == [0, 1, 2]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_grants_go_by_priority_then_arrival(priorities):
    # one slot, so that the order of the grants is the order in which the waiters got in
    order = _grant_order(1, priorities)
    assert order == sorted(range(len(priorities)), key=lambda index: (priorities[index], index))


def test_never_more_holders_than_slots_and_a_free_slot_is_taken_at_once():
    slots = FairSlots(2)
    inside, most = [0], [0]
    lock = threading.Lock()

    def run(priority):
        with slots.slot(priority):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.005)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=run, args=(index % 3,)) for index in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert most[0] == 2
    assert slots.waiting() == 0
    started = time.monotonic()
    with slots.slot(99):  # nobody else: no wait whatever the priority
        assert time.monotonic() - started < 1


def test_a_waiter_that_is_interrupted_leaves_the_queue_and_the_others_go_on():
    slots = FairSlots(1)
    release = threading.Event()
    outcome = []

    class Interrupted(Exception):
        pass

    def holder():
        with slots.slot(0):
            release.wait(WAIT_S)

    def interrupted_wait(*args):
        raise Interrupted()

    first = threading.Thread(target=holder)
    first.start()
    _wait_until(lambda: slots._held == 1)
    # the best waiter is interrupted while it waits (its condition wait raises)
    real_wait = slots._changed.wait
    slots._changed.wait = interrupted_wait
    try:
        with slots.slot(0):
            outcome.append('granted')
    except Interrupted:
        outcome.append('interrupted')
    slots._changed.wait = real_wait
    assert outcome == ['interrupted'] and slots.waiting() == 0
    done = []

    def next_waiter():
        with slots.slot(5):
            done.append(True)

    later = threading.Thread(target=next_waiter)
    later.start()
    release.set()
    later.join(WAIT_S)
    first.join(WAIT_S)
    assert done == [True]
