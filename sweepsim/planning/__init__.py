"""Long-term planning (SageServe section 4): ``forecast`` computes per-minute prod prompt-token demand per
(model, region) from a trace and forecasts it out of sample (ARIMA rolled forward hour by hour, and a naive
same-minute-yesterday baseline), with error metrics and a content-addressed cache (``docs/planning.md``)."""
