"""How the broker cuts an experiment's batch documents into chunks to stage (cc_agency.registration.chunk_bounds)."""
from cc_agency.registration import chunk_bounds


def test_chunks_hold_at_most_the_count_and_cover_every_batch_in_order():
    assert chunk_bounds([10] * 2500, max_count=1000, max_bytes=10 ** 9) == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert chunk_bounds([10] * 1000, max_count=1000, max_bytes=10 ** 9) == [(0, 1000)]
    assert chunk_bounds([10], max_count=1000, max_bytes=10 ** 9) == [(0, 1)]
    assert chunk_bounds([], max_count=1000, max_bytes=10 ** 9) == []


def test_chunks_hold_at_most_the_bytes_and_a_large_batch_goes_alone():
    assert chunk_bounds([40, 40, 40, 40], max_count=1000, max_bytes=100) == [(0, 2), (2, 4)]
    assert chunk_bounds([40, 100, 40], max_count=1000, max_bytes=100) == [(0, 1), (1, 2), (2, 3)]
    assert chunk_bounds([250, 10, 10], max_count=1000, max_bytes=100) == [(0, 1), (1, 3)]
    assert chunk_bounds([50, 50, 50], max_count=1000, max_bytes=100) == [(0, 2), (2, 3)]  # exactly full
