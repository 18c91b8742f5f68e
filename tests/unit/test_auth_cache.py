"""cc_agency.auth_cache: entries end at their deadline, never later than the token they stand for; the cache stays
bounded; password cache keys change with the stored hash and reveal nothing of the password."""
import threading

from hypothesis import given, strategies as st

from cc_agency.auth_cache import MAX_ENTRIES, TOKEN_CACHE_TTL_S, CredentialKeys, TtlCache, token_cache_deadline


def test_an_entry_lives_until_its_deadline_and_not_after():
    cache = TtlCache()
    cache.put('k', 'v', deadline=10.0)
    assert cache.get('k', now=9.999) == 'v'
    assert cache.get('k', now=10.0) is None
    assert cache.get('k', now=9.0) is None  # an ended entry is gone, whatever the clock says next


@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 100), st.floats(0, 100)), max_size=60))
def test_get_answers_the_last_put_of_a_key_before_its_deadline(operations):
    """Against a model: whatever the order of puts and gets, an answer is the latest value put for that key, and
    only while its deadline has not come."""
    cache, model = TtlCache(), {}
    for key, deadline, at in operations:
        cache.put(key, (key, deadline), deadline)
        model[key] = (key, deadline)
        probe = (key * 7) % 21
        expected = model.get(probe)
        if expected is not None and at >= expected[1]:
            expected = None
            del model[probe]
        assert cache.get(probe, at) == expected


def test_drop_and_drop_where_take_effect_at_once():
    cache = TtlCache()
    for name, user in (('t1', 'alice'), ('t2', 'alice'), ('t3', 'bob')):
        cache.put(name, {'username': user}, deadline=100)
    cache.drop('t3')
    assert cache.get('t3', 0) is None
    cache.put('t3', {'username': 'bob'}, deadline=100)
    cache.drop_where(lambda value: value['username'] == 'alice')
    assert cache.get('t1', 0) is None and cache.get('t2', 0) is None
    assert cache.get('t3', 0) == {'username': 'bob'}


def test_the_cache_stays_bounded_and_drops_the_oldest_first():
    cache = TtlCache(max_entries=3)
    for index in range(5):
        cache.put(index, index, deadline=100)
    assert len(cache) == 3
    assert [cache.get(index, 0) for index in range(5)] == [None, None, 2, 3, 4]
    assert TtlCache().max_entries == MAX_ENTRIES


def test_concurrent_puts_keep_the_bound():
    cache = TtlCache(max_entries=50)

    def fill(offset):
        for index in range(500):
            cache.put((offset, index), index, deadline=100)
    threads = [threading.Thread(target=fill, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 50


@given(st.floats(0, 1e6), st.floats(-1e4, 1e6), st.floats(0, 1e6))
def test_a_cached_token_is_never_trusted_beyond_the_ttl_or_its_expiry(now, expires_in_s, wall_now):
    deadline = token_cache_deadline(now, wall_now + expires_in_s, wall_now)
    assert now <= deadline <= now + TOKEN_CACHE_TTL_S + 1e-6
    assert deadline <= now + max(0.0, expires_in_s) + 1e-6


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_credential_keys_differ_when_any_part_differs(username, password, other_username, other_password):
    keys = CredentialKeys()
    stored = b'$2b$04$abcdefghijklmnopqrstuv'
    same = (username, password) == (other_username, other_password)
    assert (keys.key(username, password, stored) == keys.key(other_username, other_password, stored)) == same


def test_a_new_stored_hash_is_a_new_key_and_keys_are_per_process():
    keys = CredentialKeys()
    assert keys.key('alice', 'pw', b'$2b$04$old') != keys.key('alice', 'pw', b'$2b$04$new')
    assert keys.key('alice', 'pw', b'h') == keys.key('alice', 'pw', b'h')
    assert CredentialKeys().key('alice', 'pw', b'h') != keys.key('alice', 'pw', b'h')  # another random key
    assert keys.key('a:b', 'c', b'h') != keys.key('a', 'b:c', b'h')
    assert b'pw' not in keys.key('alice', 'pw', b'h')
