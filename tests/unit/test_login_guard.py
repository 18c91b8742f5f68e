"""cc_agency.login_guard without a database: when failures block, how client addresses are counted, and the cap
on concurrent password checks."""
import threading
import time

import pytest
from hypothesis import given, strategies as st

from cc_agency import login_guard
from cc_agency.login_guard import PasswordCheckSlots, address_key, blocked_for_s


def test_blocked_once_the_limit_is_reached_until_the_oldest_counted_failure_leaves_the_window():
    assert blocked_for_s([100.0, 101.0], limit=3, window_s=30, at=102.0) == 0
    # three failures at 100, 101, 102: refused until 100 + 30
    assert blocked_for_s([100.0, 101.0, 102.0], limit=3, window_s=30, at=103.0) == 28
    assert blocked_for_s([100.0, 101.0, 102.0], limit=3, window_s=30, at=130.5) == 0
    # failures older than the window do not count
    assert blocked_for_s([50.0, 101.0, 102.0], limit=3, window_s=30, at=103.0) == 0


@given(st.lists(st.floats(0, 200), max_size=30), st.integers(1, 10), st.floats(1, 100), st.floats(200, 1000))
def test_blocked_exactly_while_limit_failures_lie_within_the_window(ages_s, limit, window_s, at):
    times = [at - age_s for age_s in ages_s]
    seconds = blocked_for_s(times, limit, window_s, at)
    assert (seconds > 0) == (len([t for t in times if t > at - window_s]) >= limit)
    if seconds:
        # with no new failure the block is over after the answer, and not (much) before
        assert blocked_for_s(times, limit, window_s, at + seconds) == 0
        assert seconds == 1 or blocked_for_s(times, limit, window_s, at + seconds - 1.01) > 0


@pytest.mark.parametrize('address, key', [
    ('192.0.2.7', '192.0.2.7'),
    ('::ffff:192.0.2.7', '192.0.2.7'),
    ('2001:db8:1:2:aaaa::1', '2001:db8:1:2::/64'),
    ('2001:db8:1:2:bbbb::9', '2001:db8:1:2::/64'),  # one end user's /64: counted together
    (None, 'unknown'),
    ('not an address', 'not an address'),
])
def test_client_addresses_as_counted(address, key):
    assert address_key(address) == key


def test_the_address_limit_follows_num_login_attempts():
    assert login_guard.address_limit({'num_login_attempts': 3}) == 3 * login_guard.ADDRESS_ATTEMPTS_FACTOR


def test_no_more_password_checks_at_once_than_slots():
    slots = PasswordCheckSlots(slots=2, wait_s=10)
    running, most = [0], [0]
    lock = threading.Lock()

    def check():
        with slots:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 2


def test_a_check_that_cannot_get_a_slot_in_time_is_busy_and_frees_nothing():
    slots = PasswordCheckSlots(slots=1, wait_s=0.05)
    with slots:
        with pytest.raises(login_guard.Busy):
            with slots:
                pass
    with slots:  # the slot is free again after the first check, and the Busy one released nothing extra
        pass
