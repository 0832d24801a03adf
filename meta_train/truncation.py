"""How a horizon splits into truncations: the one place that checks ``K`` divides ``H``.

Inner runs of ``horizon`` steps are unrolled ``trunc_length`` steps per outer step, and a
run never crosses an unroll boundary, so ``trunc_length`` must divide ``horizon``.
"""

from __future__ import annotations


def divisors(n: int) -> list[int]:
    """Every positive divisor of the positive int ``n``, ascending."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"divisors needs a positive int, got {n!r}.")
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small) | {n // d for d in small})


def nearest_divisor(n: int, k: int) -> int:
    """The divisor of ``n`` closest to ``k`` (the smaller one on a tie)."""
    return min(divisors(n), key=lambda d: (abs(d - k), d))


def trunc_length_error(horizon: int, trunc_length: int) -> str | None:
    """Why ``trunc_length`` does not fit ``horizon`` (None when it divides it)."""
    if horizon % trunc_length == 0:
        return None
    return (f"trunc_length={trunc_length} must divide horizon={horizon} (divisors of "
            f"{horizon}: {divisors(horizon)}); try trunc_length="
            f"{nearest_divisor(horizon, trunc_length)}")


def check_trunc_length(horizon: int, trunc_length: int) -> None:
    """Raise ``ValueError`` (naming the divisors) unless ``trunc_length`` divides ``horizon``."""
    problem = trunc_length_error(horizon, trunc_length)
    if problem:
        raise ValueError(problem + ".")
