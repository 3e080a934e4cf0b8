"""The evaluation: the grid of points (``grid``), each layer's lower bound (``bound``),
the real routing statistics mapped onto each model (``realstats``), and the report with
its tables, verdict and plots (``report``, ``plots``)."""
