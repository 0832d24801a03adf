"""The divisor helpers and the one check that the truncation divides the horizon."""

import pytest

from meta_train.truncation import check_trunc_length, divisors, nearest_divisor


def test_divisors_and_nearest():
    assert divisors(1) == [1]
    assert divisors(200) == [1, 2, 4, 5, 8, 10, 20, 25, 40, 50, 100, 200]
    assert divisors(49) == [1, 7, 49]
    assert nearest_divisor(200, 30) == 25 and nearest_divisor(200, 45) == 40
    assert nearest_divisor(12, 5) == 4  # 4 and 6 are as close: the smaller one
    with pytest.raises(ValueError, match="positive int"):
        divisors(0)


def test_check_trunc_length_names_the_fix():
    check_trunc_length(200, 20)
    with pytest.raises(ValueError, match=r"trunc_length=30 must divide horizon=100 \(divisors of "
                                         r"100: \[1, 2, 4, 5, 10, 20, 25, 50, 100\]\); try "
                                         r"trunc_length=25\."):
        check_trunc_length(100, 30)
