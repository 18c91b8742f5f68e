"""How a read in registration order is cut into ranges of sequence numbers, and which filter of a list leads the
read of a page (pure)."""
from cc_agency.broker.listing import NOTHING, split_query
from cc_agency.seq_order import seq_ranges


def test_ranges_start_as_wide_as_the_page_and_grow_until_everything_is_covered():
    assert list(seq_ranges(1, 1000, 100, ascending=False)) == [(901, 1000), (501, 900), (1, 500)]
    assert list(seq_ranges(1, 1000, 100, ascending=True)) == [(1, 100), (101, 500), (501, 1000)]
    assert list(seq_ranges(1, 1000, 5000)) == [(1, 1000)]
    assert list(seq_ranges(40, 60, 5, ascending=False, growth=2)) == [(56, 60), (46, 55), (40, 45)]
    assert list(seq_ranges(1, 0, 100)) == []  # nothing registered yet


def test_ranges_cover_each_number_once():
    for low, high, width, ascending in [(1, 997, 3, False), (5, 5, 1, True), (10, 12345, 100, True), (3, 77, 0, False)]:
        ranges = list(seq_ranges(low, high, width, ascending))
        numbers = [n for first, last in ranges for n in range(first, last + 1)]
        assert sorted(numbers) == list(range(low, high + 1))
        assert [first for first, _ in ranges] == sorted((first for first, _ in ranges), reverse=not ascending)


def test_username_then_state_leads_the_read_other_filters_follow():
    assert split_query({'username': 'u', 'state': 's', 'node': 'n'}) == ({'username': 'u'}, {'state': 's', 'node': 'n'})
    assert split_query({'state': 's', 'experimentId': 'e'}) == ({'state': 's'}, {'experimentId': 'e'})
    assert split_query({'node': 'n', 'registrationComplete': True}) == ({}, {'node': 'n', 'registrationComplete': True})
    assert split_query({'username': NOTHING, 'state': 's'}) == ({'state': 's'}, {'username': NOTHING})
    assert split_query({}) == ({}, {})
