"""How every accuracy is written, in a table, a sentence, a figure or the README: one path, so that no two places
disagree after rounding. Light: it imports nothing.

An accuracy is first rounded to two decimals (the most any table prints: Table 4, as the paper prints it), half up,
and only then to one decimal for prose; so a table's 71.65 reads 71.7 in its sentence, never 71.6."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

PROSE, TABLE4 = 1, 2          # decimals: sentences and most tables; Table 4 and the README's table


def rounded(value: float, decimals: int = PROSE) -> float:
    """`value` (in percent or points) rounded half up to `decimals`, through two decimals first; NaN stays NaN."""
    if value is None or value != value:
        return float("nan")
    two = Decimal(f"{float(value):.9f}").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return float(two.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def pct(value: float, decimals: int = PROSE) -> str:
    """An accuracy in percent as text ("71.7"); "" for a missing number."""
    if value is None or value != value:
        return ""
    return f"{rounded(value, decimals):.{decimals}f}"


def mean_sd(values, decimals: int = PROSE) -> str:
    """"67.9 ± 0.9" over several values (sd with n - 1), "67.9" for one: the seed tables' and the README's cells."""
    values = [float(v) for v in values]
    if not values:
        return ""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return pct(mean, decimals)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{pct(mean, decimals)} ± {pct(sd, decimals)}"


def gap(a: float, b: float, decimals: int = PROSE) -> str:
    """a - b in points as the reader would compute it from the two shown values ("+1.1"): the difference of the
    rounded numbers, so that 75.4 and 51.3 are 24.1 apart in print too."""
    return f"{rounded(a, decimals) - rounded(b, decimals):+.{decimals}f}"


def below_majority(accuracy: float, majority: float) -> bool:
    """A model at or below the majority class (what always answering its most frequent label scores) did not
    learn; both in percent, compared as printed."""
    return rounded(accuracy) <= rounded(majority)
