"""The speech route's decoder: tokens -> 20 FARGAN features per 10 ms frame (regression path
plus a few-step flow residual) -> FARGAN."""
