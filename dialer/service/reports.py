"""Reading a report (issue 28): the rows a report's time series is drawn from, for the views that draw it.

The views (dialer/views/report_*) never import the store; they take `PeriodRows` from here.
"""

from __future__ import annotations

from dialer.store.report_rows import PeriodRows, period_rows

__all__ = ["PeriodRows", "period_rows"]
