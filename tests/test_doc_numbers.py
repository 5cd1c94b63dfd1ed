"""benchmarks/check_doc_numbers.py: moving text between README.md and docs/ must lose no number."""


def test_a_number_that_disappears_or_appears_less_often_is_reported(bench_script):
    check = bench_script("check_doc_numbers")
    before = "took 1.47 s per face (3.7x), 16 faces, 16 px, -0.02 ± 0.06 dB"
    moved = "16 faces at 16 px; -0.02 ± 0.06 dB; 1.47 s per face (3.7x)"
    assert check.lost_numbers(before, moved) == {}
    assert check.lost_numbers(before, moved.replace("3.7x", "3.7")) == {"3.7x": (1, 0)}
    assert check.lost_numbers(before, moved.replace("16 px", "px")) == {"16 px": (1, 0)}
    assert check.lost_numbers(before + ", 16 rows", moved) == {"16": (2, 1)}
    # A unit is part of the number: 1.47 s is not 1.47 ms, and 12 is not 120.
    assert check.lost_numbers("1.47 s, 12 px", "1.47 ms, 120 px") == {"1.47 s": (1, 0), "12 px": (1, 0)}
