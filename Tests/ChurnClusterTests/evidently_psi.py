"""Evidently's PSI on bins given as categories: reads CSV lines `case,side,bin` (side r or c),
prints `case,psi` for every case. The bins are ChurnGrid's, so both compute PSI on the same bins."""
import csv
import sys
from collections import defaultdict

import pandas as pd
from evidently.legacy.calculations.stattests.psi import _psi
from evidently.legacy.core import ColumnType

sides = defaultdict(lambda: {"r": [], "c": []})
with open(sys.argv[1]) as f:
    for case, side, b in csv.reader(f):
        sides[case][side].append(int(b))
for case, s in sides.items():
    value, _ = _psi(pd.Series(s["r"]), pd.Series(s["c"]), ColumnType.Categorical, 0.1)
    print(f"{case},{float(value)!r}")
