"""How a read in registration order is cut into ranges of sequence numbers, and which filter of a list leads the
read of a page (pure)."""
from hypothesis import given, settings, strategies as st

from cc_agency.broker.listing import NOTHING, split_query
from cc_agency.seq_order import next_width, read_ranges


class Matches:
    """The sequence numbers some query matches, read as read_ranges reads them; records the ranges."""

    def __init__(self, seqs, ascending):
        self.seqs = sorted(seqs, reverse=not ascending)
        self.ranges = []

    def read_range(self, first, last, skip, take):
        self.ranges.append((first, last))
        inside = [n for n in self.seqs if first <= n <= last]
        return len(inside), inside[skip:skip + take]


def test_a_page_whose_newest_few_do_not_match_costs_one_range_and_a_narrow_second():
    """The registered batches, newest first, after three newer batches of another user have run."""
    matches = Matches([n for n in range(1, 100001) if n not in (99998, 99999, 100000)], ascending=False)
    page = read_ranges(matches.read_range, 1, 100000, 100, ascending=False)
    assert page == list(range(99997, 99897, -1))
    assert matches.ranges == [(99901, 100000), (99897, 99900)]


def test_ranges_grow_four_times_while_they_find_nothing():
    matches = Matches([5], ascending=True)
    assert read_ranges(matches.read_range, 1, 1000, 1, skip=0, ascending=False) == [5]
    assert matches.ranges[:4] == [(1000, 1000), (996, 999), (980, 995), (916, 979)]


def test_next_width_follows_the_density_within_bounds():
    assert next_width(100, 100, 97) == 4  # 3 missing at density 0.97, a quarter more
    assert next_width(100, 100, 50) == 125
    assert next_width(100, 100, 1) == 400  # at most 4 times wider
    assert next_width(100, 100, 0) == 400
    assert next_width(10, 100, 10) == 90  # never narrower than what is missing, though more than 4 times wider


@settings(max_examples=300, deadline=None)
@given(st.sets(st.integers(1, 3000), max_size=400), st.integers(1, 3000), st.integers(1, 120),
       st.integers(0, 300), st.booleans())
def test_a_read_is_the_slice_of_the_ordered_matches_and_covers_each_number_once(seqs, high, limit, skip, ascending):
    matches = Matches([n for n in seqs if n <= high], ascending)
    page = read_ranges(matches.read_range, 1, high, limit, skip, ascending)
    assert page == matches.seqs[skip:skip + limit]
    numbers = [n for first, last in matches.ranges for n in range(first, last + 1)]
    assert len(numbers) == len(set(numbers)) and set(numbers) <= set(range(1, high + 1))
    assert matches.ranges == sorted(matches.ranges, reverse=not ascending)


def test_username_then_state_leads_the_read_other_filters_follow():
    assert split_query({'username': 'u', 'state': 's', 'node': 'n'}) == ({'username': 'u'}, {'state': 's', 'node': 'n'})
    assert split_query({'state': 's', 'experimentId': 'e'}) == ({'state': 's'}, {'experimentId': 'e'})
    assert split_query({'node': 'n', 'registrationComplete': True}) == ({}, {'node': 'n', 'registrationComplete': True})
    assert split_query({'username': NOTHING, 'state': 's'}) == ({'state': 's'}, {'username': NOTHING})
    assert split_query({}) == ({}, {})
