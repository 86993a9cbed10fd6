from worker.gpu import largest_fitting


def test_largest_fitting_doubles_until_the_first_failure():
    seen = []

    def fits(n):
        seen.append(n)
        return n <= 100  # "out of memory" above 100 rows

    assert largest_fitting(fits, start=8, cap=4096) == 64
    assert seen == [8, 16, 32, 64, 128]


def test_largest_fitting_respects_the_cap_and_reports_nothing_fitting():
    assert largest_fitting(lambda n: True, start=8, cap=50) == 32
    assert largest_fitting(lambda n: False, start=8, cap=50) == 0
